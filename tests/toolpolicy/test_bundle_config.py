"""`mcp_bundles` and tool overrides in the config: what loads, and the problems named by their config path."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from toolpolicy.config import ConfigError, ConfigProblem, load_config_text
from toolpolicy.tool_overrides import ToolOverride

SERVERS = """\
mcp_servers:
  crm:
    command: crm-server
  docs:
    url: http://127.0.0.1:9000/mcp
    tools: ["search", "get_page", "list_*"]
    overrides:
      search: {rename: find_docs, description: "Search the handbook.", annotations: {readOnlyHint: true}}
"""

BUNDLE = """\
mcp_bundles:
  support:
    tools: ["crm__*", "docs__search"]
    prompts: ["crm__*"]
    resources: ["isthmus://docs/*", "crm__readme"]
    overrides:
      docs__search: {rename: lookup}
"""


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={})
    return caught.value.problems


def test_the_documented_shape_loads() -> None:
    settings = load_config_text(SERVERS + BUNDLE, environ={})
    support = settings.mcp_bundles["support"]
    assert support.tools == ["crm__*", "docs__search"] and support.resources[0] == "isthmus://docs/*"
    assert support.overrides["docs__search"].rename == "lookup"
    search = settings.mcp_servers["docs"].overrides["search"]
    assert search.rename == "find_docs" and search.annotations is not None
    assert search.annotations.read_only_hint is True
    assert search.as_config()["annotations"] == {"readOnlyHint": True}


def test_a_bundle_named_like_a_server_is_refused_naming_both() -> None:
    problems = problems_of(SERVERS + "mcp_bundles:\n  docs:\n    tools: ['crm__*']\n")
    assert problems == [
        ConfigProblem(
            "mcp_bundles.docs", "clashes with mcp_servers.docs; a bundle and a server cannot share /mcp/docs", 10
        )
    ]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("crmm__*", "'crmm__*': no MCP server named 'crmm' in mcp_servers"),
        ("search", "'search' cannot match anything: write <server>__<name>, e.g. crm__*"),
        ("crm__a, crm__b", "'crm__a, crm__b': one pattern per list item, without spaces or commas"),
        ("crm__[ab", "'crm__[ab': unclosed '[' (write '[[]' for a literal '[')"),
        ("", "an empty pattern matches nothing; write <server>__<name>, e.g. crm__*"),
    ],
)
def test_a_bad_tool_pattern_is_named_by_its_field_and_index(pattern: str, message: str) -> None:
    problems = problems_of(SERVERS + f"mcp_bundles:\n  support:\n    tools: ['crm__*', '{pattern}']\n")
    assert problems == [ConfigProblem("mcp_bundles.support.tools[1]", message, 11)]


def test_resource_patterns_are_hub_uris_or_qualified_names_of_configured_servers() -> None:
    problems = problems_of(SERVERS + "mcp_bundles:\n  s:\n    resources: ['isthmus://wiki/*', 'isthmus://docs']\n")
    assert [(p.path, p.message) for p in problems] == [
        ("mcp_bundles.s.resources[0]", "'isthmus://wiki/*': no MCP server named 'wiki' in mcp_servers"),
        (
            "mcp_bundles.s.resources[1]",
            "'isthmus://docs': write isthmus://<server>/<uri> or <server>__<name>",
        ),
    ]


def test_a_server_rename_onto_another_tool_of_the_server_is_refused_naming_it() -> None:
    text = SERVERS.replace("rename: find_docs", "rename: get_page")
    assert problems_of(text) == [
        ConfigProblem("mcp_servers.docs.overrides.search.rename", "'get_page' clashes with the tool docs__get_page", 8)
    ]


def test_two_renames_onto_one_name_are_refused() -> None:
    text = SERVERS + "      get_page: {rename: find_docs}\n"
    [problem] = problems_of(text)
    assert problem.path == "mcp_servers.docs.overrides.search.rename"
    assert problem.message == "'find_docs' clashes with docs__get_page, renamed to it here too"


def test_a_bundle_rename_onto_a_name_the_server_gives_is_refused() -> None:
    bundle = BUNDLE.replace("tools: [", "tools: ['docs__get_page', ").replace(
        "docs__search: {rename: lookup}", "docs__get_page: {rename: find_docs}"
    )
    assert problems_of(SERVERS + bundle) == [
        ConfigProblem(
            "mcp_bundles.support.overrides.docs__get_page.rename",
            "'find_docs' clashes with docs__search, renamed to it in mcp_servers.docs.overrides",
            15,
        )
    ]


def test_overrides_must_name_a_tool_the_bundle_and_the_server_serve() -> None:
    bundle = BUNDLE.replace("docs__search: {rename: lookup}", "docs__get_page: {}\n      crm__*: {}")
    bundle += "  other:\n    tools: ['docs__*']\n    overrides:\n      docs__secret: {}\n"
    assert [(p.path, p.message) for p in problems_of(SERVERS + bundle)] == [
        ("mcp_bundles.support.overrides.docs__get_page", "not one of this bundle's tools ['crm__*', 'docs__search']"),
        ("mcp_bundles.support.overrides.crm__*", "name one tool as <server>__<tool> (no globs)"),
        ("mcp_bundles.other.overrides.docs__secret", "mcp_servers.docs.tools does not expose 'secret'"),
    ]


def test_a_server_override_of_a_tool_the_server_does_not_expose_is_refused() -> None:
    text = SERVERS + "      delete_page: {description: gone}\n"
    [problem] = problems_of(text)
    assert problem.path == "mcp_servers.docs.overrides.delete_page"
    assert "do not expose 'delete_page'" in problem.message


def test_override_fields_are_checked() -> None:
    problems = problems_of(SERVERS.replace("rename: find_docs", "rename: 'find docs'"))
    assert [(p.path, p.message) for p in problems] == [
        (
            "mcp_servers.docs.overrides.search.rename",
            "'find docs' is not a tool name: use 1-128 letters, digits, '_', '.' or '-'",
        )
    ]
    problems = problems_of(SERVERS.replace("readOnlyHint: true", "readOnly: true"))
    assert [p.path for p in problems] == ["mcp_servers.docs.overrides.search.annotations.readOnly"]


@given(st.text(max_size=40))
def test_any_rename_either_loads_as_given_or_is_refused_by_name(rename: str) -> None:
    try:
        override = ToolOverride.model_validate({"rename": rename})
    except ValueError as exc:
        assert "is not a tool name" in str(exc)
    else:
        assert override.rename == rename and 1 <= len(rename) <= 128
        assert all(char.isascii() and (char.isalnum() or char in "_.-") for char in rename)
