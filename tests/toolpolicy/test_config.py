from __future__ import annotations

from pathlib import Path

import pytest

from toolpolicy.config import ConfigError, ConfigProblem, load_config, load_config_text
from toolpolicy.settings import GatewaySettings

EXAMPLE = """\
listen: 127.0.0.1:8080
store: sqlite+aiosqlite:///./isthmus.db      # postgresql+asyncpg://... to share state between replicas
redis: null                                  # redis://127.0.0.1:6379/0 to share counters between replicas
admin_key: ${ISTHMUS_ADMIN_KEY}

providers:
  openai:
    kind: openai
    base_url: https://api.openai.com/v1
    keys:
      - value: ${OPENAI_API_KEY}
        weight: 2
      - value: ${OPENAI_API_KEY_2:-}
        weight: 1

mcp_servers:
  time:
    command: mcp-server-time
    args: ["--local-timezone", "UTC"]
  docs:
    url: http://127.0.0.1:9000/mcp
    headers: {Authorization: "Bearer ${DOCS_TOKEN}"}

customers:
  - name: acme
teams:
  - name: support
    customer: acme
virtual_keys:
  - name: support-bot
    team: support
    value: ${SUPPORT_BOT_KEY}
    models: ["openai/gpt-4o-mini", "openai/text-embedding-*"]
    mcp: {time: ["*"], docs: ["search_*", "get_page"]}
"""

ENVIRON = {
    "OPENAI_API_KEY": "sk-openai-test",
    "ISTHMUS_ADMIN_KEY": "admin-test",
    "DOCS_TOKEN": "docs-token-test",
    "SUPPORT_BOT_KEY": "support-bot-test",
}


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ=ENVIRON if environ is None else environ)
    return caught.value.problems


def test_the_example_config_loads_with_its_environment() -> None:
    settings = load_config_text(EXAMPLE, environ=ENVIRON)

    assert settings.listen == "127.0.0.1:8080"
    assert settings.redis is None
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == "admin-test"
    openai = settings.providers["openai"]
    assert [key.value.get_secret_value() for key in openai.keys] == ["sk-openai-test", ""]
    assert [key.weight for key in openai.keys] == [2.0, 1.0]
    assert len(openai.usable_keys) == 1
    assert settings.mcp_servers["time"].args == ["--local-timezone", "UTC"]
    assert settings.mcp_servers["docs"].headers["Authorization"].get_secret_value() == "Bearer docs-token-test"
    key = settings.virtual_keys[0]
    assert key.value is not None and key.value.get_secret_value() == "support-bot-test"
    assert key.mcp == {"time": ["*"], "docs": ["search_*", "get_page"]}


def test_load_config_reads_the_file_and_names_it_as_the_source(tmp_path: Path) -> None:
    path = tmp_path / "isthmus.yaml"
    path.write_text(EXAMPLE, encoding="utf-8")

    assert load_config(path, environ=ENVIRON).teams[0].name == "support"
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={k: v for k, v in ENVIRON.items() if k != "DOCS_TOKEN"})
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}: 1 problem\n")


def test_a_missing_variable_is_reported_at_its_path_and_line() -> None:
    environ = {k: v for k, v in ENVIRON.items() if k != "OPENAI_API_KEY"}

    problems = problems_of(EXAMPLE, environ)

    assert problems == [
        ConfigProblem("providers.openai.keys[0].value", "environment variable OPENAI_API_KEY is not set", 11)
    ]
    assert str(problems[0]) == (
        "providers.openai.keys[0].value: environment variable OPENAI_API_KEY is not set (line 11)"
    )


def test_a_default_is_used_when_the_variable_is_unset_or_empty() -> None:
    text = "listen: ${HOST:-0.0.0.0}:${PORT:-9090}\nkey_cache_ttl: ${TTL:-2}\n"

    assert load_config_text(text, environ={}).listen == "0.0.0.0:9090"
    assert load_config_text(text, environ={"HOST": "", "PORT": ""}).listen == "0.0.0.0:9090"
    assert load_config_text(text, environ={"HOST": "10.0.0.1", "PORT": "80"}).listen == "10.0.0.1:80"
    assert load_config_text(text, environ={}).key_cache_ttl == 2.0


def test_a_doubled_dollar_escapes_a_literal_reference() -> None:
    text = "customers:\n  - name: acme\n    metadata: {note: 'costs $${PRICE} and ${UNIT}'}\n"

    settings = load_config_text(text, environ={"UNIT": "USD", "PRICE": "never"})

    assert settings.customers[0].metadata == {"note": "costs ${PRICE} and USD"}


def test_keys_are_not_interpolated() -> None:
    text = "customers:\n  - name: acme\n    metadata: {'${KEY}': 1}\n"

    assert load_config_text(text, environ={}).customers[0].metadata == {"${KEY}": 1}


def test_malformed_references_are_reported_at_their_path() -> None:
    text = "customers:\n  - name: acme\n    metadata:\n      a: ${1BAD}\n      b: x ${OPEN\n"

    problems = problems_of(text)

    assert [(p.path, p.line) for p in problems] == [("customers[0].metadata.a", 4), ("customers[0].metadata.b", 5)]
    assert "invalid environment variable reference" in problems[0].message
    assert "unterminated" in problems[1].message


def test_several_problems_are_reported_at_once_in_line_order() -> None:
    text = """\
listen: nowhere
admin_key: ${ADMIN}
providers:
  openai:
    kind: openai
    keys:
      - value: ${KEY_ONE}
      - value: ${KEY_TWO}
"""

    with pytest.raises(ConfigError) as caught:
        load_config_text(text, environ={}, source="isthmus.yaml")

    assert [(p.path, p.line) for p in caught.value.problems] == [
        ("listen", 1),
        ("admin_key", 2),
        ("providers.openai.keys[0].value", 7),
        ("providers.openai.keys[1].value", 8),
    ]
    lines = str(caught.value).splitlines()
    assert lines[0] == "isthmus.yaml: 4 problems"
    assert len(lines) == 5
    assert "listen: must be HOST:PORT, e.g. 127.0.0.1:8080 (line 1)" in lines[1]


def test_an_unset_variable_does_not_also_fail_validation() -> None:
    problems = problems_of("listen: ${LISTEN}\n", {})

    assert [str(p) for p in problems] == ["listen: environment variable LISTEN is not set (line 1)"]


def test_an_unknown_field_is_reported_with_a_suggestion_and_its_line() -> None:
    text = EXAMPLE.replace('    models: ["openai', '    modles: ["openai')

    problems = problems_of(text)

    assert problems == [ConfigProblem("virtual_keys[0].modles", "unknown field 'modles' (did you mean 'models'?)", 33)]


def test_an_unknown_field_far_from_any_name_gets_no_suggestion() -> None:
    problems = problems_of("zzz: 1\n")

    assert problems == [ConfigProblem("zzz", "unknown field 'zzz'", 1)]


def test_a_wrong_type_is_reported_at_its_path_and_line() -> None:
    problems = problems_of(EXAMPLE.replace("weight: 2", "weight: heavy"))

    assert len(problems) == 1
    assert problems[0].path == "providers.openai.keys[0].weight"
    assert problems[0].line == 12
    assert "number" in problems[0].message


def test_a_missing_required_field_is_reported_at_its_parent_line() -> None:
    problems = problems_of("providers:\n  openai:\n    base_url: http://x\n")

    assert problems == [ConfigProblem("providers.openai.kind", "required field is missing", 2)]


def test_a_model_level_check_is_reported_without_pydantic_prefixes() -> None:
    problems = problems_of("mcp_servers:\n  docs:\n    args: [x]\n")

    assert len(problems) == 1
    assert problems[0].path == "mcp_servers.docs"
    assert problems[0].line == 2
    assert problems[0].message.startswith("give exactly one of 'command'")


def test_malformed_yaml_is_one_problem_with_line_and_column() -> None:
    problems = problems_of("listen: 127.0.0.1:8080\nproviders:\n  openai: {kind: openai\n")

    assert len(problems) == 1
    assert problems[0].path == ""
    assert problems[0].line is not None and problems[0].line >= 3
    assert "invalid YAML at column" in problems[0].message
    assert "Traceback" not in problems[0].message


def test_malformed_yaml_does_not_quote_the_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_text('admin_key: "s3cr3t-in-yaml\n', environ={})

    assert "s3cr3t-in-yaml" not in str(caught.value)


def test_a_duplicate_key_is_reported_with_both_lines() -> None:
    problems = problems_of("listen: 127.0.0.1:1\nredis: null\nlisten: 127.0.0.1:2\n")

    assert problems == [ConfigProblem("listen", "duplicate key 'listen' (first at line 1)", 3)]


def test_a_dangling_reference_is_reported_at_its_line() -> None:
    problems = problems_of(EXAMPLE.replace("    team: support\n", "    team: nope\n"))

    assert problems == [ConfigProblem("virtual_keys[0].team", "no team named 'nope' in teams", 31)]


def test_a_reference_to_an_unknown_server_points_at_the_key_mapping() -> None:
    problems = problems_of(EXAMPLE.replace("docs: [", "wiki: ["))

    assert problems == [ConfigProblem("virtual_keys[0].mcp.wiki", "no MCP server named 'wiki'", 34)]


def test_secret_values_never_appear_in_errors_or_reprs() -> None:
    secret = "sk-VERY-DISTINCTIVE-7f3a9c"
    environ = {**ENVIRON, "OPENAI_API_KEY": secret, "DOCS_TOKEN": secret}
    broken = EXAMPLE.replace("weight: 2", f"weight: {secret}").replace("kind: openai", f"kind: {secret}")
    broken += f"audit: {{batch_size: {secret}}}\nredis: {secret}-dup\n"

    with pytest.raises(ConfigError) as caught:
        load_config_text(broken.replace("redis: null", f"redis: {secret}"), environ=environ)
    settings = load_config_text(EXAMPLE, environ=environ)

    assert len(caught.value.problems) >= 3
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    assert secret not in repr(settings)
    assert secret not in str(settings)


def test_an_empty_document_gives_the_defaults() -> None:
    assert load_config_text("", environ={}) == GatewaySettings()
    assert load_config_text("# nothing here\n", environ={}) == GatewaySettings()


def test_a_document_that_is_not_a_mapping_is_refused() -> None:
    problems = problems_of("- listen\n- store\n")

    assert len(problems) == 1
    assert "mapping" in problems[0].message


def test_yaml_anchors_and_merge_keys_work() -> None:
    text = """\
mcp_servers:
  base: &base {command: srv, timeout: 5}
  other:
    <<: *base
    timeout: 9
"""

    servers = load_config_text(text, environ={}).mcp_servers

    assert (servers["base"].command, servers["base"].timeout) == ("srv", 5.0)
    assert (servers["other"].command, servers["other"].timeout) == ("srv", 9.0)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})

    assert caught.value.source == str(path)
    assert caught.value.problems == [ConfigProblem("", "config file not found", None)]
    assert str(caught.value) == f"{path}: 1 problem\n  config file not found"


@pytest.mark.parametrize(
    "prefix", ['""', '"staging isthmus:"', '"tab\\there:"', '"line\\n"', '"c1\\x9b"', '"' + "p" * 65 + '"']
)
def test_an_unusable_redis_prefix_is_refused_naming_the_field(prefix: str) -> None:
    problems = problems_of(f"redis: redis://127.0.0.1:6379/0\nredis_prefix: {prefix}\n")

    assert [(p.path, p.line) for p in problems] == [("redis_prefix", 2)]
    assert "1-64 characters without whitespace or control characters" in problems[0].message


def test_the_cache_prefix_follows_the_redis_prefix_unless_set() -> None:
    default = load_config_text("cache: {}\n", environ={})
    assert default.redis_prefix == "isthmus:" and default.cache is not None
    assert default.cache.redis_prefix == "isthmus:cache:"

    staging = load_config_text("redis_prefix: 'staging:'\ncache: {ttl: 10m}\n", environ={})
    assert staging.cache is not None and staging.cache.redis_prefix == "staging:cache:"

    own = load_config_text("redis_prefix: 'staging:'\ncache: {redis_prefix: 'shared-cache:'}\n", environ={})
    assert own.cache is not None and own.cache.redis_prefix == "shared-cache:"
