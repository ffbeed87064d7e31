"""``@govern``, ``governed(...)``, ``decide(...)`` and ``report(...)``.

A governed call is decided by the Rust core *before* the body runs; a deny raises
``PolicyDenied`` and the body never runs. After the call, its outcome (ok/error, duration,
result size) is recorded. No decision is made in Python.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import sys
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any, Callable, Protocol, TypeVar, cast, overload

from . import _runtime
from ._errors import PolicyDenied
from ._native import ArgRules, Decision, ToolCall

if sys.version_info >= (3, 10):
    from typing import ParamSpec
else:
    from typing_extensions import ParamSpec

P = ParamSpec("P")
R = TypeVar("R")

#: The rules of calls governed without a redact list (secret names and values only).
_DEFAULT_RULES = ArgRules()


class _Decorator(Protocol):
    """What ``govern(tool=..., args=..., redact=...)`` returns."""

    def __call__(self, fn: Callable[P, R], /) -> Callable[P, R]: ...


def decide(action: Mapping[str, Any]) -> Decision:
    """Decide an action (a dict of the wire model, e.g. ``{"kind": "http_request", ...}``)."""
    return _runtime.get().decide(json.dumps(action))


def report(
    action: Mapping[str, Any],
    decision: Decision,
    *,
    ok: bool = True,
    duration_s: float = 0.0,
    result_size: int | None = None,
    error: str | None = None,
    usage: Mapping[str, Any] | None = None,
) -> None:
    """Record what happened after an allowed action ran (usage is charged to budgets)."""
    _runtime.get().report(
        json.dumps(action),
        decision,
        "ok" if ok else "error",
        int(duration_s * 1e6),
        result_size,
        error,
        json.dumps(usage) if usage is not None else None,
    )


def _start(tool: str, args: dict[str, Any], rules: ArgRules) -> ToolCall:
    """Decides one governed tool call; raises ``PolicyDenied`` on a deny. The core redacts,
    converts and truncates the arguments (see ``aa_core::tool_call``)."""
    call = _runtime.get().decide_tool(tool, args, rules)
    if not call.allowed:
        raise PolicyDenied(call.decision, action=tool)
    return call


def _param_names(fn: Callable[..., Any]) -> tuple[list[str], bool]:
    """Positional parameter names, and whether the first parameter is self/cls."""
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    skip_first = bool(params) and params[0].name in ("self", "cls")
    names = [
        p.name
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return names, skip_first


@overload
def govern(fn: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def govern(
    fn: None = None,
    /,
    *,
    tool: str | None = None,
    args: Callable[..., Mapping[str, Any]] | Sequence[str] | None = None,
    redact: Sequence[str] = (),
) -> _Decorator: ...


def govern(
    fn: Callable[P, R] | None = None,
    /,
    *,
    tool: str | None = None,
    args: Callable[..., Mapping[str, Any]] | Sequence[str] | None = None,
    redact: Sequence[str] = (),
) -> Callable[P, R] | _Decorator:
    """Govern a function (sync or ``async def``, plain function or method) as a tool call.

    ``tool`` names the tool (default: the function's name). ``args`` maps the call's arguments
    into the action's ``args``: a list of parameter names to keep, or a callable receiving the
    call's ``(*args, **kwargs)`` and returning a dict. Parameters named like secrets
    (password, token, api_key, ...) and those in ``redact`` are recorded as ``"[redacted]"``,
    and secret-looking values (bearer tokens, API keys, private keys, ...) inside the others.
    """
    wrap = _Wrap(tool, args, redact)
    if fn is not None:
        return wrap(fn)
    return wrap


class _Wrap:
    """The decorator ``govern`` applies: one tool name, argument mapping and redaction."""

    __slots__ = ("args", "rules", "tool")

    rules: ArgRules

    def __init__(
        self,
        tool: str | None,
        args: Callable[..., Mapping[str, Any]] | Sequence[str] | None,
        redact: Sequence[str],
    ) -> None:
        self.tool = tool
        self.args = args
        keep = None if args is None or callable(args) else list(args)
        self.rules = ArgRules(list(redact), keep) if redact or keep is not None else _DEFAULT_RULES

    def __call__(self, f: Callable[P, R], /) -> Callable[P, R]:
        mapper, rules = self.args, self.rules
        name = self.tool or str(getattr(f, "__name__", "tool"))
        names, skip_first = _param_names(f)
        pnames = tuple(names[1:] if skip_first else names)
        skip = 1 if skip_first else 0
        get = _runtime.get

        def start(a: tuple[Any, ...], kw: dict[str, Any]) -> ToolCall:
            if callable(mapper):
                return _start(name, {str(k): v for k, v in mapper(*a, **kw).items()}, rules)
            # The core names the arguments, redacts, converts and truncates them.
            call = get().decide_call(name, pnames, a, kw, rules, skip)
            if not call.allowed:
                raise PolicyDenied(call.decision, action=name)
            return call

        if inspect.iscoroutinefunction(f):
            async_f = cast(Callable[P, Awaitable[Any]], f)

            @functools.wraps(f)
            async def async_wrapper(*a: P.args, **kw: P.kwargs) -> Any:
                call = start(a, kw)
                try:
                    result = await async_f(*a, **kw)
                except BaseException as e:
                    call.error(e)
                    raise
                call.ok(result)
                return result

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(f)
        def wrapper(*a: P.args, **kw: P.kwargs) -> R:
            call = start(a, kw)
            try:
                result = f(*a, **kw)
            except BaseException as e:
                call.error(e)
                raise
            call.ok(result)
            return result

        return wrapper


@contextlib.contextmanager
def governed(tool: str, **args: Any) -> Iterator[Decision]:
    """Govern a block of code as one tool call::

        with agent_assembly.governed("deploy", env="prod") as decision:
            ...   # runs only if allowed; PolicyDenied is raised before otherwise
    """
    call = _start(tool, args, _DEFAULT_RULES)
    try:
        yield call.decision
    except BaseException as e:
        call.error(e)
        raise
    call.ok()
