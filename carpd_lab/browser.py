"""A real browser (Debian's chromium, headless, driven by selenium with chromium-driver)
inside a lab namespace, so it reaches the lab's addresses and nothing else.

``ip netns exec NS python -m carpd_lab.browser --user U --password P`` reads commands on
stdin, one per line, and answers each with one JSON line:

    open TAB URL                  a new tab named TAB
    states TAB                    {"vhid name": "MASTER", ...} as the page shows them
    cluster TAB                   {"vhid name": "ok", ...}: the cluster section's verdicts
    waitcluster TAB VHID VERDICT SECONDS   until the cluster section shows it
    wait TAB VHID STATE SECONDS   until the page shows it: {"after": seconds}
    click TAB BUTTON_ID           click a button of the page
    text TAB                      the page's visible text
    phone TAB                     a phone's window: the page's and the window's width
    shot TAB PATH                 a screenshot (PNG)

The user and password go into every request's Authorization header (the page's own
fetches too), through the DevTools protocol: no login dialog to drive.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import sys
import time
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def start(trust_spki: str | None = None) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1100,800",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
    ):
        options.add_argument(arg)
    if trust_spki:  # a self-signed page, pinned: its key is trusted, no other
        options.add_argument(f"--ignore-certificate-errors-spki-list={trust_spki}")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def authorize(driver: webdriver.Chrome, user: str | None, password: str | None) -> None:
    """The user in every request of the current tab (DevTools acts per tab)."""
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
        )


# In one go inside the page: it rebuilds its rows every second, so elements looked up
# one by one from here can go stale in between.
ROWS = (
    "return Array.from(document.querySelectorAll('#vhids tr'),"
    " r => [r.dataset.vhid, r.dataset.state])"
)


def states(driver: webdriver.Chrome) -> dict[str, str]:
    return {vhid: state for vhid, state in driver.execute_script(ROWS)}


CLUSTER = (
    "return Array.from(document.querySelectorAll('#cluster [data-vhid]'),"
    " e => [e.dataset.vhid, e.dataset.verdict])"
)


def cluster(driver: webdriver.Chrome) -> dict[str, str]:
    return {vhid: verdict for vhid, verdict in driver.execute_script(CLUSTER)}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m carpd_lab.browser")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--trust-spki", help="base64 SHA-256 of a certificate's public key")
    args = parser.parse_args()
    driver = start(args.trust_spki)
    tabs: dict[str, str] = {}

    def answer(**reply: Any) -> None:
        print(json.dumps(reply), flush=True)

    def run(cmd: str, *rest: str) -> None:
        if cmd == "open":
            name, url = rest
            if tabs:
                driver.switch_to.new_window("tab")
            tabs[name] = driver.current_window_handle
            authorize(driver, args.user, args.password)
            driver.get(url)
            WebDriverWait(driver, 10).until(lambda d: states(d))
            answer(opened=name)
            return
        driver.switch_to.window(tabs[rest[0]])
        if cmd == "states":
            answer(states=states(driver))
        elif cmd == "wait":
            _, vhid, state, seconds = rest
            t0 = time.monotonic()
            try:
                WebDriverWait(driver, float(seconds), poll_frequency=0.05).until(
                    lambda d: states(d).get(vhid) == state
                )
                answer(after=round(time.monotonic() - t0, 3))
            except TimeoutException:
                answer(after=None, states=states(driver))
        elif cmd == "click":
            driver.find_element(By.ID, rest[1]).click()
            answer(clicked=rest[1])
        elif cmd == "cluster":  # the cluster section's verdicts: {"vhid name": "ok", ...}
            answer(cluster=cluster(driver))
        elif cmd == "waitcluster":
            _, vhid, verdict, seconds = rest
            t0 = time.monotonic()
            try:
                WebDriverWait(driver, float(seconds), poll_frequency=0.05).until(
                    lambda d: cluster(d).get(vhid) == verdict
                )
                answer(after=round(time.monotonic() - t0, 3))
            except TimeoutException:
                answer(after=None, cluster=cluster(driver))
        elif cmd == "text":
            answer(text=driver.find_element(By.TAG_NAME, "body").text)
        elif cmd == "title":
            answer(title=driver.title)
        elif cmd == "phone":  # a phone's viewport: does the page fit its width?
            driver.set_window_size(390, 844)
            widths = driver.execute_script(
                "return [document.documentElement.scrollWidth, window.innerWidth]"
            )
            answer(page_width=widths[0], screen_width=widths[1])
        elif cmd == "shot":
            driver.save_screenshot(rest[1])
            answer(shot=rest[1])
        else:
            answer(error=f"unknown command {cmd}")

    try:
        answer(ready=True)
        for line in sys.stdin:
            try:
                run(*line.split())
            except Exception as e:  # an answer, always: the caller waits for one
                answer(error=f"{type(e).__name__}: {e}")
    finally:
        driver.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
