"""Debian's Chromium, headless, driven over the DevTools protocol (a websocket) in real time.

A one-shot ``chromium --screenshot`` shoots when the page has loaded (or its virtual time ran
out), before a websocket app such as noVNC has drawn anything; driving the browser lets a test
navigate, then take screenshots until the page shows what it waits for.
"""

import base64
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time

from websockets.sync.client import connect as websocket_connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--remote-allow-origins=*")
_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")


class HeadlessChromium:
    """One browser with one page; ``with HeadlessChromium() as browser: browser.navigate(url)``."""

    def __init__(self, width: int = 800, height: int = 600):
        self.profile = tempfile.mkdtemp(prefix="dssr-chromium-")
        self.process = subprocess.Popen(["chromium", *FLAGS, f"--user-data-dir={self.profile}",
                                         f"--window-size={width},{height}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self._ids = itertools.count(1)
        self.events: list[dict] = []
        self._page = None
        try:
            browser_url = self._devtools_url()
            with websocket_connect(browser_url, max_size=None, open_timeout=30) as browser:
                target = _call(browser, 0, "Target.createTarget", {"url": "about:blank"}, [])["targetId"]
            # The page's own endpoint stays attached across navigations (a session may not).
            self._page = websocket_connect(browser_url.split("/devtools/")[0] + f"/devtools/page/{target}",
                                           max_size=None, open_timeout=30).__enter__()
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
        except BaseException:
            self.close()
            raise

    def _devtools_url(self) -> str:
        found: list[str] = []

        def read_stderr():
            for line in self.process.stderr:
                self.log.append(line)
                match = _LISTENING.search(line)
                if match and not found:
                    found.append(match.group(1))

        threading.Thread(target=read_stderr, daemon=True).start()
        deadline = time.monotonic() + 60
        while not found:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium gave no DevTools address:\n" + "".join(self.log[-30:]))
            time.sleep(0.1)
        return found[0]

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command to the page and wait for its answer (events are kept)."""
        return _call(self._page, next(self._ids), method, params, self.events)

    def navigate(self, url: str, timeout: float = 60) -> None:
        """Open ``url`` and wait for its load event (a screenshot before it finds no page)."""
        self.call("Page.enable")
        self.events.clear()
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == "Page.loadEventFired" for event in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load in {timeout:.0f} s")
            try:
                self.events.append(json.loads(self._page.recv(timeout=1)))
            except TimeoutError:
                pass

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                         )["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        if self._page is not None:
            self._page.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "HeadlessChromium":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _call(connection, number: int, method: str, params: dict, events: list) -> dict:
    connection.send(json.dumps({"id": number, "method": method, "params": params}))
    while True:
        answer = json.loads(connection.recv(timeout=60))
        if answer.get("id") != number:
            events.append(answer)
        elif "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        else:
            return answer["result"]
