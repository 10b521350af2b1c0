"""A trivial A2A echo agent built with `a2a-sdk` (1.3.0), for tests/e2e/test_sdk_a2a.py.

    python a2a_agent.py PORT CARD.json

Serves, with uvicorn on 127.0.0.1:PORT, the SDK's JSON-RPC endpoint at `/` with its A2A 0.3
compatibility on (custody's `--protocol a2a` names A2A 0.3 methods: `message/send`, ...) and the
Agent Card read from CARD.json (the SDK's JSON form, possibly signed) at
`/.well-known/agent-card.json`. The agent answers every message with one text message
`echo: <text>`; it also echoes the `x-custody-origin` header Envoy passed on, so a test can see
that the request went through custody."""

import json
import sys

import uvicorn
from google.protobuf.json_format import ParseDict
from starlette.applications import Starlette

from a2a.helpers import get_message_text, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandlerV2
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import AgentCard


class Echo(AgentExecutor):
    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = get_message_text(context.message)
        origin = ""
        call = context.call_context
        if call is not None:
            headers = (call.state or {}).get("headers", {})
            origin = headers.get("x-custody-origin", "")
        await event_queue.enqueue_event(new_text_message(f"echo: {text} (origin {origin})"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def main():
    port, card_path = int(sys.argv[1]), sys.argv[2]
    card = ParseDict(json.loads(open(card_path).read()), AgentCard())
    handler = DefaultRequestHandlerV2(agent_executor=Echo(), task_store=InMemoryTaskStore(), agent_card=card)
    routes = [*create_agent_card_routes(card), *create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)]
    uvicorn.run(Starlette(routes=routes), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
