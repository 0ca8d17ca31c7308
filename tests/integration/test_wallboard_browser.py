"""The wallboard in a real browser: Debian's Chromium, headless, under Selenium, on a real
``huntgroup serve`` with its admin listener and a token; SIPp places the call.

The group's only member is a line with no phone registered, so a caller waits in the
queue (``when_empty: wait``). The page is opened through its sign-in form; it must show the
group with nobody waiting, then the caller waiting, then, once the line registers (its
contact a SIPp phone that rings 3 s, answers, talks 8 s and hangs up), the member ringing,
talking, and free again with nobody waiting, the call counted in today's service level.
Each step is read from the page's DOM, updated by the event stream alone: the page is
never reloaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from huntgroup.config.loader import load_config_text
from huntgroup.engine.aio.server import Server
from huntgroup.node import start_admin
from tests.support.browser import console_errors
from tests.support.ports import PortAllocator
from tests.support.sip_harness import DOMAIN, HuntgroupServer, Sipp, group, server_config
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.needs_server]

PILOT = "0140000077"
LINE = "0102030477"
PASSWORD = "s3cret"
TOKEN = "wallboard-browser-token-0123456789"
NONE = "\N{EN DASH}"  # what the page shows for no wait
StartServer = Callable[[dict[str, Any]], HuntgroupServer]
DEADLINE = 60.0  # bounds a failure only: each wait ends as soon as the page shows it

# What the page shows of the group, read from its DOM; and, from the moment it is installed,
# every state the member's row went through (a MutationObserver: no step is missed between
# two polls).
READ_GROUP = """
const section = [...document.querySelectorAll("section.group")]
  .find((s) => s.dataset.group === arguments[0]);
if (!section) { return null; }
const rows = [...section.querySelectorAll("tr[data-member]")];
return {
  waiting: section.querySelector(".waiting").textContent,
  oldest: section.querySelector(".oldest-wait").textContent,
  level: section.querySelector(".service-level").textContent,
  levelDetail: section.querySelector(".sl-detail").textContent,
  members: Object.fromEntries(rows.map((r) => [r.dataset.member, r.dataset.state])),
  connection: document.getElementById("connection").dataset.state,
  seen: window.statesSeen || [],
};
"""
WATCH_STATES = """
window.statesSeen = [];
const note = () => {
  for (const row of document.querySelectorAll("tr[data-member]")) {
    const last = window.statesSeen[window.statesSeen.length - 1];
    if (last !== row.dataset.state) { window.statesSeen.push(row.dataset.state); }
  }
};
note();
new MutationObserver(note).observe(document.getElementById("groups"),
  { childList: true, subtree: true, attributes: true });
"""


def _md5_line(number: str) -> dict[str, Any]:
    """A line storing only ha1_md5: the server challenges it with MD5 alone, which SIPp needs."""
    ha1 = hashlib.md5(f"{number}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()
    return {"number": number, "name": "Desk 77", "ha1_md5": ha1}


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _page_shows(
    browser: webdriver.Chrome, what: str, condition: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Poll the page until ``condition`` holds of what it shows of the group."""
    seen: list[dict[str, Any] | None] = [None]

    def holds(driver: webdriver.Chrome) -> dict[str, Any] | bool:
        shown = driver.execute_script(READ_GROUP, "sales")
        seen[0] = shown
        return shown if shown is not None and condition(shown) else False

    wait = WebDriverWait(browser, DEADLINE, poll_frequency=0.1)
    result: dict[str, Any] = wait.until(holds, message=f"never {what}; last: {seen[0]}")
    return result


def _sign_in(browser: webdriver.Chrome, base: str) -> None:
    """Open the wallboard: sent to the sign-in form, give the token, get the page."""
    browser.get(f"{base}/")
    WebDriverWait(browser, DEADLINE).until(lambda d: d.current_url.endswith("/login"))
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#login button").click()
    WebDriverWait(browser, DEADLINE).until(lambda d: d.current_url == f"{base}/")
    assert TOKEN not in browser.current_url


def test_the_wallboard_shows_a_caller_wait_and_the_member_take_it(
    sipp: Sipp,
    ports: PortAllocator,
    start_server: StartServer,
    browser: webdriver.Chrome,
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    admin_port = ports.port()
    config = server_config(
        ports,
        lines=[_md5_line(LINE)],
        groups=[group("sales", PILOT, "linear", [LINE], no_answer_timeout=20)],
    )
    config["server"]["admin"] = {
        "listen": f"127.0.0.1:{admin_port}",
        "token_file": str(token_file),
        "service_level": 120,  # the caller waits a few seconds: answered within it
    }
    server = start_server(config)
    base = f"http://127.0.0.1:{admin_port}"
    wait_until(lambda: _healthy(base), timeout=DEADLINE, message="no admin listener")

    # the token, once, in the sign-in form: then the page itself
    _sign_in(browser, base)
    shown = _page_shows(browser, "showed the group", lambda g: g["connection"] == "live")
    assert shown["waiting"] == "0" and shown["oldest"] == NONE
    assert shown["members"] == {LINE: "unavailable"}
    assert (shown["level"], shown["levelDetail"]) == (NONE, "0 of 0 calls")
    browser.execute_script(WATCH_STATES)

    # a caller: nobody can take it, it waits; the oldest wait ticks on the page
    caller = sipp.call("caller", server.port, PILOT, "uac_wait_bye.xml", timeout=120)
    server.wait_for_log(r"call \S+: queued")
    shown = _page_shows(browser, "showed the caller waiting", lambda g: g["waiting"] == "1")
    _page_shows(browser, "ticked the oldest wait", lambda g: g["oldest"] not in (NONE, "0:00"))

    # the line registers: it rings, answers, talks, hangs up; nobody waits any more
    phone = sipp.member("phone", "bye", answer_ms=3000, hangup_ms=8000, timeout=120)
    sipp.register("register", server.port, LINE, PASSWORD, contact_port=phone.port).wait()
    _page_shows(
        browser,
        "showed the member talking",
        lambda g: g["members"][LINE] == "talking" and g["waiting"] == "0",
    )
    caller.expect_success(timeout=DEADLINE)
    shown = _page_shows(
        browser,
        "showed the member free again",
        lambda g: g["members"][LINE] == "free" and g["waiting"] == "0",
    )
    assert shown["oldest"] == NONE
    # its record counted: one call, answered within the service level's 120 s
    shown = _page_shows(browser, "counted the call", lambda g: g["level"] == "100.0 %")
    assert shown["levelDetail"] == "1 of 1 calls"
    assert shown["seen"] == ["unavailable", "ringing", "talking", "free"], shown["seen"]
    assert shown["connection"] == "live"
    assert console_errors(browser) == []  # no script error, nothing the CSP refused


def test_a_page_whose_cookie_a_new_token_voids_goes_back_to_sign_in(
    browser: webdriver.Chrome, ports: PortAllocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listener restarts with another token (the server runs on, in this process): the
    open page's stream is refused, and the page goes to the sign-in form by itself."""
    port = ports.port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("HG_WALLBOARD_TOKEN", TOKEN)
    config = load_config_text(
        "server:\n"
        '  listen: ["udp:127.0.0.1:0"]\n'
        f'  admin: {{listen: "127.0.0.1:{port}", token_env: HG_WALLBOARD_TOKEN}}\n'
        'groups: [{name: sales, pilot: "600", members: [{uri: "sip:a@127.0.0.1", position: 1}]}]\n',
        "t.yaml",
        Path("/etc/huntgroup"),
    )

    async def scenario() -> None:
        server = Server(config, loop=asyncio.get_running_loop())
        await server.start()
        admin = await start_admin(server)
        try:
            await asyncio.to_thread(_sign_in, browser, base)
            live = await asyncio.to_thread(
                _page_shows, browser, "went live", lambda g: g["connection"] == "live"
            )
            assert live["members"] == {"sip:a@127.0.0.1": "free"}
            assert admin is not None
            await admin.stop()  # the streams end; the page tries again
            monkeypatch.setenv("HG_WALLBOARD_TOKEN", TOKEN[::-1])
            admin = await start_admin(server)
            await asyncio.to_thread(
                WebDriverWait(browser, DEADLINE).until,
                lambda d: d.current_url == f"{base}/login",
                "the page never went back to the sign-in form",
            )
        finally:
            if admin is not None:
                await admin.stop()
            server.close()

    asyncio.run(scenario())
