"""The web console in a real headless Chromium (Debian's `chromium` and `chromium-driver`,
driven by Selenium; `.ci/run` installs them): sign in, the pages, sessions and CSRF, escaping."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from gemgate.simulator import run_simulator
from tests.conftest import ADMIN, TOKEN, eventually, run_gateway

XSS = "<script>alert(1)</script>"


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
def console() -> Iterator[Any]:
    tenants = [{"name": "team", "token": TOKEN}, {"name": XSS, "token": "gg-xss-tenant-01"}]
    projects = [{"name": "sim-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]},
                {"name": "dead", "keys": ["not-a-real-key-9"]}]
    with run_simulator() as sim, run_gateway(sim.url, projects, tenants=tenants) as gateway:
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
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert page.headers["X-Frame-Options"] == "DENY"
    # A forged change (no CSRF token) is refused and leaves the session alone.
    forged = session.post(console.url + "/console/logout", data={}, allow_redirects=False,
                          timeout=10)
    assert forged.status_code == 403
    assert session.get(console.url + "/console/overview", allow_redirects=False,
                       timeout=10).status_code == 200


def test_a_virtual_key_made_in_the_console_works_and_its_usage_shows(
        browser: webdriver.Chrome, console: Any) -> None:
    from tests.conftest import sdk

    browser.delete_all_cookies()
    _sign_in(browser, console.url)
    browser.find_element(By.ID, "nav-keys").click()
    browser.find_element(By.ID, "key-name").send_keys("console-made")
    browser.find_element(By.ID, "key-budget").send_keys("2")
    browser.find_element(By.ID, "create-key").click()
    secret = browser.find_element(By.ID, "new-secret").text  # waited for (implicitly)
    assert secret.startswith("gk-")
    browser.get(console.url + "/console/keys")
    assert secret not in browser.page_source  # shown once, then only its mask
    assert "console-made" in browser.find_element(By.ID, "virtual-keys").text
    client = sdk(console.url, secret)  # kept: a client collected mid-call closes its session
    answer = client.models.generate_content(model="gemini-2.5-flash",
                                            contents="from the console key")
    assert answer.text
    browser.get(console.url + "/console/usage?by=tenant&since=1d")
    groups = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#usage .group")]
    assert "console-made" in groups
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    exported = requests.get(console.url + "/console/usage.csv?by=tenant&since=1d",
                            cookies=cookies, timeout=10)
    assert exported.headers["Content-Type"].startswith("text/csv")
    assert any(line.startswith("console-made,") for line in exported.text.splitlines())
    # Revoked from the console: the SDK is refused at once.
    browser.get(console.url + "/console/keys")
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#virtual-keys tbody tr")
               if "console-made" in r.text)
    row.find_element(By.CLASS_NAME, "revoke").click()
    # The click returns before the browser's POST is answered: wait for the page it leads to.
    eventually(lambda: "console-made" not in browser.find_element(By.TAG_NAME, "main").text,
               10, "the key was never shown revoked")
    refused = requests.post(console.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                            json={"contents": [{"parts": [{"text": "again"}]}]},
                            headers={"x-goog-api-key": secret}, timeout=10)
    assert refused.status_code == 401
