"""The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium; `.ci/run` installs them): sign in, the pages, sessions and CSRF, escaping."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.conftest import ADMIN, TOKEN, eventually, run_gateway, sdk

XSS = "<script>alert(1)</script>"
INVALID = "AIza" + "x" * 35  # shaped like a Google key; Google calls it invalid


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.fail("Chromium is needed (apt-get install chromium chromium-driver); "
                    "`bash .ci/run` installs it")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--disable-gpu", "--window-size=420,900"):  # a phone's width
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    chrome.implicitly_wait(5)  # elements of a page still loading are waited for
    try:
        yield chrome
    finally:
        chrome.quit()


@pytest.fixture(scope="module")
def console(sim: Any) -> Iterator[Any]:
    tenants = [{"name": "team", "token": TOKEN}, {"name": XSS, "token": "gg-xss-tenant-01"}]
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]},
                {"name": "dead", "keys": ["not-a-real-key-9"]}]
    with run_gateway(sim.url, projects, tenants=tenants,
                     ledger={"keep_prompts": True}) as gateway:
        for token in (TOKEN, "gg-xss-tenant-01", "gg-xss-tenant-01"):
            requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          json={"contents": [{"parts": [{"text": "hi"}]}]},
                          headers={"x-goog-api-key": token}, timeout=10)
        yield gateway


def _sign_in(browser: webdriver.Chrome, url: str, key: str = ADMIN) -> None:
    form = url + "/console/login?lang=en"
    browser.get(form)
    browser.find_element(By.ID, "admin-key").send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    # A click returns before the browser's POST is answered: wait for the page it leads to.
    eventually(lambda: browser.current_url != form, 10, "signing in led nowhere")


def test_signing_in_shows_the_overview_and_the_upstream(browser: webdriver.Chrome,
                                                        console: Any) -> None:
    browser.delete_all_cookies()
    browser.get(console.url + "/console/overview")
    assert browser.current_url.endswith("/console/login")  # no session: sent to sign in
    _sign_in(browser, console.url, "gg-wrong-admin-key")
    assert browser.find_element(By.ID, "login-failed").is_displayed()
    _sign_in(browser, console.url)
    assert browser.current_url.endswith("/console/overview")
    tenants = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#usage-today .tenant")]
    assert "team" in tenants and XSS in tenants  # shown as text: escaped, inert
    assert browser.execute_script("return document.querySelectorAll('main script').length") == 0
    browser.find_element(By.ID, "nav-upstream").click()
    dead = browser.find_element(By.ID, "project-dead")  # waited for (implicitly)
    assert "disabled" in dead.text and "not-a-real-key-9" not in browser.page_source
    assert "sim-…ey-1" in browser.page_source  # keys only ever masked
    browser.find_element(By.ID, "switch-language").click()
    eventually(lambda: "上游" in browser.find_element(By.TAG_NAME, "h1").text, 10,
               "the page never switched to Chinese")
    browser.get(console.url + "/console/upstream?lang=en")
    browser.find_element(By.ID, "sign-out").click()
    eventually(lambda: browser.current_url.endswith("/console/login"), 10, "not signed out")
    browser.get(console.url + "/console/overview")
    assert browser.current_url.endswith("/console/login")


def test_the_session_cookie_and_the_headers_are_strict(console: Any) -> None:
    session = requests.Session()
    answer = session.post(console.url + "/console/login", data={"key": ADMIN},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = session.get(console.url + "/console/overview", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    # A forged change (no CSRF token) is refused and leaves the session alone.
    forged = session.post(console.url + "/console/logout", data={}, allow_redirects=False,
                          timeout=10)
    assert forged.status_code == 403
    assert session.get(console.url + "/console/overview", allow_redirects=False,
                       timeout=10).status_code == 200
    # The admin routes take the session too — a read as it is, a change only with the token.
    assert session.get(console.url + "/admin/pool", timeout=10).status_code == 200
    forged = session.post(console.url + "/admin/upstream/probe", timeout=10)
    assert forged.status_code == 403 and forged.json()["error"]["status"] == "PERMISSION_DENIED"
    token = re.search(r'name="csrf" content="([^"]+)"', page.text)
    assert token is not None
    made = session.post(console.url + "/admin/upstream/probe", timeout=10,
                        headers={"X-CSRF-Token": token.group(1)})
    assert made.status_code == 200, made.text
    assert session.post(console.url + "/admin/upstream/probe", timeout=10,
                        headers={"X-CSRF-Token": "x" + token.group(1)}).status_code == 403


def _accept(browser: webdriver.Chrome) -> None:
    """Says yes to the page's confirm() (remove, rotate, revoke ask first)."""
    eventually(lambda: _alert(browser), 10, "no confirmation was asked")


def _alert(browser: webdriver.Chrome) -> bool:
    try:
        browser.switch_to.alert.accept()
    except NoAlertPresentException:
        return False
    return True


def _text(browser: webdriver.Chrome, selector: str) -> str:
    """The text of what `selector` finds now, read in one step: the page's script may swap
    the element for a fresh one between a find and a read (a stale reference)."""
    return str(browser.execute_script(
        "return document.querySelector(arguments[0])?.innerText ?? ''", selector))


def _settled(browser: webdriver.Chrome) -> None:
    """Waits for the page's last action to finish, the refreshed content in place."""
    eventually(lambda: browser.execute_script("return document.body.dataset.settled")
               == "yes", 10, "the page's action never finished")


def _resources(browser: webdriver.Chrome) -> list[str]:
    """What the page fetched after the document itself (stylesheet, script, JSON calls)."""
    return list(browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"))


def _call(gateway: Any, secret: str, text: str) -> requests.Response:
    return requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                         json={"contents": [{"parts": [{"text": text}]}]},
                         headers={"x-goog-api-key": secret}, timeout=10)


def test_a_virtual_key_made_in_the_console_works_and_its_usage_shows(
        browser: webdriver.Chrome, console: Any) -> None:
    browser.delete_all_cookies()
    _sign_in(browser, console.url)
    browser.find_element(By.ID, "nav-keys").click()
    browser.find_element(By.ID, "key-name").send_keys("console-made")
    browser.find_element(By.ID, "key-budget").send_keys("2")
    browser.find_element(By.ID, "create-key").click()
    _settled(browser)
    eventually(lambda: _text(browser, "#new-secret").startswith("gk-"), 10,
               "the new secret was never shown")
    secret = browser.find_element(By.ID, "new-secret").text
    assert browser.find_element(By.ID, "copy-secret").is_displayed()  # one click to copy
    browser.get(console.url + "/console/keys")
    assert secret not in browser.page_source  # shown once, then only its mask
    assert "console-made" in browser.find_element(By.ID, "virtual-keys").text
    client = sdk(console.url, secret)  # kept: a client collected mid-call closes its session
    answer = client.models.generate_content(model="gemini-2.5-flash",
                                            contents="from the console key")
    assert answer.text
    # Its request in Requests (found by tenant), with its cost in Usage, exported as CSV.
    browser.get(console.url + "/console/requests")
    browser.find_element(By.ID, "find-tenant").send_keys("console-made")
    browser.find_element(By.ID, "find").click()
    eventually(lambda: "tenant=console-made" in browser.current_url, 10, "no search made")
    rows = browser.find_elements(By.CSS_SELECTOR, "#requests tr.request")
    assert len(rows) == 1 and "200" in rows[0].text
    rows[0].find_element(By.CLASS_NAME, "request-id").click()
    eventually(lambda: "from the console key" in _text(browser, "#prompt"),
               10, "the kept prompt was not shown")
    browser.get(console.url + "/console/usage?by=tenant&since=1d")
    groups = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#usage .group")]
    assert "console-made" in groups
    assert browser.find_elements(By.CSS_SELECTOR, "#usage-chart rect")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#usage tbody tr")
               if r.find_element(By.CLASS_NAME, "group").text == "console-made")
    assert float(row.find_elements(By.TAG_NAME, "td")[-1].text or 0) >= 0
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    exported = requests.get(console.url + "/console/usage.csv?by=tenant&since=1d",
                            cookies=cookies, timeout=10)
    assert exported.headers["Content-Type"].startswith("text/csv")
    line = next(x for x in exported.text.splitlines() if x.startswith("console-made,"))
    header = exported.text.splitlines()[0].split(",")
    assert float(line.split(",")[header.index("cost_usd")]) > 0
    # Edited: a model it may not use is refused; then rotated: the old secret stops at once.
    browser.get(console.url + "/console/keys")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#virtual-keys tbody tr")
               if "console-made" in r.text)
    row.find_element(By.TAG_NAME, "summary").click()
    models = row.find_element(By.NAME, "models")
    models.send_keys("gemini-2.5-pro")
    row.find_element(By.CLASS_NAME, "save").click()
    _settled(browser)
    eventually(lambda: _call(console, secret, "x").status_code == 403, 10,
               "the edited rights were not in force")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#virtual-keys tbody tr")
               if "console-made" in r.text)
    row.find_element(By.CLASS_NAME, "rotate").click()
    _accept(browser)
    eventually(lambda: _text(browser, "#new-secret") not in ("", secret), 10,
               "the rotated secret was never shown")
    _settled(browser)
    rotated = browser.find_element(By.ID, "new-secret").text
    assert _call(console, secret, "old").status_code == 401
    assert _call(console, rotated, "new").status_code == 403  # still only gemini-2.5-pro
    # Revoked from the console: the SDK is refused at once.
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#virtual-keys tbody tr")
               if "console-made" in r.text)
    row.find_element(By.CLASS_NAME, "revoke").click()
    _accept(browser)
    eventually(lambda: "console-made" not in _text(browser, "#content"),
               10, "the key was never shown revoked")
    assert _call(console, rotated, "again").status_code == 401
    # Requests shows the refusal with its hint.
    browser.get(console.url + "/console/requests?status=4xx&tenant=console-made")
    refused = browser.find_elements(By.CSS_SELECTOR, "#requests tr.request")
    assert refused and all(r.find_element(By.CLASS_NAME, "hint").text for r in refused)


def test_upstream_keys_are_added_checked_disabled_and_probed_back(
        browser: webdriver.Chrome, console: Any, sim: Any) -> None:
    browser.delete_all_cookies()
    _sign_in(browser, console.url)
    browser.get(console.url + "/console/upstream")
    browser.find_element(By.TAG_NAME, "summary").click()
    browser.find_element(By.ID, "add-project").send_keys("added")
    browser.find_element(By.ID, "add-tag").send_keys("batch-team")
    browser.find_element(By.ID, "add-lines").send_keys(
        "sim-free-key-1\n" + INVALID + "\n")
    browser.find_element(By.ID, "add-submit").click()
    _settled(browser)
    eventually(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#add-results tr.result"))
               == 2, 15, "no verdicts shown")
    verdicts = {r.find_element(By.CLASS_NAME, "key").text:
                (r.find_element(By.CLASS_NAME, "verdict").text,
                 r.find_element(By.CLASS_NAME, "hint").text)
                for r in browser.find_elements(By.CSS_SELECTOR, "#add-results tr.result")}
    assert verdicts["sim-…ey-1"] == ("added", "")
    refused = verdicts["AIza…xxxx"]
    assert refused[0] == "refused" and "invalid" in refused[1]
    assert INVALID not in browser.page_source and "sim-free-key-1" not in browser.page_source
    added = browser.find_element(By.ID, "project-added")  # the page refreshed itself
    assert "batch-team" in added.text and "active" in added.text
    # Google revokes it: the gateway takes it out of use (a request finds out) ...
    requests.post(sim.url + "/_sim/keys/sim-free-key-1/revoke", timeout=5)
    for _ in range(10):
        _call(console, TOKEN, "who answers?")
        if console.project_view("added")["keys"][0]["state"] == "disabled":
            break
    browser.get(console.url + "/console/upstream")
    key_row = browser.find_element(By.CSS_SELECTOR, "#project-added tr.key")
    assert "disabled" in key_row.text and "API_KEY_INVALID" in key_row.text
    # ... and once Google has it back, a re-probe returns it to rotation.
    requests.post(sim.url + "/_sim/keys/sim-free-key-1/restore", timeout=5)
    key_row.find_element(By.CLASS_NAME, "probe").click()
    _settled(browser)
    assert "works" in _text(browser, "#probe-results")
    eventually(lambda: "active" in _text(browser, "#project-added tr.key"), 10,
               "the key did not come back")
    # Disabled by hand: the prober leaves it alone; enabled again; then removed.
    browser.find_element(By.CSS_SELECTOR, "#project-added .disable").click()
    _settled(browser)
    eventually(lambda: browser.find_elements(By.CSS_SELECTOR, "#project-added .enable"), 10,
               "the key was never shown disabled")
    assert console.project_view("added")["keys"][0]["held"] is True
    browser.find_element(By.CSS_SELECTOR, "#project-added .enable").click()
    _settled(browser)
    eventually(lambda: browser.find_elements(By.CSS_SELECTOR, "#project-added .disable"), 10,
               "the key was never shown enabled")
    browser.find_element(By.CSS_SELECTOR, "#project-added .remove").click()
    _accept(browser)
    eventually(lambda: not browser.find_elements(By.ID, "project-added"), 10, "not removed")
    audit = browser.find_element(By.ID, "audit").text
    for action in ("upstream.add", "upstream.refused", "upstream.probe", "upstream.disable",
                   "upstream.enable", "upstream.remove"):
        assert action in audit
    assert "console" in audit and "sim-free-key-1" not in browser.page_source


def test_settings_overview_and_the_cost_of_a_page(browser: webdriver.Chrome,
                                                  console: Any) -> None:
    browser.delete_all_cookies()
    _sign_in(browser, console.url)
    browser.get(console.url + "/console/settings")
    shown = browser.find_element(By.ID, "effective-config").text
    assert "sim-…ey-1" in shown and "keep_prompts: true" in shown
    for secret in ("sim-paid-key-1", ADMIN, TOKEN):
        assert secret not in browser.page_source
    # A page costs its document, its stylesheet and its script; the Overview adds one small
    # JSON call every 5 s.
    for page in ("upstream", "keys", "usage", "requests", "settings"):
        browser.get(f"{console.url}/console/{page}")
        assert len(_resources(browser)) <= 2, (page, _resources(browser))
    browser.get(console.url + "/console/overview")
    eventually(lambda: _text(browser, "#live-rps") not in ("", "–"), 10,
               "no live figures")
    assert float(browser.find_element(By.ID, "live-rps").text) > 0
    calls = [r for r in _resources(browser) if "/admin/live" in r]
    assert 1 <= len(calls) <= 3 and len(_resources(browser)) <= 2 + len(calls)
