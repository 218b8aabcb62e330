"""The dashboard in a real browser: Debian's headless Chromium against an `isthmus serve` process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.isthmus import test_cli
from tests.isthmus.test_cli import Server, _env, http
from tests.isthmus.ui.browser_support import Browser, Watch, require_chromium, screenshot

ADMIN_KEY = "browser-admin-key"
KEY = "isk-browser-playground-key"
CONFIG = """
store: sqlite+aiosqlite:///{store}
admin_key: {admin_key}
providers:
  echo: {{kind: echo}}
mcp_servers:
  demo: {{command: isthmus-demo-mcp}}
  search: {{url: "http://127.0.0.1:9/mcp", code_mode: true}}
# The unreachable `search` server tries again an hour after its first failure: between two attempts it is "down",
# and a page drawn during an attempt would show it "connecting" (seen on a loaded machine).
mcp: {{backoff_initial: 3600, backoff_max: 3600}}
customers: [{{name: acme}}]
teams: [{{name: support, customer: acme}}]
virtual_keys:
  - {{name: playground, team: support, value: {key}, models: ["echo/*"], mcp: {{demo: ["*"]}},
      budgets: [{{max_usd: 25, period: 1d}}], rate_limit: {{requests: 600/1m}}}}
  - {{name: reporting, customer: acme, models: ["echo/echo-1"], value: isk-browser-reporting-key}}
pricing:
  "echo/*": {{input: 2.5, output: 10}}
audit: {{flush_interval: 0.05}}
"""
NAV = ("Overview", "Keys", "Teams", "MCP servers", "Logs", "Audit", "Playground")
HEADINGS = dict(zip(NAV, ("Overview", "Keys", "Teams", "MCP servers", "Logs", "Audit", "Playground"), strict=True))


def _traffic(server: Server) -> None:
    """Some requests to chart and list: chats, a refused model, tool calls."""
    auth = {"authorization": f"Bearer {KEY}"}
    for text in ("Hello there", "What is the capital of France?", "Summarise the incident report"):
        chat = {"model": "echo/echo-1", "messages": [{"role": "user", "content": text}]}
        assert http("POST", f"{server.url}/v1/chat/completions", body=chat, headers=auth).status == 200
    refused = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert http("POST", f"{server.url}/v1/chat/completions", body=refused, headers=auth).status == 403
    call = {"name": "demo__add", "arguments": {"a": 2, "b": 3}}
    assert http("POST", f"{server.url}/v1/mcp/tools/call", body=call, headers=auth).status == 200


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_chromium()
    folder = tmp_path_factory.mktemp("ui")
    config = folder / "isthmus.yaml"
    config.write_text(CONFIG.format(store=folder / "gw.db", admin_key=ADMIN_KEY, key=KEY))
    with pytest.MonkeyPatch.context() as patch:
        # Chromium, two MCP servers and the gateway start on shared cores: a bound for a hung start only.
        patch.setattr(test_cli, "READY_TIMEOUT", 60.0)
        server = Server(folder, ["--config", str(config)], _env()).start()
    try:
        _traffic(server)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium(gateway: Server) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=require_chromium(), headless=True)
        try:
            yield Browser(browser, gateway.url)
        finally:
            browser.close()


@pytest.fixture
def watched(chromium: Browser) -> Iterator[tuple[Any, Watch]]:
    yield from chromium.open()


@pytest.fixture
def page(watched: tuple[Any, Watch]) -> Any:
    return watched[0]


def sign_in(page: Any) -> None:
    page.goto("/ui/")
    page.get_by_label("Admin key").fill(ADMIN_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/ui/overview")


def admin_get(gateway: Server, path: str) -> Any:
    return http("GET", f"{gateway.url}{path}", headers={"authorization": f"Bearer {ADMIN_KEY}"}).body


def test_a_wrong_key_stays_on_the_sign_in_page_and_the_admin_key_signs_in(watched: tuple[Any, Watch]) -> None:
    from playwright.sync_api import expect

    page, watch = watched
    watch.expect_error("status of 401")  # the refusal is a 401 page

    page.goto("/ui/overview")
    expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
    screenshot(page, "sign-in")
    page.get_by_label("Admin key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong admin key")
    expect(page).to_have_url(re.compile(r"/ui/sign-in$"))
    # The keyboard alone: focus the field, type, Enter.
    page.get_by_label("Admin key").focus()
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/overview$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "isthmus_ui")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_each_page_opens_from_the_navigation(page: Any) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    nav = page.get_by_role("navigation", name="Main")
    for name in NAV:
        nav.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(HEADINGS[name])
        expect(nav.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")
        if name == "Overview":
            expect(page.locator(".uplot")).to_have_count(4)
            expect(page.get_by_role("row", name=re.compile("playground"))).to_be_visible()
        if name == "MCP servers":
            expect(page.get_by_role("row", name=re.compile("demo"))).to_contain_text("ready")
            expect(page.get_by_role("row", name=re.compile("search"))).to_contain_text("down")
        if name == "Logs":
            expect(page.get_by_role("cell", name="demo/add").first).to_be_visible()
        if name == "Audit":
            expect(page.locator("#chain")).to_contain_text("verified")
        screenshot(page, name.lower().replace(" ", "-"))


def test_chart_axes_label_sub_cent_steps_with_the_decimals_they_need(page: Any) -> None:
    """The spend chart of a day of cheap requests ticks in hundred-thousandths of a dollar: each label differs."""
    sign_in(page)
    page.wait_for_function("window.IsthmusCharts !== undefined")
    label = "(args) => window.IsthmusCharts.axisValues(null, args[0], 1, 50, args[1])"
    assert page.evaluate(label, [[0, 0.00001, 0.00002, None], 0.00001]) == ["0", "0.00001", "0.00002", ""]
    assert page.evaluate(label, [[0, 0.00025, 0.0005], 0.00025]) == ["0", "0.00025", "0.0005"]
    assert page.evaluate(label, [[0, 2.5, 5], 2.5]) == ["0", "2.5", "5"]
    assert page.evaluate(label, [[0, 2000, 4000], 2000]) == ["0", "2,000", "4,000"]


def test_the_log_opens_a_requests_detail_with_its_timings(page: Any) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    page.goto("/ui/logs?status=error")
    expect(page.get_by_role("row")).to_have_count(2)  # header and the refused request
    page.get_by_role("row").nth(1).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Request")
    expect(page.locator(".facts")).to_contain_text("403")
    page.goto("/ui/logs")
    page.get_by_label("Kind").select_option("llm")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("cell", name="demo/add")).to_have_count(0)
    page.get_by_role("row").filter(has_text="echo/echo-1").first.get_by_role("link").click()
    expect(page.locator(".facts")).to_contain_text("Attempts")
    screenshot(page, "log-detail")


def test_a_key_created_and_revoked_in_the_ui_is_seen_so_by_the_admin_api(page: Any, gateway: Server) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="Keys", exact=True).click()
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Name").fill("browser-made")
    page.get_by_label("Team").select_option("support")
    page.get_by_label("Model allowlist").fill("echo/*")
    page.get_by_label("MCP allowlist").fill("demo: echo, add")
    page.get_by_label("Budgets").fill("5 per 1d")
    page.get_by_label("Requests limit").fill("30/1m")
    screenshot(page, "keys-create")
    page.get_by_role("button", name="Create", exact=True).click()
    secret = page.get_by_label("Secret").input_value()
    assert secret.startswith("isk-")
    record = admin_get(gateway, "/admin/keys/browser-made")
    assert (record["team"], record["models"], record["mcp"]) == ("support", ["echo/*"], {"demo": ["echo", "add"]})
    assert record["budgets"][0]["max_usd"] == 5 and record["rate_limit"]["requests"] == "30/1m"
    assert record["revoked_at"] is None
    page.get_by_role("link", name="Open key browser-made").click()
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("status")).to_have_text("Saved.")
    assert admin_get(gateway, "/admin/keys/browser-made")["revoked_at"] is not None
    refused = http(
        "POST", f"{gateway.url}/v1/authorize", body={"model": "echo/x"}, headers={"authorization": f"Bearer {secret}"}
    )
    assert refused.status == 401


def test_the_playground_streams_an_answer_and_calls_a_tool(page: Any) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="Playground", exact=True).click()
    # Its buttons work once its deferred script ran: wait for the new page's load, not only for its elements.
    page.wait_for_url("**/ui/playground")
    page.get_by_label("Virtual key").fill(KEY)
    page.get_by_role("button", name="Use key").click()
    expect(page.locator("#pg-key-status")).to_contain_text("tools available")
    expect(page.get_by_label("Model")).to_have_value(re.compile(r"^echo/"))
    page.get_by_label("Message").fill("streamed through the gateway word by word")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_role("log", name="Answer")).to_have_text("streamed through the gateway word by word")
    expect(page.locator("#pg-chat-meta")).to_contain_text("route echo/")
    page.get_by_label("Tool", exact=True).select_option("demo__add")
    page.get_by_label("Arguments (JSON)").fill('{"a": 20, "b": 22}')
    page.get_by_role("button", name="Call tool").click()
    expect(page.get_by_role("log", name="Tool result")).to_contain_text("42")
    screenshot(page, "playground")


def test_an_mcp_server_disabled_in_the_ui_goes_down_and_comes_back_when_enabled(page: Any, gateway: Server) -> None:
    from playwright.sync_api import expect

    sign_in(page)
    page.get_by_role("link", name="MCP servers", exact=True).click()
    page.wait_for_url("**/ui/mcp")  # loaded, htmx with it, before its buttons are pressed
    page.get_by_role("button", name="Disable demo").click()
    expect(page.get_by_role("row", name=re.compile("demo"))).to_contain_text("disabled")
    servers = {server["name"]: server for server in admin_get(gateway, "/admin/mcp/servers")["data"]}
    assert (servers["demo"]["state"], servers["demo"]["enabled"]) == ("disabled", False)
    page.get_by_role("button", name="Enable demo").click()
    expect(page.get_by_role("button", name="Disable demo")).to_be_visible()
    for _ in range(100):  # the reconnection happens in the gateway; the page shows it on reload
        page.reload()
        if "ready" in page.get_by_role("row", name=re.compile("demo")).inner_text():
            break
        page.wait_for_timeout(100)
    expect(page.get_by_role("row", name=re.compile("demo"))).to_contain_text("ready")
