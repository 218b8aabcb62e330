"""The host side of the sandbox's tool functions: Python arguments in, a governed tool call, a value or an exception.

Only the tools of the request's `Toolbox` are bound, and a call is looked up again by its exact `module.function`
name before anything is sent, so no name the program makes up can reach another tool. The hub's `ToolCaller` then
runs the full governance path for the call, as for a direct one.

What the program sees:

- bad arguments (missing, unexpected, too many, not JSON): `TypeError`, worded as Python's own;
- a tool error result (including a refusal by a rate limit or budget): `RuntimeError("<tool> failed: ...")`;
- a call the gateway refuses outright (the key lost access to the tool meanwhile): `PermissionError`.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp_hub.codemode.sandbox import HostFunction
from mcp_hub.codemode.spec import ToolCaller
from mcp_hub.codemode.toolbox import BoundTool, Toolbox
from mcp_hub.codemode.values import error_text, to_argument, tool_value
from toolpolicy.errors import GatewayError

logger = logging.getLogger(__name__)

_REFUSED_STATUSES = frozenset({401, 403, 404})


def arguments(tool: BoundTool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The JSON arguments of a call, under the schema's names; raises TypeError as Python would."""
    name, params = tool.qualified, tool.params
    if len(args) > len(params):
        raise TypeError(f"{name}() takes {len(params)} positional argument(s) but {len(args)} were given")
    given: dict[str, Any] = {param.name: value for param, value in zip(params, args, strict=False)}
    by_name = {param.name: param for param in params}
    by_wire = {param.wire: param for param in params}
    extra: dict[str, Any] = {}
    for key, value in kwargs.items():
        param = by_name.get(key) or by_wire.get(key)
        if param is None:
            if tool.extra_kwargs:
                extra[key] = to_argument(value, f"argument {key!r} of {name}()")
                continue
            known = ", ".join(by_name) or "none"
            raise TypeError(f"{name}() got an unexpected keyword argument {key!r} (its parameters: {known})")
        if param.name in given:
            raise TypeError(f"{name}() got multiple values for argument {param.name!r}")
        given[param.name] = value
    missing = [param.name for param in params if param.required and param.name not in given]
    if missing:
        listed = ", ".join(repr(each) for each in missing)
        raise TypeError(f"{name}() missing {len(missing)} required argument(s): {listed}")
    sent = dict(extra)
    for param in params:
        if param.name not in given or given[param.name] is None and not param.required:
            continue  # None for an optional parameter means "not sent": the tool's default applies
        sent[param.wire] = to_argument(given[param.name], f"argument {param.name!r} of {name}()")
    return sent


class Bindings:
    """The tools of one run, as host functions grouped by module, and the dispatcher that calls them."""

    def __init__(self, toolbox: Toolbox, caller: ToolCaller) -> None:
        self.toolbox = toolbox
        self.caller = caller

    def modules(self) -> dict[str, dict[str, HostFunction]]:
        modules: dict[str, dict[str, HostFunction]] = {module: {} for module in self.toolbox.modules}
        for tool in self.toolbox.tools:
            modules[tool.module][tool.function] = self._function(tool.qualified)
        return modules

    def _function(self, qualified: str) -> HostFunction:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self.dispatch(qualified, args, kwargs)

        call.__name__ = qualified.rpartition(".")[2]
        return call

    async def dispatch(self, qualified: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Make one call for the program; every failure becomes the exception the program sees."""
        tool = self.toolbox.get(qualified)
        if tool is None:
            raise AttributeError(f"no tool named {qualified!r} is available")
        sent = arguments(tool, args, kwargs)
        try:
            result = await self.caller(tool.spec.server, tool.spec.name, sent)
        except GatewayError as exc:
            if exc.status in _REFUSED_STATUSES:
                raise PermissionError(f"{qualified}() was refused: {exc.message}") from None
            raise RuntimeError(f"{qualified}() failed: {exc.message}") from None
        except Exception:
            logger.exception("Code Mode call of %s failed in the gateway", qualified)
            raise RuntimeError(f"{qualified}() failed: the gateway could not make the call") from None
        if result.is_error:
            raise RuntimeError(f"{qualified}() failed: {error_text(result)}")
        return tool_value(result)
