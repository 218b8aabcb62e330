"""The LLM proxy tests' mock provider fixture (`mock`), for the drain and reload tests here."""

from tests.llm_proxy.conftest import mock

__all__ = ["mock"]
