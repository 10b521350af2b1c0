"""An MCP server built with the `mcp` SDK (2.3.0, `MCPServer`, formerly FastMCP), for
tests/e2e/test_sdk_mcp.py.

    python mcp_server.py PORT

Streamable HTTP on http://127.0.0.1:PORT/mcp (stateless, JSON responses) with two tools:
`echo` (answers `echo: <text> (origin <x-custody-origin>)`, the header Envoy passed on from
custody) and `delete_repo` (answers `deleted <name>`: whoever reaches it was allowed)."""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("custody-sdk-e2e")


def _origin(ctx: Context) -> str:
    request = getattr(ctx.request_context, "request", None)
    headers = getattr(request, "headers", None) or {}
    return headers.get("x-custody-origin", "")


@server.tool()
def echo(text: str, ctx: Context) -> str:
    """Echo the text back."""
    return f"echo: {text} (origin {_origin(ctx)})"


@server.tool()
def delete_repo(name: str) -> str:
    """Delete a repository (for the test: say so)."""
    return f"deleted {name}"


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]), stateless_http=True, json_response=True)
