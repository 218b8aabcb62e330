"""Code Mode: many tools behind three meta-tools, called from Python run in a pydantic-monty sandbox.

The hub's seam::

    engine = CodeMode(settings.code_mode, metrics=governance.metrics)
    await engine.start()                                  # warm the sandbox pool (in the component's start)
    engine.meta_tools(specs)                              # list these instead of the Code Mode servers' tools
    await engine.call(name, arguments, specs, caller, run_id)   # a call of search_tools/get_tool_docs/run_code
    await engine.stop()

`specs` are the `ToolSpec`s of the tools the key may use in Code Mode (or a `Toolbox(specs)` kept between calls);
`caller` makes one governed call.
"""

from mcp_hub.codemode.engine import OUTCOME_META, RUN_ID_META, TOOL_CALLS_META, CodeMode
from mcp_hub.codemode.meta import GET_TOOL_DOCS, META_TOOL_NAMES, RUN_CODE, SEARCH_TOOLS
from mcp_hub.codemode.spec import ToolCaller, ToolSpec
from mcp_hub.codemode.toolbox import Toolbox

__all__ = [
    "GET_TOOL_DOCS",
    "META_TOOL_NAMES",
    "OUTCOME_META",
    "RUN_CODE",
    "RUN_ID_META",
    "SEARCH_TOOLS",
    "TOOL_CALLS_META",
    "CodeMode",
    "ToolCaller",
    "ToolSpec",
    "Toolbox",
]
