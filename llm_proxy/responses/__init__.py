"""OpenAI's Responses API on the LLM proxy: `/v1/responses`, natively or translated to chat completions.

- `routes.ResponsesRoutes`: the HTTP edge (create, retrieve, delete, input items), the one entry point;
- `request`: the request checked at the edge, and its `input` as items;
- `chat`: pure translation, Responses request -> chat body and chat completion -> response object;
- `events`: chat completion chunks -> Responses stream events;
- `operation`: the operation the router runs per target (native `responses`, or `chat` through the above);
- `agent`: agent mode (a key's `agent` block, hosted `mcp` tools naming hub servers, approvals), the loop run in chat
  format; `mcp`: the hosted `mcp` tool checked; `agent_events`: an agent run's stream as Responses events;
- `relay`: a stream to the client, storing its response before the terminal event;
- `listing`: pagination of input items; `shapes`: ids and the response object.
"""

from llm_proxy.responses.chat import completion_to_response, request_to_chat
from llm_proxy.responses.events import ChunksToResponseEvents
from llm_proxy.responses.request import check_request, input_items
from llm_proxy.responses.routes import ResponsesRoutes
from llm_proxy.responses.shapes import response_object

__all__ = [
    "ChunksToResponseEvents",
    "ResponsesRoutes",
    "check_request",
    "completion_to_response",
    "input_items",
    "request_to_chat",
    "response_object",
]
