"""Breakers and key cool-downs shared through Redis: what one replica sees, another skips, with no Redis read per
request (each replica here is a `Health` with its own injected clock and a `RedisHealthSync` on a private Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest

from llm_proxy.health import Health, HealthChange
from llm_proxy.health_sync import RedisHealthSync
from tests.toolpolicy.limits_support import RedisServer
from toolpolicy.settings import LlmSettings

pytestmark = pytest.mark.anyio

SETTINGS = LlmSettings(breaker_failures=2, breaker_cooldown=30.0, key_cooldown=60.0)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_changes_are_told_once_when_they_happen_and_applied_ones_are_not_told_again() -> None:
    told: list[HealthChange] = []
    health = Health(SETTINGS, clock=Clock())
    health.listener = told.append
    health.failed("openai")
    assert told == []  # one failure of two opens nothing
    health.failed("openai")
    health.failed("openai")  # already open: nothing new to say
    health.succeeded("anthropic")  # a closed breaker closing is no news
    health.succeeded("openai")
    health.cool("openai#0", 60.0)
    assert told == [
        HealthChange("open", "openai", 30.0),
        HealthChange("close", "openai"),
        HealthChange("cool", "openai#0", 60.0),
    ]
    told.clear()
    health.apply(HealthChange("open", "gemini", 5.0))
    health.apply(HealthChange("close", "gemini"))
    assert told == []


def test_an_applied_open_breaker_or_cool_down_skips_the_name_until_it_ends() -> None:
    clock = Clock()
    health = Health(SETTINGS, clock=clock)
    health.apply(HealthChange("open", "openai", 10.0))
    health.apply(HealthChange("cool", "openai#1", 20.0))
    assert not health.available("openai") and not health.available("openai#1")
    assert health.summary() == {"openai": "circuit open", "openai#1": "key cooling down"}
    clock.now += 10.0
    assert health.available("openai") and not health.available("openai#1")
    health.failed("openai")  # the probe after an applied open fails: open again at once
    assert not health.available("openai")
    clock.now += 10.0
    assert health.available("openai#1")


@pytest.fixture
async def replicas(private_redis: RedisServer) -> AsyncIterator[tuple[Health, Health, RedisHealthSync]]:
    first, second = Health(SETTINGS, clock=Clock()), Health(SETTINGS, clock=Clock(50.0))
    syncs = [RedisHealthSync(first, private_redis.url), RedisHealthSync(second, private_redis.url)]
    for sync in syncs:
        await sync.start()
    with anyio.fail_after(10):
        for sync in syncs:
            await sync.subscribed.wait()
    try:
        yield first, second, syncs[0]
    finally:
        for sync in syncs:
            await sync.stop()


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Poll until `condition` holds; the bound is for a hung test only."""
    try:
        with anyio.fail_after(10):
            while not condition():
                await anyio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def test_a_breaker_opened_on_one_replica_is_skipped_by_the_other_and_closed_there_too(
    replicas: tuple[Health, Health, RedisHealthSync],
) -> None:
    first, second, _ = replicas
    first.failed("openai", "openai#0")
    first.failed("openai", "openai#0")
    await _until(lambda: not second.available("openai"), "the open breaker to reach the second replica")
    assert not second.available("openai#0")
    first.succeeded("openai", "openai#0")
    await _until(lambda: second.available("openai"), "the closed breaker to reach the second replica")
    assert second.available("openai#0")


async def test_a_cooling_key_is_skipped_by_the_other_replica_and_a_replica_started_later_reads_the_state(
    replicas: tuple[Health, Health, RedisHealthSync], private_redis: RedisServer
) -> None:
    first, second, sync = replicas
    first.cool("anthropic#2", 60.0)
    await _until(lambda: not second.available("anthropic#2"), "the cool-down to reach the second replica")
    assert await sync.redis.hexists("isthmus:llm-health:state", "cool:anthropic#2")
    late = Health(SETTINGS, clock=Clock(7.0))
    joining = RedisHealthSync(late, private_redis.url)
    await joining.start()
    try:
        with anyio.fail_after(10):
            await joining.subscribed.wait()
        assert late.summary() == {"anthropic#2": "key cooling down"}
    finally:
        await joining.stop()


async def test_a_replica_keeps_its_own_breakers_while_redis_is_away_and_catches_up_when_it_is_back(
    private_redis: RedisServer,
) -> None:
    first, second = Health(SETTINGS, clock=Clock()), Health(SETTINGS, clock=Clock())
    syncs = [
        RedisHealthSync(first, private_redis.url, reconnect_delay=0.05),
        RedisHealthSync(second, private_redis.url),
    ]
    for sync in syncs:
        await sync.start()
    try:
        with anyio.fail_after(10):
            await syncs[0].subscribed.wait()
        private_redis.stop()
        await _until(lambda: not syncs[0].subscribed.is_set(), "the first replica to notice Redis is gone")
        second.failed("gemini", "gemini")  # publishing fails: logged, and the second replica still skips it
        assert not second.available("gemini") and first.available("gemini")
        private_redis.start()
        second.cool("gemini#0", 60.0)  # published once Redis is back: the first replica reads it on reconnect
        await _until(lambda: not first.available("gemini#0"), "the first replica to catch up")
    finally:
        for sync in syncs:
            await sync.stop()


async def test_a_deployment_with_another_redis_prefix_neither_receives_nor_reads_the_others_breakers(
    replicas: tuple[Health, Health, RedisHealthSync], private_redis: RedisServer
) -> None:
    production, _, sync = replicas

    async def published(name: str) -> None:
        production.cool(name, 60.0)
        with anyio.fail_after(10):
            while not await sync.redis.hexists("isthmus:llm-health:state", f"cool:{name}"):
                await anyio.sleep(0.01)  # published too: the state and the message go in one pipeline

    await published("openai#0")
    staging = [Health(SETTINGS, clock=Clock()), Health(SETTINGS, clock=Clock())]
    syncs = [RedisHealthSync(health, private_redis.url, redis_prefix="staging:") for health in staging]
    for each in syncs:
        await each.start()
    try:
        with anyio.fail_after(10):
            for each in syncs:
                await each.subscribed.wait()
        assert staging[1].summary() == {}  # the production state is not read
        await published("openai#1")  # published before staging's own change, so it would have arrived first
        staging[0].cool("anthropic#0", 60.0)
        await _until(lambda: not staging[1].available("anthropic#0"), "the cool-down to reach the other staging one")
        assert staging[1].summary() == {"anthropic#0": "key cooling down"}
        assert await sync.redis.hkeys("staging:llm-health:state") == [b"cool:anthropic#0"]
    finally:
        for each in syncs:
            await each.stop()
