"""Screenshots of the console for the READMEs: python docs/console/take_screenshots.py
(a gateway in front of the simulator, some traffic, headless Chromium at laptop width)."""

from __future__ import annotations

import sys
from pathlib import Path

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from gemgate.simulator import run_simulator  # noqa: E402
from tests.conftest import ADMIN, TOKEN, run_gateway  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    tenants = [{"name": "team", "token": TOKEN}, {"name": "analytics", "token": "gg-analytics-01"}]
    projects = [{"name": "acme-free", "keys": ["sim-free-key-1", "sim-free-key-2"]},
                {"name": "acme-paid", "tier": "tier1", "keys": ["sim-paid-key-1"]},
                {"name": "old-project", "keys": ["not-a-real-key-9"]}]
    with run_simulator() as sim, run_gateway(sim.url, projects, tenants=tenants) as gateway:
        for n in range(12):
            requests.post(gateway.url + "/v1beta/models/gemini-2.5-flash:generateContent",
                          json={"contents": [{"parts": [{"text": f"question {n}"}]}]},
                          headers={"x-goog-api-key": TOKEN if n % 3 else "gg-analytics-01"},
                          timeout=10)
        requests.post(gateway.url + "/v1beta/models/gemini-9:generateContent",
                      json={"contents": [{"parts": [{"text": "a model that is not"}]}]},
                      headers={"x-goog-api-key": TOKEN}, timeout=10)
        gateway.admin("POST", "/admin/upstream/keys", {"project": "acme-paid", "tag": "ops",
                                                       "keys": ["AIza" + "x" * 35]})
        gateway.admin("POST", "/admin/vkeys", {"name": "mobile-app", "daily_budget_usd": 5})
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--window-size=1200,900"):
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        try:
            browser.get(gateway.url + "/console/login?lang=en")
            browser.find_element(By.ID, "admin-key").send_keys(ADMIN)
            browser.find_element(By.ID, "sign-in").click()
            import time

            time.sleep(1.5)  # the Overview's first live figures
            for lang in ("en", "zh"):
                for page in ("overview", "upstream", "requests", "keys"):
                    browser.get(f"{gateway.url}/console/{page}?lang={lang}")
                    time.sleep(0.5)
                    browser.save_screenshot(str(HERE / f"{page}-{lang}.png"))
        finally:
            browser.quit()


if __name__ == "__main__":
    main()
