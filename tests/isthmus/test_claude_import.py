from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from isthmus.claude_import import convert_claude_config, import_claude_file
from toolpolicy.config import load_config_text

CLAUDE_DESKTOP = {
    "mcpServers": {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
        },
        "github": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literalsecret"},
        },
    }
}

CURSOR = {
    "mcpServers": {
        "remote-docs": {"url": "https://docs.example.com/mcp", "headers": {"Authorization": "Bearer abc"}},
        "legacy": {"type": "sse", "url": "https://legacy.example.com/sse"},
        "streamed": {"type": "streamable-http", "url": "https://new.example.com/mcp"},
        "local": {
            "type": "stdio",
            "command": "uvx",
            "args": ["mcp-server-fetch"],
            "env": {"API_KEY": "${env:FETCH_KEY}", "PORT": 8080},
            "envFile": ".env",
        },
    }
}


def test_a_claude_desktop_config_converts_to_stdio_servers() -> None:
    servers, notes = convert_claude_config(CLAUDE_DESKTOP)

    assert servers == {
        "filesystem": {
            "command": "npx",
            "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop"],
        },
        "github": {
            "command": "docker",
            "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
            "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_literalsecret"},
        },
    }
    assert len(notes) == 1
    assert "env.GITHUB_PERSONAL_ACCESS_TOKEN" in notes[0] and "${VAR}" in notes[0]


def test_a_cursor_config_converts_remote_servers_and_transports() -> None:
    servers, notes = convert_claude_config(CURSOR)

    assert servers["remote-docs"] == {
        "url": "https://docs.example.com/mcp",
        "headers": {"Authorization": "Bearer abc"},
    }
    assert servers["legacy"] == {"url": "https://legacy.example.com/sse", "transport": "sse"}
    assert servers["streamed"] == {"url": "https://new.example.com/mcp"}
    assert servers["local"] == {
        "command": "uvx",
        "args": ["mcp-server-fetch"],
        "env": {"API_KEY": "${FETCH_KEY}", "PORT": "8080"},
    }
    assert any("headers.Authorization" in note for note in notes)
    assert any("envFile" in note and "dropped" in note for note in notes)
    assert any("${env:VAR}" in note for note in notes)


def test_server_names_are_made_valid_and_unique_with_a_note_each() -> None:
    document = {
        "mcpServers": {
            "My Server": {"command": "a"},
            "my-server": {"command": "b"},
            "my__server": {"command": "c"},
            "GitHub": {"command": "d"},
            "!!!": {"command": "e"},
        }
    }

    servers, notes = convert_claude_config(document)

    assert list(servers) == ["my-server-2", "my-server", "my-server-3", "github", "server"]
    assert servers["my-server"] == {"command": "b"}
    assert servers["my-server-2"] == {"command": "a"}
    assert "renamed server 'My Server' to 'my-server-2'" in notes[0]
    assert sum("renamed" in note for note in notes) == 4


def test_disabled_becomes_enabled_false_and_unknown_fields_are_dropped() -> None:
    document = {"mcpServers": {"x": {"command": "x", "disabled": True, "autoApprove": ["a"], "alwaysAllow": []}}}

    servers, notes = convert_claude_config(document)

    assert servers == {"x": {"command": "x", "enabled": False}}
    assert notes == ["server 'x': dropped unsupported field(s) alwaysAllow, autoApprove"]


def test_an_entry_without_command_or_url_is_refused_naming_the_server() -> None:
    with pytest.raises(ValueError, match="server 'broken'.*exactly one of 'command'"):
        convert_claude_config({"mcpServers": {"ok": {"command": "x"}, "broken": {"args": ["y"]}}})


def test_an_unknown_type_is_refused_naming_the_server() -> None:
    with pytest.raises(ValueError, match="server 'w'.*unsupported type 'websocket'"):
        convert_claude_config({"mcpServers": {"w": {"type": "websocket", "url": "ws://x"}}})


def test_the_imported_file_is_yaml_that_isthmus_loads(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(CURSOR), encoding="utf-8")

    text = import_claude_file(path)

    assert text.startswith("# ")
    body: Any = yaml.safe_load(text)
    assert list(body) == ["mcp_servers"]
    settings = load_config_text(text, environ={"FETCH_KEY": "k"})
    assert settings.mcp_servers["legacy"].remote_transport == "sse"
    assert settings.mcp_servers["local"].env["API_KEY"].get_secret_value() == "k"


def test_a_file_without_notes_has_no_comments(tmp_path: Path) -> None:
    path = tmp_path / "claude_desktop_config.json"
    path.write_text(json.dumps({"mcpServers": {"time": {"command": "mcp-server-time"}}}), encoding="utf-8")

    assert import_claude_file(path) == "mcp_servers:\n  time:\n    command: mcp-server-time\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON: .* line 1, column 2"),
        ('{"servers": {}}', "has no 'mcpServers' object"),
        ("[1, 2]", "has no 'mcpServers' object"),
    ],
)
def test_an_unusable_file_is_a_clear_value_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ValueError, match=message):
        import_claude_file(path)


def test_a_missing_file_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read .*absent.json"):
        import_claude_file(tmp_path / "absent.json")
