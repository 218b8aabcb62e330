"""An agent run's stream as Responses events: the model's text and client calls as `ChunksToResponseEvents` makes
them, and the gateway's MCP items between them, in the sequence OpenAI sends for its hosted MCP tool.

- `mcp_list_tools`: `response.output_item.added`, `response.mcp_list_tools.in_progress`,
  `response.mcp_list_tools.completed`, `response.output_item.done`;
- `mcp_call`: `response.output_item.added` (status `in_progress`), `response.mcp_call.in_progress`,
  `response.mcp_call_arguments.delta`, `response.mcp_call_arguments.done`, then once the tool answered
  `response.mcp_call.completed` (or `.failed`) and `response.output_item.done` with its output;
- `mcp_approval_request`: `response.output_item.added` and `response.output_item.done`.

One turn's calls may run concurrently: each call's item takes its place in `output` when it starts. Each step's text
is a message item of its own (without the blank line the chat stream sets steps apart with).
"""

from __future__ import annotations

from typing import Any

from llm_proxy.agent.host import ToolOutput
from llm_proxy.responses.events import ChunksToResponseEvents
from llm_proxy.responses.mcp import split_name
from llm_proxy.responses.shapes import MCP_CALL_PREFIX, mcp_call_item, new_id


class AgentResponseEvents(ChunksToResponseEvents):
    def __init__(self, skeleton: dict[str, Any]) -> None:
        super().__init__(skeleton)
        self._calls: dict[str, tuple[int, dict[str, Any]]] = {}
        """Running calls by the model's call id: their output index and item."""

    def begin(self) -> list[dict[str, Any]]:
        """`response.created` and `response.in_progress`, once."""
        return [] if self._started else self._start()

    def _text(self, text: str) -> list[dict[str, Any]]:
        if self._open is None or self._open["type"] != "message":
            # The loop sets a new step's text apart with a blank line; here it begins a message item of its own.
            text = text.removeprefix("\n\n")
            if not text:
                return []
        return super()._text(text)

    def _append(self, item: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
        events = self.begin() + self._close()
        index = self._index
        self.response["output"].append(item)
        events.append(self._event("response.output_item.added", output_index=index, item=dict(item)))
        return events, index

    def list_tools(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events, index = self._append({**item, "tools": []})
        where = {"item_id": item["id"], "output_index": index}
        events.append(self._event("response.mcp_list_tools.in_progress", **where))
        self.response["output"][index] = item
        events.append(self._event("response.mcp_list_tools.completed", **where))
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def approval_request(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        events, index = self._append(item)
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events

    def call_started(
        self, call_id: str, name: str, arguments: str, *, approval_request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The gateway calls hub tool `name` (`<server>__<tool>`)."""
        server, tool = split_name(name)
        item = mcp_call_item(
            new_id(MCP_CALL_PREFIX),
            server,
            tool,
            arguments,
            status="in_progress",
            approval_request_id=approval_request_id,
        )
        events, index = self._append(item)
        self._calls[call_id] = (index, item)
        where = {"item_id": item["id"], "output_index": index}
        events.append(self._event("response.mcp_call.in_progress", **where))
        events.append(self._event("response.mcp_call_arguments.delta", **where, delta=arguments))
        events.append(self._event("response.mcp_call_arguments.done", **where, arguments=arguments))
        return events

    def call_finished(self, call_id: str, output: ToolOutput) -> list[dict[str, Any]]:
        index, running = self._calls.pop(call_id)
        item = mcp_call_item(
            running["id"],
            running["server_label"],
            running["name"],
            running["arguments"],
            output=None if output.is_error else output.text,
            error=output.text if output.is_error else None,
            approval_request_id=running["approval_request_id"],
        )
        self.response["output"][index] = item
        where = {"item_id": item["id"], "output_index": index}
        kind = "response.mcp_call.failed" if output.is_error else "response.mcp_call.completed"
        return [
            self._event(kind, **where),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def finished_call(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """A call made before the stream began (an approved one), with its events."""
        events, index = self._append({**item, "status": "in_progress", "output": None, "error": None})
        where = {"item_id": item["id"], "output_index": index}
        events.append(self._event("response.mcp_call.in_progress", **where))
        events.append(self._event("response.mcp_call_arguments.delta", **where, delta=item["arguments"]))
        events.append(self._event("response.mcp_call_arguments.done", **where, arguments=item["arguments"]))
        self.response["output"][index] = item
        kind = "response.mcp_call.failed" if item["error"] is not None else "response.mcp_call.completed"
        events.append(self._event(kind, **where))
        events.append(self._event("response.output_item.done", output_index=index, item=item))
        return events
