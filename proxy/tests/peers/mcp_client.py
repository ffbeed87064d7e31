"""The official `mcp` SDK's client (ClientSession over streamable HTTP), unchanged: the proxy and
its CA come from HTTPS_PROXY and SSL_CERT_FILE, as `aasm run` sets them. Prints one JSON line.

    python mcp_client.py URL
"""

from __future__ import annotations

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


async def main(url: str) -> None:
    out: dict[str, object] = {}
    async with streamablehttp_client(url) as (read, write, session_id), ClientSession(read, write) as s:
        await s.initialize()
        out["session"] = bool(session_id())
        out["tools"] = [t.name for t in (await s.list_tools()).tools]
        ok = await s.call_tool("read_file", {"path": "/tmp/x"})
        out["ok"] = [c.text for c in ok.content if c.type == "text"]
        try:
            await s.call_tool("delete_repo", {"repo": "prod"})
            out["denied"] = None
        except McpError as e:
            out["denied"] = {"code": e.error.code, "message": e.error.message, "data": e.error.data}
    print(json.dumps(out), flush=True)


asyncio.run(main(sys.argv[1]))
