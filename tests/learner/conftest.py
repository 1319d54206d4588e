"""What a learner or a presenter opens: the book, the slides, JupyterLab, in headless Chromium.

``chromium`` is Debian's ``chromium`` and ``chromium-driver`` driven by Selenium (the pinned one): the set-up
installs them with apt-get when they are missing and it can (root, Debian or Ubuntu), and skips with the reason
only where it cannot. Sites are served from 127.0.0.1 by :func:`serve`, as a static host would; nothing leaves
this machine (no CDN: every page must work offline).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: waits for every image of the page (lazy ones made eager), then answers [src, naturalWidth] for each
_IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach(image => { image.loading = "eager"; });
Promise.all(images.map(image => image.complete ? null
    : new Promise(resolve => { image.addEventListener("load", resolve); image.addEventListener("error", resolve); })))
  .then(() => done(images.map(image => [image.currentSrc || image.src, image.naturalWidth])));
"""


def _install_chromium() -> str | None:
    """Why Chromium cannot be had here (None: it is there now)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return None
    if shutil.which("apt-get") is None:
        return "no chromium/chromedriver and no apt-get to install them (Debian's chromium and chromium-driver)"
    if os.geteuid() != 0:
        return "no chromium/chromedriver, and installing them needs root: sudo apt-get install chromium chromium-driver"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {done.stderr.strip()[-300:]}"
    return None if shutil.which("chromium") and shutil.which("chromedriver") else "apt-get ran but chromium is still missing"


class Browser:
    """A headless Chromium: open a page, and say what went wrong on it."""

    def __init__(self, driver) -> None:
        self.driver = driver

    def open(self, url: str) -> None:
        self.driver.get_log("browser")  # drop what the previous page left
        self.driver.get(url)

    def wait(self, condition_js: str, timeout: float = 15.0) -> bool:
        """Wait until the JavaScript expression is true; answers whether it became so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.driver.execute_script(f"return Boolean({condition_js})"):
                return True
            time.sleep(0.1)
        return False

    def console_errors(self) -> list[str]:
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def broken_images(self) -> list[str]:
        return [src for src, width in self.driver.execute_async_script(_IMAGES_JS) if not width]

    def images(self) -> int:
        return len(self.driver.execute_async_script(_IMAGES_JS))

    def problems(self, url: str) -> list[str]:
        """Open ``url``; its console errors and the images that did not render (natural width 0)."""
        self.open(url)
        found = [f"console: {message}" for message in self.console_errors()]
        found += [f"image not rendered: {src}" for src in self.broken_images()]
        return found


@pytest.fixture(scope="session")
def chromium() -> Iterator[Browser]:
    reason = _install_chromium()
    if reason:
        pytest.skip(f"headless Chromium is not available: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-proxy-server"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # the driver Debian installed, named: Selenium Manager would otherwise try to download one
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(60)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(folder: Path) -> tuple[str, http.server.ThreadingHTTPServer]:
    """Serve ``folder`` on 127.0.0.1 (a free port); answers its base URL and the server (to shut down)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server
