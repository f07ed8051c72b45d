"""Browser fixtures: Debian's Chromium driven by Playwright against a real server.

One server per test module (real Docker sandboxes; the real demo model where a module
asks for it); each test gets a fresh browser context, so its localStorage starts empty.
Screenshots go to artifacts/ui/ for people to look at. Each test walks through several
features on one page, so that the suite stays quick on a two-core machine.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from interpreter.api.app import create_app
from interpreter.config import Settings
from tests.conftest import REPO, RunningServer, start_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = REPO / "artifacts" / "ui"
WIDE = ViewportSize(width=1280, height=800)
NARROW = ViewportSize(width=420, height=860)
# Generous: sandboxes start and the model runs on a busy 2-core machine.
TIMEOUT_MS = 90_000
expect.set_options(timeout=TIMEOUT_MS)


def ui_settings(base: Path, run_id: str, model: str) -> Settings:
    return Settings(
        data_dir=base / "data",
        run_root=base / "run",
        service_name=f"{run_id}-ui-{secrets.token_hex(2)}",
        pool_size=1,
        pool_max=0,
        model=model,
    )


@pytest.fixture(scope="module")
def ui_model() -> str:
    """The model the module's server runs; modules that chat override this."""
    return "none"


@pytest.fixture(scope="module")
def ui_server(
    tmp_path_factory: pytest.TempPathFactory, run_id: str, ui_model: str
) -> Iterator[RunningServer]:
    settings = ui_settings(tmp_path_factory.mktemp("ui"), run_id, ui_model)
    server = start_server(create_app(settings, cleanup_on_exit=True), timeout_s=300)
    yield server
    server.stop()


# Module scope, not session: Playwright's sync API runs its own event loop, and should
# be gone before other folders' asyncio tests run.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def page(
    browser: Browser, ui_server: RunningServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    # Reduced motion: drawers appear at once, so screenshots never catch them sliding.
    context = browser.new_context(
        viewport=WIDE, base_url=ui_server.base_url, reduced_motion="reduce"
    )
    context.set_default_timeout(TIMEOUT_MS)
    # The copy buttons write to the clipboard; tests read it back.
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        shoot(page, request.node.name, "failure")
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def shoot(page: Page, test_name: str, label: str, *, full_page: bool = False) -> Path:
    """Save a screenshot as artifacts/ui/<test>-<label>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^\w.-]+", "_", f"{test_name}-{label}")
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
