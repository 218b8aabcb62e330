"""OpenAI chat completions <-> Google AI `generateContent` / `streamGenerateContent`, and embeddings.

Gemini names no tool call ids: ids are made from the response id, and a tool result finds its function name through
the assistant message that made the call. JSON schemas go in `parametersJsonSchema` / `responseJsonSchema`, which
take full JSON Schema.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llm_proxy.errors import UnsupportedByProvider
from llm_proxy.wire import openai, reasoning
from llm_proxy.wire.anthropic import parse_data_url
from toolpolicy.errors import InvalidRequest
from toolpolicy.governor import Usage

_FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"})
_CHAT_FIELDS = frozenset(
    "model messages max_tokens max_completion_tokens stop temperature top_p tools tool_choice parallel_tool_calls "
    "user response_format stream stream_options n seed frequency_penalty presence_penalty logit_bias logprobs "
    "top_logprobs store metadata service_tier modalities audio prediction reasoning_effort web_search_options "
    "functions function_call verbosity prompt_cache_key safety_identifier fallbacks".split()
)
_GENERATION = {
    "temperature": "temperature",
    "top_p": "topP",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}


def _parts(content: Any, where: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content must be a string or an array of parts", param=where)
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and url.startswith("data:"):
                media_type, data = parse_data_url(url, f"{where}[{index}]")
                parts.append({"inlineData": {"mimeType": media_type, "data": data}})
            elif isinstance(url, str):
                parts.append({"fileData": {"fileUri": url}})
        elif kind == "file" and isinstance(part.get("file"), dict) and part["file"].get("file_data"):
            media_type, data = parse_data_url(part["file"]["file_data"], f"{where}[{index}]")
            parts.append({"inlineData": {"mimeType": media_type, "data": data}})
        else:
            raise UnsupportedByProvider(f"{where}[{index}]: content of type {kind!r} cannot be sent to Gemini")
    return parts


def _tool_response(content: Any) -> dict[str, Any]:
    text = (
        content
        if isinstance(content, str)
        else "".join(p.get("text", "") for p in content or () if isinstance(p, dict))
    )
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"content": text}


def chat_to_gemini(body: dict[str, Any], model: str = "") -> dict[str, Any]:
    """A `generateContent` request for an OpenAI chat request (the model goes in the URL; its family picks how
    `reasoning_effort` is said)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role in ("system", "developer"):
            system += _parts(message.get("content"), f"{where}.content")
            continue
        if role == "user":
            parts, gemini_role = _parts(message.get("content"), f"{where}.content"), "user"
        elif role == "assistant":
            parts, gemini_role = _parts(message.get("content"), f"{where}.content"), "model"
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                call_names[str(call.get("id"))] = function.get("name") or ""
                try:
                    args = json.loads(function.get("arguments") or "{}")
                except ValueError:
                    raise InvalidRequest(f"{where}: tool call arguments are not valid JSON", param=where) from None
                parts.append({"functionCall": {"name": function.get("name"), "args": args}})
        elif role == "tool":
            name = call_names.get(str(message.get("tool_call_id")))
            if name is None:
                raise InvalidRequest(f"{where}: tool_call_id matches no earlier assistant tool call", param=where)
            response = {"name": name, "response": _tool_response(message.get("content"))}
            parts, gemini_role = [{"functionResponse": response}], "user"
        else:
            raise InvalidRequest(f"{where}.role: unknown role {role!r}", param=f"{where}.role")
        if contents and contents[-1]["role"] == gemini_role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": gemini_role, "parts": parts})
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    config = {gemini: body[name] for name, gemini in _GENERATION.items() if body.get(name) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            config["responseJsonSchema"] = schema
    effort = reasoning.effort_of(body)
    if effort is not None:
        config["thinkingConfig"] = reasoning.gemini_thinking(effort, model)
    if config:
        out["generationConfig"] = config
    if body.get("tools"):
        out["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in body["tools"]]}]
    choice = body.get("tool_choice")
    if choice is not None:
        out["toolConfig"] = {"functionCallingConfig": _calling_config(choice)}
    out.update({name: value for name, value in body.items() if name not in _CHAT_FIELDS})
    return out


def _declaration(tool: Any) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(function, dict) or not function.get("name"):
        raise InvalidRequest("each tool must be {type: function, function: {name, parameters}}", param="tools")
    declaration: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        declaration["description"] = function["description"]
    if function.get("parameters"):
        declaration["parametersJsonSchema"] = function["parameters"]
    return declaration


def _calling_config(choice: Any) -> dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return {"mode": {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]}
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"mode": "ANY", "allowedFunctionNames": [choice["function"].get("name")]}
    raise InvalidRequest("tool_choice must be auto, none, required or a function", param="tool_choice")


def usage_of(metadata: Any) -> Usage | None:
    if not isinstance(metadata, dict) or not isinstance(metadata.get("promptTokenCount"), int):
        return None
    thoughts = metadata.get("thoughtsTokenCount") or 0
    return Usage(
        tokens_in=metadata["promptTokenCount"],
        tokens_out=(metadata.get("candidatesTokenCount") or 0) + thoughts,
        cached_tokens=metadata.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def finish_reason(reason: Any, has_calls: bool) -> str | None:
    if not reason:
        return None
    if reason in _FILTERED:
        return "content_filter"
    if reason == "MAX_TOKENS":
        return "length"
    return "tool_calls" if has_calls else "stop"


def _call(part: dict[str, Any], call_id: str, index: int | None = None) -> dict[str, Any]:
    function = part["functionCall"]
    arguments = json.dumps(function.get("args") or {}, ensure_ascii=False)
    call: dict[str, Any] = {} if index is None else {"index": index}
    call.update({"id": function.get("id") or call_id, "type": "function"})
    call["function"] = {"name": function.get("name"), "arguments": arguments}
    return call


def gemini_to_completion(response: dict[str, Any], model: str, *, created: int | None = None) -> dict[str, Any]:
    """An OpenAI chat completion for a `generateContent` response."""
    response_id = str(response.get("responseId") or uuid.uuid4().hex)
    choices: list[dict[str, Any]] = []
    for position, candidate in enumerate(response.get("candidates") or ()):
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in (candidate.get("content") or {}).get("parts") or ():
            if "functionCall" in part:
                calls.append(_call(part, f"call_{response_id}_{position}_{len(calls)}"))
            elif isinstance(part.get("text"), str):
                (reasoning if part.get("thought") else texts).append(part["text"])
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
        if calls:
            message["tool_calls"] = calls
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        message["refusal"] = None
        finish = finish_reason(candidate.get("finishReason") or "STOP", bool(calls))
        choices.append(
            {"index": candidate.get("index", position), "message": message, "logprobs": None, "finish_reason": finish}
        )
    if not choices:
        # A blocked prompt has no candidates, only promptFeedback.
        message = {"role": "assistant", "content": "", "refusal": None}
        choices.append({"index": 0, "message": message, "logprobs": None, "finish_reason": "content_filter"})
    return openai.completion(
        response_id,
        str(response.get("modelVersion") or model),
        choices,
        usage_of(response.get("usageMetadata")),
        created=created,
    )


class GeminiToChunks:
    """`streamGenerateContent` responses (one per SSE event) -> OpenAI chunks, ending with a usage-only chunk."""

    def __init__(self, model: str, *, created: int | None = None) -> None:
        self.model = model
        self.created = int(time.time()) if created is None else created
        self.id = ""
        self.usage: Usage | None = None
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}

    def feed(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        if not self.id:
            self.id = str(response.get("responseId") or uuid.uuid4().hex)
        self.model = str(response.get("modelVersion") or self.model)
        self.usage = usage_of(response.get("usageMetadata")) or self.usage
        choices: list[dict[str, Any]] = []
        for position, candidate in enumerate(response.get("candidates") or ()):
            index = candidate.get("index", position)
            delta: dict[str, Any] = {}
            if index not in self._started:
                self._started.add(index)
                delta["role"] = "assistant"
            texts: list[str] = []
            reasoning: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in (candidate.get("content") or {}).get("parts") or ():
                if "functionCall" in part:
                    number = self._calls.get(index, 0)
                    self._calls[index] = number + 1
                    calls.append(_call(part, f"call_{self.id}_{index}_{number}", number))
                elif isinstance(part.get("text"), str):
                    (reasoning if part.get("thought") else texts).append(part["text"])
            if texts:
                delta["content"] = "".join(texts)
            if reasoning:
                delta["reasoning_content"] = "".join(reasoning)
            if calls:
                delta["tool_calls"] = calls
            finish = finish_reason(candidate.get("finishReason"), self._calls.get(index, 0) > 0)
            if delta or finish:
                choices.append(openai.delta_choice(delta, finish, index))
        return [openai.chunk(self.id, self.model, self.created, choices)] if choices else []

    def finish(self) -> list[dict[str, Any]]:
        return [openai.chunk(self.id or uuid.uuid4().hex, self.model, self.created, [], self.usage or Usage())]


def embed_request(model: str, texts: list[str], dimensions: Any) -> dict[str, Any]:
    requests = []
    for text in texts:
        request: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if isinstance(dimensions, int):
            request["outputDimensionality"] = dimensions
        requests.append(request)
    return {"requests": requests}


def embed_vectors(response: dict[str, Any]) -> list[list[float]] | None:
    embeddings = response.get("embeddings")
    if not isinstance(embeddings, list) or not all(
        isinstance(e, dict) and isinstance(e.get("values"), list) for e in embeddings
    ):
        return None
    return [embedding["values"] for embedding in embeddings]
