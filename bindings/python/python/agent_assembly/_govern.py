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
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, TypeVar, overload

from . import _runtime
from ._errors import PolicyDenied
from ._native import PyDecision

F = TypeVar("F", bound=Callable[..., Any])

#: Argument names whose values are replaced by ``"[redacted]"`` in actions and audit records.
SECRET_NAMES = re.compile(r"pass(word)?|secret|token|api_?key|authorization|credential", re.I)
MAX_ARG_CHARS = 4096


_PLAIN = (bool, int, float, type(None))


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_ARG_CHARS else value[:MAX_ARG_CHARS] + "…"
    if kind in _PLAIN:
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    text = repr(value)
    return text if len(text) <= MAX_ARG_CHARS else text[:MAX_ARG_CHARS] + "…"


def _redact(args: dict[str, Any], redact: Sequence[str]) -> dict[str, Any]:
    for k in list(args):
        if k in redact or SECRET_NAMES.search(k):
            args[k] = "[redacted]"
    return args


def _result_size(result: Any) -> int | None:
    if isinstance(result, (str, bytes, bytearray)):
        return len(result)
    if isinstance(result, (list, tuple, dict, set)):
        return len(result)
    return None


def decide(action: Mapping[str, Any]) -> PyDecision:
    """Decide an action (a dict of the wire model, e.g. ``{"kind": "http_request", ...}``)."""
    return _runtime.get().decide(json.dumps(action))


def report(
    action: Mapping[str, Any],
    decision: PyDecision,
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


class _Call:
    """One governed tool call: decided on creation (raising ``PolicyDenied``), its outcome
    recorded by ``done``."""

    __slots__ = ("call", "decision", "governor", "started")

    def __init__(self, tool: str, args: dict[str, Any]) -> None:
        self.governor = _runtime.get()
        self.call = self.governor.decide_tool(tool, args)
        self.decision = self.call.decision
        if not self.decision.allowed:
            raise PolicyDenied(self.decision, action=tool)
        self.started = time.perf_counter_ns()

    def done(self, result: Any = None, error: BaseException | None = None) -> None:
        duration_us = (time.perf_counter_ns() - self.started) // 1000
        if error is None:
            self.governor.report_call(self.call, "ok", duration_us, _result_size(result))
        else:
            self.governor.report_call(self.call, "error", duration_us, None, type(error).__name__)


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
def govern(fn: F) -> F: ...
@overload
def govern(
    fn: None = None,
    *,
    tool: str | None = None,
    args: Callable[..., Mapping[str, Any]] | Sequence[str] | None = None,
    redact: Sequence[str] = (),
) -> Callable[[F], F]: ...


def govern(
    fn: F | None = None,
    *,
    tool: str | None = None,
    args: Callable[..., Mapping[str, Any]] | Sequence[str] | None = None,
    redact: Sequence[str] = (),
) -> F | Callable[[F], F]:
    """Govern a function (sync or ``async def``, plain function or method) as a tool call.

    ``tool`` names the tool (default: the function's name). ``args`` maps the call's arguments
    into the action's ``args``: a list of parameter names to keep, or a callable receiving the
    call's ``(*args, **kwargs)`` and returning a dict. Parameters named like secrets
    (password, token, api_key, ...) and those in ``redact`` are recorded as ``"[redacted]"``.
    """

    def wrap(f: F) -> F:
        name = tool or getattr(f, "__name__", "tool")
        names, skip_first = _param_names(f)
        pnames = names[1:] if skip_first else names
        keep = None if args is None or callable(args) else set(args)
        # Redaction decided once for the declared parameters; other keys are checked per call.
        secret_params = frozenset(n for n in pnames if n in redact or SECRET_NAMES.search(n))
        known = frozenset(pnames)

        def build(call_args: tuple[Any, ...], call_kwargs: dict[str, Any]) -> dict[str, Any]:
            if callable(args):
                return _redact({k: _jsonable(v) for k, v in dict(args(*call_args, **call_kwargs)).items()}, redact)
            positional = call_args[1:] if skip_first else call_args
            mapped = {k: _jsonable(v) for k, v in zip(pnames, positional)}
            if len(positional) > len(pnames):
                mapped["*args"] = _jsonable(list(positional[len(pnames):]))
            for k, v in call_kwargs.items():
                mapped[k] = _jsonable(v)
                if k not in known and (k in redact or SECRET_NAMES.search(k)):
                    mapped[k] = "[redacted]"
            for k in secret_params:
                if k in mapped:
                    mapped[k] = "[redacted]"
            if keep is not None:
                mapped = {k: v for k, v in mapped.items() if k in keep}
            return mapped

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def async_wrapper(*a: Any, **kw: Any) -> Any:
                call = _Call(name, build(a, kw))
                try:
                    result = await f(*a, **kw)
                except BaseException as e:
                    call.done(error=e)
                    raise
                call.done(result)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(f)
        def wrapper(*a: Any, **kw: Any) -> Any:
            call = _Call(name, build(a, kw))
            try:
                result = f(*a, **kw)
            except BaseException as e:
                call.done(error=e)
                raise
            call.done(result)
            return result

        return wrapper  # type: ignore[return-value]

    if fn is not None:
        return wrap(fn)
    return wrap


@contextlib.contextmanager
def governed(tool: str, **args: Any) -> Iterator[PyDecision]:
    """Govern a block of code as one tool call::

        with agent_assembly.governed("deploy", env="prod") as decision:
            ...   # runs only if allowed; PolicyDenied is raised before otherwise
    """
    call = _Call(tool, _redact({k: _jsonable(v) for k, v in args.items()}, ()))
    try:
        yield call.decision
    except BaseException as e:
        call.done(error=e)
        raise
    call.done()
