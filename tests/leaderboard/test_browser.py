"""The built site in headless Chromium: tables render, headers sort, record markup stays inert."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from tests.leaderboard.fixtures import XSS_NAME

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOT = Path("/tmp/leaderboard.png")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)


class QuietHandler(SimpleHTTPRequestHandler):
    """Serve files without logging every request to stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def site_url(built_site: Path) -> Iterator[str]:
    """The built site served on 127.0.0.1 from a thread."""
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with no network side traffic and a throw-away profile."""
    options = webdriver.ChromeOptions()
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,1800",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))
    browser.set_page_load_timeout(20)
    yield browser
    browser.quit()


def _methods(driver: Any, table_id: str) -> list[str]:
    rows = driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [row.get_attribute("data-method") for row in rows]


def _click_header(driver: Any, table_id: str, label: str) -> None:
    for header in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} thead th"):
        if header.text.strip().rstrip("▲▼ ").strip() == label:
            header.click()
            return
    raise AssertionError(f"no header {label!r} in #{table_id}")


def _assert_no_alert(driver: Any) -> None:
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - accessing the property is the check


def test_tables_render_and_assets_load(driver: Any, site_url: str) -> None:
    driver.get(f"{site_url}/index.html")
    assert driver.title == "vpsbench leaderboard"
    assert len(driver.find_elements(By.CSS_SELECTOR, "#board-kitti-step-val tbody tr")) == 3
    assert len(driver.find_elements(By.CSS_SELECTOR, "#summary-table tbody tr")) == 3
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.scatter")) == 2
    badge = driver.find_element(By.CSS_SELECTOR, ".badge.reproduced")
    assert badge.value_of_css_property("background-color") == "rgba(26, 127, 55, 1)"
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []  # no CSP violation, no missing asset


def test_clicking_headers_sorts_rows(driver: Any, site_url: str) -> None:
    driver.get(f"{site_url}/index.html")
    board = "board-kitti-step-val"
    assert _methods(driver, board) == ["tiny-method", "paper-method", "xss-probe"]
    _click_header(driver, board, "Method")
    assert _methods(driver, board) == ["xss-probe", "paper-method", "tiny-method"]
    _click_header(driver, board, "Method")
    assert _methods(driver, board) == ["tiny-method", "paper-method", "xss-probe"]
    _click_header(driver, board, "SQ")  # first click on a number: best first
    assert _methods(driver, board) == ["tiny-method", "xss-probe", "paper-method"]
    _click_header(driver, board, "SQ")
    assert _methods(driver, board) == ["paper-method", "xss-probe", "tiny-method"]
    header = driver.find_element(By.CSS_SELECTOR, f"#{board} thead th:nth-child(6)")
    assert header.get_attribute("aria-sort") == "ascending"


def test_record_markup_stays_text(driver: Any, site_url: str) -> None:
    for page in ("index.html", "methods/xss-probe.html"):
        driver.get(f"{site_url}/{page}")
        _assert_no_alert(driver)
        assert driver.find_elements(By.TAG_NAME, "img") == []
        assert XSS_NAME in driver.find_element(By.TAG_NAME, "body").text
    driver.get(f"{site_url}/index.html")
    cell = driver.find_element(
        By.CSS_SELECTOR, '#board-kitti-step-val tr[data-method="xss-probe"] a'
    )
    assert cell.text == XSS_NAME
    _click_header(driver, "board-kitti-step-val", "Method")
    _assert_no_alert(driver)
    assert driver.find_elements(By.TAG_NAME, "img") == []


def test_method_page_and_file_url(driver: Any, site_url: str, built_site: Path) -> None:
    driver.get(f"{site_url}/methods/tiny-method.html")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#sequences-kitti-step-val tbody tr")) == 2
    assert len(driver.find_elements(By.CSS_SELECTOR, "svg.bars .bar")) >= 4
    driver.get((built_site / "index.html").as_uri())
    board = "board-kitti-step-val"
    _click_header(driver, board, "Method")
    assert _methods(driver, board) == ["xss-probe", "paper-method", "tiny-method"]


def test_screenshot(driver: Any, site_url: str) -> None:
    driver.get(f"{site_url}/index.html")
    driver.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
