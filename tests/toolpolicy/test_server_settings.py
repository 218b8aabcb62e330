"""The `server:` block: defaults, and bad values reported with their config path."""

from __future__ import annotations

import pytest

from toolpolicy.config import ConfigError, load_config_text


def test_defaults_bound_every_connection() -> None:
    server = load_config_text("{}", environ={}).server
    assert (server.header_timeout, server.body_timeout, server.max_connections) == (10.0, 30.0, 4096)
    assert server.max_requests is None


def test_bad_values_name_their_path() -> None:
    text = "server:\n  header_timeout: 0\n  max_connections: -3\n  read_timeout: 5\n"
    with pytest.raises(ConfigError) as raised:
        load_config_text(text, environ={})
    paths = {problem.path for problem in raised.value.problems}
    assert paths == {"server.header_timeout", "server.max_connections", "server.read_timeout"}


def test_values_may_come_from_the_environment() -> None:
    text = "server:\n  header_timeout: ${HEAD:-2.5}\nmetrics_token: ${SCRAPE}\n"
    settings = load_config_text(text, environ={"SCRAPE": "s3cret"})
    assert settings.server.header_timeout == 2.5
    assert settings.metrics_token is not None and settings.metrics_token.get_secret_value() == "s3cret"
