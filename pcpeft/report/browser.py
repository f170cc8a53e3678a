"""A report page in a real headless browser: Chromium driven by Selenium through the system's chromedriver (the
Debian packages ``chromium`` and ``chromium-driver``; nothing is downloaded), with the network switched off, so a
page that needed anything from outside would show it. Used by the tests and to make screenshots:

    python -m pcpeft.report.browser RUN/report.html shot.png --at gallery --size 1280x900
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import ReportError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVERS = ("chromedriver",)
#: Chromium's WebGL on a machine without a GPU: SwiftShader, the software renderer it ships
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", "--hide-scrollbars", "--mute-audio", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
         "--disable-sync")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "chrome-extension:", "devtools:")


def _first(names: tuple[str, ...], extra: tuple[str, ...] = ()) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return next((path for path in extra if Path(path).is_file()), None)


def _given(variable: str) -> str | None:
    """The executable an environment variable names; '' when it names nothing that exists."""
    value = os.environ.get(variable)
    if value is None:
        return None
    return value if Path(value).is_file() else ""


def find_browser() -> tuple[str, str] | None:
    """(Chromium, chromedriver) executables, from ``PCPEFT_CHROMIUM`` / ``PCPEFT_CHROMEDRIVER`` or the PATH."""
    browser, driver = _given("PCPEFT_CHROMIUM"), _given("PCPEFT_CHROMEDRIVER")
    browser = _first(BROWSERS, ("/usr/lib/chromium/chromium",)) if browser is None else browser
    driver = _first(DRIVERS, ("/usr/lib/chromium/chromedriver",)) if driver is None else driver
    return (browser, driver) if browser and driver else None


def missing_reason() -> str | None:
    """Why no headless browser can be started here (None: one can)."""
    import importlib.util

    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium; it is in requirements.txt)"
    if find_browser() is None:
        return ("no chromium and chromedriver on the PATH (Debian: apt-get install chromium chromium-driver; "
                "tools/setup.sh installs them)")
    return None


@contextmanager
def headless_browser(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A headless Chromium (a Selenium ``WebDriver``) with the network emulated offline and its console and
    network logs kept; quit on exit."""
    reason = missing_reason()
    if reason:
        raise ReportError(f"no headless browser: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                    "downloadThroughput": 0, "uploadThroughput": 0})
        yield driver
    finally:
        driver.quit()


def open_page(driver: Any, path: str | Path) -> None:
    """Load a local HTML file."""
    driver.get(Path(path).resolve().as_uri())


def console_errors(driver: Any) -> list[str]:
    """The console messages of level SEVERE since the last call (errors, failed loads, uncaught exceptions)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry.get("level") == "SEVERE"]


def requested_urls(driver: Any) -> list[str]:
    """Every URL the page asked for since the last call (from the performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"]).get("message", {})
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def remote_urls(urls: list[str]) -> list[str]:
    """The URLs that would go over the network."""
    return [url for url in urls if not url.startswith(LOCAL_SCHEMES)]


def wait_drawn(driver: Any, element: Any, timeout: float = 60.0) -> None:
    """Scroll a figure's element into view and wait until the page's script has drawn it."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda _: element.get_attribute("data-state") == "drawn")


def element_image(element: Any) -> np.ndarray:
    """(H, W, 3) uint8 screenshot of one element."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))


def settled_image(element: Any, timeout: float = 10.0, pause: float = 0.25) -> np.ndarray:
    """A screenshot of the element once two in a row agree (WebGL draws on the next animation frames)."""
    previous = element_image(element)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(pause)
        current = element_image(element)
        if current.shape == previous.shape and np.array_equal(current, previous):
            return current
        previous = current
    return previous


def drawn_pixels(image: np.ndarray, background: int = 245) -> int:
    """Pixels that are not (near) white: what a drawing put on a blank canvas."""
    return int((image.min(axis=-1) < background).sum())


def drag(driver: Any, element: Any, dx: int = 90, dy: int = 25) -> None:
    """A mouse drag across the middle of an element (rotates a 3-D view)."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(driver).move_to_element(element).click_and_hold().move_by_offset(dx, dy).pause(0.1).release() \
        .perform()


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 900, at: str | None = None,
               settle: float = 1.5) -> Path:
    """A PNG of ``page`` as headless Chromium draws it (``width`` x ``height``), scrolled to the section ``at`` (its
    anchor, e.g. ``gallery``) after the 3-D views in sight are drawn."""
    png = Path(png)
    with headless_browser(width, height) as driver:
        open_page(driver, page)
        if at:
            found = driver.find_elements("id", at)
            if not found:
                raise ReportError(f"--at {at}: {page} has no section with that anchor")
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", found[0])
        time.sleep(0.3)
        views = driver.execute_script("""return Array.from(document.querySelectorAll('.plot[data-figure]'))
            .filter(e => { const r = e.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; });""")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(v.get_attribute("data-state") != "drawn" for v in views):
            time.sleep(0.2)
        time.sleep(settle)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    return png


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pcpeft.report.browser",
                                     description="a PNG of a report page as headless Chromium draws it")
    parser.add_argument("page", help="the report's HTML file")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--at", default=None, help="scroll to this section first (card, curves, confusion, gallery)")
    parser.add_argument("--size", default="1280x900", help="window WIDTHxHEIGHT in pixels")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"wrote {screenshot(args.page, args.png, width, height, args.at)}")


if __name__ == "__main__":
    main()


__all__ = ["console_errors", "drag", "drawn_pixels", "element_image", "find_browser", "headless_browser",
           "missing_reason", "open_page", "remote_urls", "requested_urls", "screenshot", "settled_image",
           "wait_drawn"]
