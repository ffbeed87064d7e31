"""A real MCP server, the official `mcp` SDK's FastMCP, over streamable HTTP on HTTPS.

    python mcp_server.py PORT CERT KEY sse|json
"""

from __future__ import annotations

import sys

import uvicorn
from mcp.server.fastmcp import FastMCP

port, cert, key, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
app = FastMCP("files", host="127.0.0.1", port=port, json_response=mode == "json")


@app.tool()
def read_file(path: str) -> str:
    """Read a file."""
    return f"contents of {path}"


@app.tool()
def delete_repo(repo: str) -> str:
    """Delete a repository."""
    return f"deleted {repo}"


print(f"listening {port}", flush=True)
uvicorn.run(app.streamable_http_app(), host="127.0.0.1", port=port, ssl_certfile=cert, ssl_keyfile=key,
            log_level="warning")
