"""The admin page in a real browser (Debian's Chromium driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream, gateway_config

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "ui"

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def ui_gateway(tmp_path: Path) -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(gateway_config(f"sqlite:///{tmp_path / 'ui.db'}")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def page() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("Chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("Chromium not installed")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        yield tab
        context.close()
        browser.close()


def _fill_dialog(page: object, values: dict[str, str]) -> None:
    for name, value in values.items():
        target = page.locator(f"#dialog-body [name={name}]")  # type: ignore[attr-defined]
        if target.evaluate("el => el.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    page.locator("#dialog-ok").click()  # type: ignore[attr-defined]


def test_admin_page_end_to_end(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: object
) -> None:
    p = page  # a Playwright Page
    url = ui_gateway.url
    p.goto(url + "/ui/")  # type: ignore[attr-defined]
    p.fill("#signin-key", "wrong-admin-key-000000")  # type: ignore[attr-defined]
    p.click("#signin-form button")  # type: ignore[attr-defined]
    p.wait_for_selector("#signin-error:has-text('refused')")  # type: ignore[attr-defined]
    p.fill("#signin-key", ADMIN_KEY)  # type: ignore[attr-defined]
    p.click("#signin-form button")  # type: ignore[attr-defined]
    p.wait_for_selector("h1:has-text('Dashboard')")  # type: ignore[attr-defined]
    assert not p.is_visible("#signin")  # type: ignore[attr-defined]
    assert ADMIN_KEY not in p.url  # type: ignore[attr-defined]
    assert p.evaluate("document.cookie") == ""  # type: ignore[attr-defined]

    # Providers: create one pointing at the local upstream.
    p.click("#nav a[data-page=providers]")  # type: ignore[attr-defined]
    p.click("button:has-text('New provider')")  # type: ignore[attr-defined]
    _fill_dialog(
        p,
        {
            "name": "local",
            "kind": "openai",
            "api_key": "sk-ui-provider-secret",
            "base_url": upstream.base_url(),
        },
    )
    p.wait_for_selector("td:has-text('sk-u...cret')")  # type: ignore[attr-defined]
    assert "sk-ui-provider-secret" not in p.content()  # type: ignore[attr-defined]
    p.screenshot(path=str(OUTPUT / "providers.png"))  # type: ignore[attr-defined]

    # A bad base URL is refused with the API's message, shown in the page.
    p.click("button:has-text('New provider')")  # type: ignore[attr-defined]
    _fill_dialog(p, {"name": "bad", "api_key": "k", "base_url": "ftp://nope"})
    p.wait_for_selector("#dialog-error:has-text('base_url')")  # type: ignore[attr-defined]
    p.click("#dialog-cancel")  # type: ignore[attr-defined]

    # Models.
    p.click("#nav a[data-page=models]")  # type: ignore[attr-defined]
    p.click("button:has-text('New model')")  # type: ignore[attr-defined]
    _fill_dialog(
        p,
        {
            "name": "gpt-4o",
            "provider_model_name": "gpt-4o-upstream",
            "output_token_coefficient": "2",
        },
    )
    p.wait_for_selector("td:has-text('gpt-4o-upstream')")  # type: ignore[attr-defined]
    p.screenshot(path=str(OUTPUT / "models.png"))  # type: ignore[attr-defined]

    # Keys: the plaintext is shown once.
    p.click("#nav a[data-page=keys]")  # type: ignore[attr-defined]
    p.click("button:has-text('New key')")  # type: ignore[attr-defined]
    _fill_dialog(p, {"name": "ui-app", "token_budget": "1000"})
    key = p.locator("[data-testid=secret]").inner_text().strip()  # type: ignore[attr-defined]
    assert key.startswith("sk-") and len(key) == 39
    p.screenshot(path=str(OUTPUT / "key-created.png"))  # type: ignore[attr-defined]
    p.click("#dialog-cancel")  # type: ignore[attr-defined]

    # Use the key through the proxy; see it on the dashboard and in the logs.
    response = httpx.post(
        url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi from the ui test"}]},
    )
    assert response.status_code == 200
    ui_gateway.run(ui_gateway.runtime.log_writer.write_pending())
    ui_gateway.run(ui_gateway.runtime.store.ledger.flush(ui_gateway.runtime.store.engine))
    p.click("#nav a[data-page=dashboard]")  # type: ignore[attr-defined]
    p.wait_for_selector(".tile:has-text('requests, 24 h') .value:text-is('1')")  # type: ignore[attr-defined]
    p.wait_for_selector("td:has-text('gpt-4o')")  # type: ignore[attr-defined]
    p.screenshot(path=str(OUTPUT / "dashboard.png"))  # type: ignore[attr-defined]
    p.click("#nav a[data-page=logs]")  # type: ignore[attr-defined]
    p.wait_for_selector("td:has-text('ui-app')")  # type: ignore[attr-defined]
    p.click("button:has-text('Details')")  # type: ignore[attr-defined]
    p.wait_for_selector("#dialog-body td:has-text('gpt-4o-upstream')")  # type: ignore[attr-defined]
    p.screenshot(path=str(OUTPUT / "logs.png"))  # type: ignore[attr-defined]
    p.click("#dialog-cancel")  # type: ignore[attr-defined]

    # Rotate: the new key is shown once and the old one is refused.
    p.click("#nav a[data-page=keys]")  # type: ignore[attr-defined]
    p.wait_for_selector("td:has-text('20 / 1,000')")  # type: ignore[attr-defined]
    p.click("button:has-text('Rotate')")  # type: ignore[attr-defined]
    new_key = p.locator("[data-testid=secret]").inner_text().strip()  # type: ignore[attr-defined]
    assert new_key != key
    p.click("#dialog-cancel")  # type: ignore[attr-defined]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "again"}]}
    old = httpx.post(
        url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"}, json=body
    )
    assert old.status_code == 401
    new = httpx.post(
        url + "/v1/chat/completions", headers={"Authorization": f"Bearer {new_key}"}, json=body
    )
    assert new.status_code == 200
    p.screenshot(path=str(OUTPUT / "keys.png"))  # type: ignore[attr-defined]

    # Dark theme and a phone-width screen.
    p.click("#theme")  # type: ignore[attr-defined]
    p.set_viewport_size({"width": 390, "height": 844})  # type: ignore[attr-defined]
    p.click("#nav a[data-page=dashboard]")  # type: ignore[attr-defined]
    p.wait_for_selector("h1:has-text('Dashboard')")  # type: ignore[attr-defined]
    width = p.evaluate("document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 400
    p.screenshot(path=str(OUTPUT / "dashboard-phone-dark.png"), full_page=True)  # type: ignore[attr-defined]
