"""Fixtures of the explorer's tests: an in-process server, and a headless Chromium for the
end-to-end tests.

The browser tests need Chromium and its driver (Debian: ``apt-get install chromium
chromium-driver``) and Selenium (the ``test`` extra). Without them they skip with the reason,
except under ``CI=true``, where a missing browser fails the run: CI must exercise the page.
``OTGRID_EXPLORE_BROWSER`` and ``OTGRID_EXPLORE_DRIVER`` name the browser and driver binaries
when they are not on the ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from otgrid.explore.server import start_server

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER = ("chromedriver",)
_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--window-size=1500,1100")


def _find(names: tuple[str, ...], extra: tuple[str, ...] = (), env: str = "") -> str | None:
    if os.environ.get(env):
        path = os.environ[env]
        return path if Path(path).is_file() else None
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    for path in extra:
        if Path(path).is_file():
            return path
    return None


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def server():
    """The explorer on a free port of 127.0.0.1 (with the audit command's critic loader)."""
    from otgrid.cli.audit import load_critic

    srv, url = start_server(load_critic=load_critic)
    yield url
    srv.app.close()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium driven by Selenium (a fresh profile)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (pip install 'otgrid[test]')")
    binary = _find(CHROMIUM, ("/usr/lib/chromium/chromium",), "OTGRID_EXPLORE_BROWSER")
    driver = _find(DRIVER, ("/usr/lib/chromium/chromedriver",), "OTGRID_EXPLORE_DRIVER")
    if binary is None or driver is None:
        _missing("no Chromium browser and chromedriver found (apt-get install chromium "
                 "chromium-driver)")
    profile = tempfile.mkdtemp(prefix="otgrid-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for flag in (*_FLAGS, f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    try:
        drv = webdriver.Chrome(service=Service(driver), options=opts)
    except Exception as exc:  # a browser that does not start is as good as none
        shutil.rmtree(profile, ignore_errors=True)
        _missing(f"Chromium did not start: {str(exc).splitlines()[0]}")
    drv.set_script_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)
