"""The admin page in a real browser (Debian's Chromium driven by Playwright).

Screenshots land in test-output/ui/ (desktop and phone widths, light and dark).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.servers import ADMIN_KEY, ThreadedGateway, Upstream, gateway_config

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output" / "ui"
# The browser's zone, far from UTC, so a time shown in UTC cannot pass for local time.
TIMEZONE = "Asia/Kolkata"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}
PAGES = ["dashboard", "providers", "models", "keys", "logs"]

playwright_sync = pytest.importorskip("playwright.sync_api")
Page = Any  # playwright.sync_api.Page; the module is only importable where it is installed


@pytest.fixture
def ui_gateway(tmp_path: Path) -> Iterator[ThreadedGateway]:
    gateway = ThreadedGateway(gateway_config(f"sqlite:///{tmp_path / 'ui.db'}")).start()
    yield gateway
    gateway.stop()


@pytest.fixture
def page() -> Iterator[Page]:
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
        context = browser.new_context(viewport=DESKTOP, timezone_id=TIMEZONE, locale="en-GB")
        tab = context.new_page()
        tab.on("dialog", lambda dialog: dialog.accept())
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        yield tab
        context.close()
        browser.close()
        assert not errors, f"JavaScript errors in the page: {errors}"


# ---- helpers --------------------------------------------------------------------------------
def _admin(gateway: ThreadedGateway) -> httpx.Client:
    return httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )


def _sign_in(p: Page, gateway: ThreadedGateway) -> None:
    p.goto(gateway.url + "/ui/")
    p.fill("#signin-key", ADMIN_KEY)
    p.click("#signin-form button")
    p.wait_for_selector("h1:has-text('Dashboard')")


def _go(p: Page, name: str) -> None:
    p.click(f"#nav a[data-page={name}]")
    p.wait_for_selector(f"h1:has-text('{name.capitalize()}')")
    p.wait_for_load_state("networkidle")


def _fill_dialog(p: Page, values: dict[str, str]) -> None:
    for name, value in values.items():
        target = p.locator(f"#dialog-body [name={name}]")
        if target.evaluate("el => el.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    p.locator("#dialog-ok").click()


def _flush(gateway: ThreadedGateway) -> None:
    """Write the pending log rows and usage now instead of at the next tick."""
    gateway.run(gateway.runtime.log_writer.write_pending())
    gateway.run(gateway.runtime.store.ledger.flush(gateway.runtime.store.engine))


def _chat(gateway: ThreadedGateway, key: str, content: str, stream: bool = False) -> int:
    body = {"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": content}]}
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", headers=headers, json=body, timeout=10
    ) as response:
        with contextlib.suppress(httpx.HTTPError):  # a cut stream may end abruptly
            response.read()
        return response.status_code


def _seed(gateway: ThreadedGateway, upstream: Upstream) -> dict[str, Any]:
    """A provider, a model, a key with a budget, and a few requests of each outcome."""
    with _admin(gateway) as admin:
        provider = admin.post(
            "/admin/providers",
            json={
                "name": "local-upstream",
                "kind": "openai",
                "api_key": "sk-ui-provider-secret",
                "base_url": upstream.base_url(),
            },
        ).json()
        model = admin.post(
            "/admin/models",
            json={
                "name": "gpt-4o",
                "provider_id": provider["id"],
                "provider_model_name": "gpt-4o-upstream",
            },
        ).json()
        created = admin.post(
            "/admin/keys", json={"name": "mobile-app-production", "token_budget": 1000}
        ).json()
    key = created["key"]
    assert _chat(gateway, key, "hello") == 200
    assert _chat(gateway, key, "hello again", stream=True) == 200
    assert _chat(gateway, key, "mode:status:500") == 500
    assert _chat(gateway, key, "mode:cut", stream=True) == 200
    _flush(gateway)
    return {"provider": provider, "model": model, "key": created}


def _layout_problems(p: Page) -> dict[str, Any]:
    """What sticks out of the viewport: the page's width, and any button, status or table."""
    return p.evaluate(
        """() => {
          const width = window.innerWidth;
          const out = [];
          const selector = "main button, main .badge, main [data-testid=status], "
            + "#dialog[open] button, #dialog[open] .badge, #dialog[open] dd, #dialog[open] td";
          for (const el of document.querySelectorAll(selector)) {
            const box = el.getBoundingClientRect();
            if (box.width === 0 && box.height === 0) continue;
            if (box.left < -0.5 || box.right > width + 0.5)
              out.push(`${el.tagName} '${el.textContent.trim()}' ${box.left}..${box.right}`);
          }
          for (const el of document.querySelectorAll(".scroll, #dialog-form, .plot")) {
            if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1)
              out.push(`${el.className || el.id} scrolls: ${el.scrollWidth} > ${el.clientWidth}`);
          }
          return {scrollWidth: document.documentElement.scrollWidth, width, out};
        }"""
    )


def _assert_fits(p: Page, shot: str) -> None:
    p.screenshot(path=str(OUTPUT / f"{shot}.png"), full_page=True)
    found = _layout_problems(p)
    assert found["scrollWidth"] <= found["width"], (shot, found)
    assert not found["out"], (shot, found["out"])


# ---- tests ------------------------------------------------------------------------------------
def test_admin_page_end_to_end(ui_gateway: ThreadedGateway, upstream: Upstream, page: Page) -> None:
    p = page
    url = ui_gateway.url
    p.goto(url + "/ui/")
    p.fill("#signin-key", "wrong-admin-key-000000")
    p.click("#signin-form button")
    p.wait_for_selector("#signin-error:has-text('refused')")
    p.fill("#signin-key", ADMIN_KEY)
    p.click("#signin-form button")
    p.wait_for_selector("h1:has-text('Dashboard')")
    assert not p.is_visible("#signin")
    assert ADMIN_KEY not in p.url
    assert p.evaluate("document.cookie") == ""

    # Providers: create one pointing at the local upstream.
    _go(p, "providers")
    p.click("button:has-text('New provider')")
    _fill_dialog(
        p,
        {
            "name": "local",
            "kind": "openai",
            "api_key": "sk-ui-provider-secret",
            "base_url": upstream.base_url(),
        },
    )
    p.wait_for_selector("td:has-text('sk-u...cret')")
    assert "sk-ui-provider-secret" not in p.content()
    p.screenshot(path=str(OUTPUT / "providers.png"))

    # A bad base URL is refused with the API's message, shown in the page.
    p.click("button:has-text('New provider')")
    _fill_dialog(p, {"name": "bad", "api_key": "k", "base_url": "ftp://nope"})
    p.wait_for_selector("#dialog-error:has-text('base_url')")
    p.click("#dialog-cancel")

    # Models: the provider and its model name are a deployment row of the dialog.
    _go(p, "models")
    p.click("button:has-text('New model')")
    p.fill("#dialog-body [data-field=provider_model_name]", "gpt-4o-upstream")
    _fill_dialog(p, {"name": "gpt-4o", "output_token_coefficient": "2"})
    p.wait_for_selector("[data-testid=deployment]:has-text('gpt-4o-upstream')")
    p.screenshot(path=str(OUTPUT / "models.png"))

    # Keys: the plaintext is shown once.
    _go(p, "keys")
    p.click("button:has-text('New key')")
    _fill_dialog(p, {"name": "ui-app", "token_budget": "1000"})
    key = p.locator("[data-testid=secret]").inner_text().strip()
    assert key.startswith("sk-") and len(key) == 39
    p.screenshot(path=str(OUTPUT / "key-created.png"))
    p.click("#dialog-cancel")

    # Use the key through the proxy; see it on the dashboard and in the logs.
    assert _chat(ui_gateway, key, "hi from the ui test") == 200
    _flush(ui_gateway)
    _go(p, "dashboard")
    p.wait_for_selector("[data-testid=tile-requests-24h] .value:text-is('1')")
    p.wait_for_selector("td:has-text('gpt-4o')")
    p.screenshot(path=str(OUTPUT / "dashboard.png"))
    _go(p, "logs")
    p.wait_for_selector("td:has-text('ui-app')")
    p.click("button:has-text('Details')")
    p.wait_for_selector("#dialog-body dd:has-text('gpt-4o-upstream')")
    p.screenshot(path=str(OUTPUT / "logs.png"))
    p.click("#dialog-cancel")

    # Rotate: the new key is shown once and the old one is refused.
    _go(p, "keys")
    p.wait_for_selector("td:has-text('20 / 1,000')")
    p.click("button:has-text('Rotate')")
    new_key = p.locator("[data-testid=secret]").inner_text().strip()
    assert new_key != key
    p.click("#dialog-cancel")
    assert _chat(ui_gateway, key, "again") == 401
    assert _chat(ui_gateway, new_key, "again") == 200
    p.screenshot(path=str(OUTPUT / "keys.png"))


def test_key_is_renamed_from_its_edit_dialog(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    p = page
    seeded = _seed(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    _go(p, "keys")
    p.click("tr:has-text('mobile-app-production') button:has-text('Edit')")
    assert p.input_value("#dialog-body [name=token_budget]") == "1000"
    _fill_dialog(p, {"name": "mobile-app-staging"})
    p.wait_for_selector("td:has-text('mobile-app-staging')")
    with _admin(ui_gateway) as admin:
        keys = admin.get("/admin/keys").json()
    renamed = next(k for k in keys if k["id"] == seeded["key"]["id"])
    assert renamed["name"] == "mobile-app-staging"
    assert renamed["token_budget"] == 1000  # the budget kept as it was


def test_dashboard_charts_have_hour_axes_and_values_on_hover(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    p = page
    _seed(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    p.wait_for_selector("[data-testid=tile-requests-24h] .value:text-is('4')")
    # The tile counts every failed request (is_error), not only the upstream's: say so.
    failed = p.locator("[data-testid=tile-failed-24h]")
    assert failed.locator(".value").inner_text() == "2"
    assert "failed requests, 24 h" in failed.inner_text()
    assert "refusals" in failed.inner_text() and "upstream" in failed.inner_text()
    assert p.locator(".grid2 th:text-is('failed')").count() == 1  # the providers' column
    assert p.locator("text=errors, 24 h").count() == 0

    # One chart per measure, each with its own scale, drawn by the vendored uPlot.
    for chart in ("requests", "tokens", "latency", "spend"):
        p.wait_for_selector(f"[data-testid=chart-{chart}] .uplot canvas")
    requests = p.locator("[data-testid=chart-requests]")
    labels = requests.locator(".u-legend th").all_inner_texts()
    assert [label.strip() for label in labels] == ["hour", "requests", "failed"]

    # The chart fills its card: its canvas is as wide as the card's content.
    widths = p.evaluate(
        """() => {
          const plot = document.querySelector('[data-testid=chart-requests]');
          return [plot.clientWidth, plot.querySelector('.uplot').getBoundingClientRect().width];
        }"""
    )
    assert widths[1] >= widths[0] - 2

    # Hovering the current hour shows its values in the legend, in local time.
    box = requests.locator(".u-over").bounding_box()
    p.mouse.move(box["x"] + box["width"] * (23.5 / 24), box["y"] + box["height"] / 2)
    values = [v.strip() for v in requests.locator(".u-legend .u-value").all_inner_texts()]
    this_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    hour = this_hour.astimezone(ZoneInfo(TIMEZONE)).strftime("%H:%M")
    assert hour in values[0], values
    assert values[1:] == ["4", "2"], values
    p.screenshot(path=str(OUTPUT / "dashboard-hover.png"), full_page=True)

    # Dark theme: the charts are drawn again in its colours.
    p.click("#theme")
    p.wait_for_selector("[data-testid=chart-requests] .uplot canvas")
    assert p.evaluate("document.documentElement.dataset.theme") == "dark"
    p.screenshot(path=str(OUTPUT / "dashboard-dark.png"), full_page=True)


def test_cut_stream_is_failed_in_the_list_and_detail_is_readable(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    p = page
    seeded = _seed(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    _go(p, "logs")
    statuses = p.locator("[data-testid=status]")
    assert sorted(statuses.all_inner_texts()) == ["200", "200", "200 failed", "500"]
    cut = p.locator("[data-testid=status]:text-is('200 failed')")
    assert "err" in (cut.get_attribute("class") or "")
    assert "stream interrupted" in (cut.get_attribute("title") or "")
    assert p.locator("td:has-text('mobile-app-production')").count() == 4

    # The filter fields line up: the same top and the same height.
    boxes = [
        p.locator(f"form.filters [name={name}]").bounding_box()
        for name in ("model", "key_id", "status_code", "is_error")
    ]
    assert len({round(b["y"]) for b in boxes}) == 1, boxes
    assert len({round(b["height"]) for b in boxes}) == 1, boxes
    failed_only = p.locator("form.filters [name=is_error]")
    failed_only.select_option("true")
    p.click("form.filters button")
    p.wait_for_function("document.querySelectorAll('[data-testid=status]').length === 2")

    # The detail: readable labels, the key's and provider's names, the local time, no clipping.
    p.click("tr:has-text('200 failed') button:has-text('Details')")
    facts = p.locator("[data-testid=log-facts]")
    facts.wait_for()
    labels = facts.locator("dt").all_inner_texts()
    assert "Key" in labels and "Provider" in labels and "Time" in labels
    assert not [label for label in labels if "_" in label], labels
    assert facts.locator("dd[data-field=key_name]").inner_text() == "mobile-app-production"
    assert "local-upstream" in facts.locator("dd[data-field=provider_name]").inner_text()
    assert "stream interrupted" in facts.locator("dd[data-field=error_message]").inner_text()
    with _admin(ui_gateway) as admin:
        rows = admin.get("/admin/logs", params={"is_error": "true"}).json()["data"]
    cut_row = next(r for r in rows if r["status_code"] == 200)
    assert cut_row["key_name"] == "mobile-app-production"
    assert cut_row["provider_name"] == seeded["provider"]["name"]
    created = datetime.fromisoformat(cut_row["created_at"].replace("Z", "+00:00"))
    local = created.astimezone(ZoneInfo(TIMEZONE)).strftime("%H:%M:%S")
    shown = facts.locator("dd[data-field=created_at]").inner_text()
    assert local in shown and "GMT+5:30" in shown, shown
    found = _layout_problems(p)
    assert not found["out"], found["out"]
    p.screenshot(path=str(OUTPUT / "log-detail.png"))


def test_log_detail_shows_routing_attempts(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    """Served model, serving provider, attempts and failed attempts (DESIGN section 6).

    The fields are added to the API's own answer, so this runs with or without routing.
    """
    p = page
    _seed(ui_gateway, upstream)
    extra = {
        "model_served": "gpt-4o-mini",
        "provider_name": "backup-provider",
        "attempts": 3,
        "failed_attempts": [
            {
                "provider_name": "primary",
                "provider_id": "p1",
                "status": 503,
                "error": None,
                "ms": 41,
            },
            {
                "provider_name": "secondary",
                "provider_id": "p2",
                "status": None,
                "error": "connect_timeout: the upstream did not accept the connection",
                "ms": 5000,
            },
        ],
    }

    def with_routing(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, json={**response.json(), **extra})

    p.route(re.compile(r".*/admin/logs/\d+$"), with_routing)
    _sign_in(p, ui_gateway)
    _go(p, "logs")
    p.locator("button:has-text('Details')").first.click()
    facts = p.locator("[data-testid=log-facts]")
    facts.wait_for()
    assert facts.locator("dd[data-field=model_served]").inner_text() == "gpt-4o-mini"
    assert "backup-provider" in facts.locator("dd[data-field=provider_name]").inner_text()
    assert facts.locator("dd[data-field=attempts]").inner_text() == "3"
    attempts = p.locator("[data-testid=failed-attempts] tbody tr")
    assert attempts.count() == 2
    assert "503" in attempts.nth(0).inner_text() and "41 ms" in attempts.nth(0).inner_text()
    assert "connect_timeout" in attempts.nth(1).inner_text()
    p.screenshot(path=str(OUTPUT / "log-detail-attempts.png"))
    p.set_viewport_size(PHONE)
    _assert_fits(p, "log-detail-attempts-phone")


def _routing_models(providers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two models as the routing API describes them (DESIGN section 6)."""
    first, second = providers
    deployment = {"provider_model_name": "gpt-4o-2024", "last_error": None, "cooling_until": None}
    common = {
        "is_active": True,
        "input_token_coefficient": 1.0,
        "output_token_coefficient": 1.0,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }
    return [
        {
            **common,
            "id": "00000000-0000-4000-8000-000000000001",
            "name": "gpt-4o",
            "provider_id": first["id"],
            "provider_name": first["name"],
            "provider_model_name": "gpt-4o-2024",
            "fallbacks": ["gpt-4o-mini"],
            "deployments": [
                {
                    **deployment,
                    "id": "d1",
                    "provider_id": first["id"],
                    "provider_name": first["name"],
                    "weight": 3,
                    "priority": 0,
                    "status": "healthy",
                },
                {
                    **deployment,
                    "id": "d2",
                    "provider_id": second["id"],
                    "provider_name": second["name"],
                    "weight": 1,
                    "priority": 1,
                    "status": "cooling",
                    "cooling_until": "2030-01-01T12:30:00Z",
                    "last_error": "HTTP 429 from the upstream",
                },
            ],
        },
        {
            **common,
            "id": "00000000-0000-4000-8000-000000000002",
            "name": "gpt-4o-mini",
            "provider_id": second["id"],
            "provider_name": second["name"],
            "provider_model_name": "gpt-4o-mini",
            "fallbacks": [],
            "deployments": [
                {
                    **deployment,
                    "id": "d3",
                    "provider_id": second["id"],
                    "provider_name": second["name"],
                    "provider_model_name": "gpt-4o-mini",
                    "weight": 1,
                    "priority": 0,
                    "status": "healthy",
                },
            ],
        },
    ]


def _two_providers(gateway: ThreadedGateway, upstream: Upstream) -> list[dict[str, Any]]:
    with _admin(gateway) as admin:
        return [
            admin.post(
                "/admin/providers",
                json={
                    "name": name,
                    "kind": "openai",
                    "api_key": "k",
                    "base_url": upstream.base_url(),
                },
            ).json()
            for name in ("primary", "secondary")
        ]


def test_models_page_shows_deployment_health_and_edits_deployments(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    """The page against the routing contract, with the model list answered by the test."""
    p = page
    providers = _two_providers(ui_gateway, upstream)
    models = _routing_models(providers)
    sent: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        request = route.request
        if request.method == "GET":
            route.fulfill(json=models)
        else:
            sent.append({"method": request.method, "url": request.url, **request.post_data_json})
            route.fulfill(json=models[0])

    p.route(re.compile(r".*/admin/models(/[^/]+)?$"), answer)
    _sign_in(p, ui_gateway)
    _go(p, "models")
    row = p.locator("tbody tr").first
    deployments = row.locator("[data-testid=deployment]")
    assert deployments.count() == 2
    assert deployments.nth(0).get_attribute("data-state") == "healthy"
    assert deployments.nth(1).get_attribute("data-state") == "cooling"
    assert "last error: HTTP 429" in (deployments.nth(1).get_attribute("title") or "")
    detail = deployments.nth(1).locator(".deployment-detail").inner_text()
    assert detail.startswith("cooling until") and "HTTP 429 from the upstream" in detail
    assert "weight 3 · priority 0" in deployments.nth(0).inner_text()
    assert "gpt-4o-mini" in row.inner_text()  # its fallback
    p.screenshot(path=str(OUTPUT / "models-routing.png"))

    # Edit: the rows come filled in; add one and drop the cooling one.
    row.locator("button:has-text('Edit')").click()
    rows = p.locator("[data-testid=deployment-row]")
    assert rows.count() == 2
    assert rows.nth(0).locator("[data-field=weight]").input_value() == "3"
    assert rows.nth(1).locator("[data-field=provider_id]").input_value() == providers[1]["id"]
    p.click("[data-testid=add-deployment]")
    third = rows.nth(2)
    third.locator("[data-field=provider_id]").select_option(providers[1]["id"])
    third.locator("[data-field=provider_model_name]").fill("gpt-4o-eu")
    third.locator("[data-field=weight]").fill("5")
    third.locator("[data-field=priority]").fill("2")
    rows.nth(1).locator("button:has-text('Remove')").click()
    assert rows.count() == 2
    assert p.locator("[data-testid=fallback-row]").count() == 1
    assert p.locator("[data-testid=add-fallback]").is_disabled() is False
    p.screenshot(path=str(OUTPUT / "model-dialog.png"))
    p.click("#dialog-ok")
    p.wait_for_selector("#dialog", state="hidden")
    assert len(sent) == 1
    body = sent[0]
    assert body["method"] == "PUT" and body["url"].endswith(models[0]["id"])
    assert body["deployments"] == [
        {
            "provider_id": providers[0]["id"],
            "provider_model_name": "gpt-4o-2024",
            "weight": 3,
            "priority": 0,
        },
        {
            "provider_id": providers[1]["id"],
            "provider_model_name": "gpt-4o-eu",
            "weight": 5,
            "priority": 2,
        },
    ]
    assert body["fallbacks"] == ["gpt-4o-mini"]
    assert "provider_id" not in body

    # A weight outside 1..1000 is stopped by the form before anything is sent.
    row.locator("button:has-text('Edit')").click()
    rows.nth(0).locator("[data-field=weight]").fill("0")
    p.click("#dialog-ok")
    assert p.locator("#dialog").is_visible()
    assert len(sent) == 1
    p.click("#dialog-cancel")

    p.set_viewport_size(PHONE)
    _assert_fits(p, "models-routing-phone")
    row.locator("button:has-text('Edit')").click()
    _assert_fits(p, "model-dialog-phone")


def test_model_with_deployments_and_fallbacks_through_the_api(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    """The same dialog against the gateway's routing API, once it has landed."""
    spec = httpx.get(ui_gateway.url + "/openapi.json").json()
    schemas = spec.get("components", {}).get("schemas", {}).values()
    if not any("deployments" in s.get("properties", {}) for s in schemas):
        pytest.skip("the admin API does not take deployments yet (DESIGN section 6)")
    p = page
    providers = _two_providers(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    _go(p, "models")
    p.click("button:has-text('New model')")
    p.fill("#dialog-body [name=name]", "small-model")
    p.click("#dialog-ok")
    p.wait_for_selector("td:has-text('small-model')")

    p.click("button:has-text('New model')")
    p.fill("#dialog-body [name=name]", "big-model")
    rows = p.locator("[data-testid=deployment-row]")
    rows.nth(0).locator("[data-field=weight]").fill("4")
    p.click("[data-testid=add-deployment]")
    rows.nth(1).locator("[data-field=provider_id]").select_option(providers[1]["id"])
    rows.nth(1).locator("[data-field=provider_model_name]").fill("big-model-backup")
    rows.nth(1).locator("[data-field=priority]").fill("1")
    p.click("[data-testid=add-fallback]")
    p.click("#dialog-ok")
    p.wait_for_selector("td:has-text('big-model')")
    with _admin(ui_gateway) as admin:
        created = next(m for m in admin.get("/admin/models").json() if m["name"] == "big-model")
    chosen = [
        (d["provider_id"], d["provider_model_name"], d["weight"], d["priority"])
        for d in created["deployments"]
    ]
    assert sorted(chosen, key=lambda d: d[3]) == [
        (providers[0]["id"], "big-model", 4, 0),
        (providers[1]["id"], "big-model-backup", 1, 1),
    ]
    assert created["fallbacks"] == ["small-model"]
    row = p.locator("tr:has-text('big-model-backup')")
    assert row.locator("[data-testid=deployment]").count() == 2
    assert row.locator("[data-state=healthy]").count() == 2
    p.screenshot(path=str(OUTPUT / "models-routing-api.png"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_fits_a_phone(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page, theme: str
) -> None:
    p = page
    _seed(ui_gateway, upstream)
    p.set_viewport_size(PHONE)
    _sign_in(p, ui_gateway)
    if p.evaluate("document.documentElement.dataset.theme") != theme:
        p.click("#theme")
    for name in PAGES:
        _go(p, name)
        if name == "dashboard":
            p.wait_for_selector("[data-testid=chart-requests] .uplot canvas")
        _assert_fits(p, f"{name}-phone-{theme}")
    # The buttons of the stacked rows are on screen, and the dialogs fit too.
    p.locator("button:has-text('Details')").first.click()
    p.wait_for_selector("[data-testid=log-facts]")
    _assert_fits(p, f"log-detail-phone-{theme}")
    p.click("#dialog-cancel")
    _go(p, "keys")
    p.click("button:has-text('Edit')")
    _assert_fits(p, f"key-dialog-phone-{theme}")


def test_pages_render_api_text_as_text(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    p = page
    hostile = "<img src=x onerror=window.__pwned=1>"
    with _admin(ui_gateway) as admin:
        provider = admin.post(
            "/admin/providers",
            json={
                "name": hostile,
                "kind": "openai",
                "api_key": "k",
                "base_url": upstream.base_url(),
            },
        ).json()
        admin.post("/admin/models", json={"name": hostile, "provider_id": provider["id"]})
        admin.post("/admin/keys", json={"name": hostile})
    _sign_in(p, ui_gateway)
    for name in ("providers", "models", "keys"):
        _go(p, name)
        assert p.locator(f"td:has-text({json.dumps(hostile)})").count() >= 1
    _go(p, "logs")
    assert p.evaluate("window.__pwned") is None
    assert p.locator("main img").count() == 0


# ---- key policies and cost (DESIGN section 8) -------------------------------------------------
def _require_fields(gateway: ThreadedGateway, schema: str, *names: str) -> None:
    """Skip until the admin API describes `names` in `schema` (the backend has landed)."""
    spec = httpx.get(gateway.url + "/openapi.json").json()
    fields = spec.get("components", {}).get("schemas", {}).get(schema, {}).get("properties", {})
    missing = [name for name in names if name not in fields]
    if missing:
        pytest.skip(f"the admin API does not take {', '.join(missing)} yet (DESIGN section 8)")


def _local(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(TIMEZONE))


def _shown(moment: datetime) -> str:
    """A time as the page's table cells show it in the test's locale (en-GB)."""
    return moment.strftime("%d/%m/%Y, %H:%M")


POLICY = ("allowed_models", "expires_at", "rpm_limit", "tpm_limit", "budget_period")
PRICES = ("input_price_per_million", "cached_input_price_per_million", "output_price_per_million")


def test_key_with_every_policy_is_created_shown_and_edited(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    _require_fields(ui_gateway, "KeyCreate", *POLICY, "cost_budget_usd")
    p = page
    _seed(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    _go(p, "keys")
    p.click("button:has-text('New key')")
    chip_input = p.locator("[data-testid=allowed-model-input]")
    chip_input.fill("gpt-4o")
    chip_input.press("Enter")  # adds a chip, does not submit the form
    assert p.locator("#dialog").is_visible()
    chip_input.fill("claude-*, gpt-4o")  # a glob; a name already there is not added twice
    p.click("[data-testid=add-allowed-model]")
    chip_input.fill("o1-*")
    chip_input.press("Enter")
    assert p.locator("[data-testid=chip]").count() == 3
    p.click("[data-testid=chip][data-value='o1-*'] button")
    assert p.locator("[data-testid=chip] > span").all_inner_texts() == ["gpt-4o", "claude-*"]
    _assert_fits(p, "key-dialog-policies")
    _fill_dialog(
        p,
        {
            "name": "limited-app",
            "token_budget": "5000",
            "cost_budget_usd": "2.5",
            "budget_period": "daily",
            "expires_at": "2030-06-01T09:30",  # Kolkata time: 04:00 UTC
            "rpm_limit": "60",
            "tpm_limit": "100000",
        },
    )
    p.wait_for_selector("[data-testid=secret]")
    p.click("#dialog-cancel")

    with _admin(ui_gateway) as admin:
        key = next(k for k in admin.get("/admin/keys").json() if k["name"] == "limited-app")
    assert key["allowed_models"] == ["gpt-4o", "claude-*"]
    expires = datetime.fromisoformat(key["expires_at"].replace("Z", "+00:00"))
    assert expires == datetime(2030, 6, 1, 4, 0, tzinfo=UTC)
    assert (key["rpm_limit"], key["tpm_limit"], key["token_budget"]) == (60, 100000, 5000)
    assert key["budget_period"] == "daily"
    assert float(key["cost_budget_usd"]) == 2.5

    row = p.locator("tr:has-text('limited-app')")
    assert row.locator("[data-testid=key-models]").inner_text() == "models: gpt-4o, claude-*"
    assert row.locator("[data-testid=key-rates]").inner_text() == (
        "60 requests/min · 100,000 tokens/min"
    )
    assert row.locator("[data-testid=expiry]").inner_text() == "01/06/2030, 09:30"
    assert "0 / 5,000 tokens" in row.locator("[data-testid=usage-tokens]").inner_text()
    assert "$0.00 / $2.50 spend" in row.locator("[data-testid=usage-spend]").inner_text()
    resets = row.locator("[data-testid=resets]").inner_text()
    assert resets.startswith("daily"), resets
    assert _shown(_local(key["budget_resets_at"])) in resets  # local time: 05:30 in Kolkata
    assert resets.endswith(", 05:30"), resets
    # The key seeded without policies: every model, no rate limit, no expiry, no period.
    plain = p.locator("tr:has-text('mobile-app-production')")
    assert plain.locator("[data-testid=key-models]").inner_text() == "models: all"
    assert plain.locator("[data-testid=key-rates]").inner_text() == "no rate limit"
    assert plain.locator("[data-testid=expiry]").inner_text() == "never"
    assert plain.locator("[data-testid=resets]").inner_text() == "budgets never reset"
    p.screenshot(path=str(OUTPUT / "keys-policies.png"), full_page=True)
    found = _layout_problems(p)
    assert not found["out"], found["out"]

    # Edit: the dialog comes filled in; drop a model and the request limit, change the period.
    row.locator("button:has-text('Edit')").click()
    assert p.locator("[data-testid=chip]").count() == 2
    assert p.input_value("#dialog-body [name=expires_at]") == "2030-06-01T09:30"
    assert p.input_value("#dialog-body [name=rpm_limit]") == "60"
    assert p.input_value("#dialog-body [name=budget_period]") == "daily"
    assert float(p.input_value("#dialog-body [name=cost_budget_usd]")) == 2.5
    p.click("[data-testid=chip][data-value='claude-*'] button")
    _fill_dialog(p, {"rpm_limit": "", "budget_period": "monthly"})
    p.wait_for_selector("tr:has-text('limited-app') [data-testid=resets]:has-text('monthly')")
    with _admin(ui_gateway) as admin:
        edited = next(k for k in admin.get("/admin/keys").json() if k["id"] == key["id"])
    assert edited["allowed_models"] == ["gpt-4o"]
    assert edited["rpm_limit"] is None and edited["tpm_limit"] == 100000
    assert edited["budget_period"] == "monthly"
    assert edited["expires_at"] == key["expires_at"]  # unchanged, so not sent

    # Every model again, and no expiry.
    row.locator("button:has-text('Edit')").click()
    p.click("[data-testid=chip][data-value='gpt-4o'] button")
    _fill_dialog(p, {"expires_at": ""})
    p.wait_for_selector("#dialog", state="hidden")
    p.wait_for_function(
        "[...document.querySelectorAll('tr')].some((tr) => tr.textContent.includes('limited-app')"
        " && tr.querySelector('[data-testid=key-models]').textContent === 'models: all')"
    )
    with _admin(ui_gateway) as admin:
        cleared = next(k for k in admin.get("/admin/keys").json() if k["id"] == key["id"])
    assert cleared["allowed_models"] is None and cleared["expires_at"] is None


def test_expired_key_is_marked(ui_gateway: ThreadedGateway, page: Page) -> None:
    _require_fields(ui_gateway, "KeyCreate", "expires_at")
    p = page
    with _admin(ui_gateway) as admin:
        for name, expires in (("short-lived", "2030-01-01"), ("long-lived", "2040-01-01")):
            body = {"name": name, "expires_at": f"{expires}T00:00:00Z"}
            assert admin.post("/admin/keys", json=body).status_code == 201
    p.clock.set_system_time(datetime(2031, 1, 1, tzinfo=UTC))  # the browser's clock only
    _sign_in(p, ui_gateway)
    _go(p, "keys")
    short = p.locator("tr:has-text('short-lived')")
    assert short.locator("[data-testid=expired]").inner_text() == "expired"
    expiry = short.locator("[data-testid=expiry]")
    assert expiry.inner_text() == "01/01/2030, 05:30"
    assert "expired" in (expiry.get_attribute("class") or "")
    long = p.locator("tr:has-text('long-lived')")
    assert long.locator("[data-testid=expired]").count() == 0
    assert long.locator(".badge").inner_text() == "active"


def _priced_setup(gateway: ThreadedGateway, upstream: Upstream) -> dict[str, Any]:
    """A priced model, a key with policies and a cost budget, and two answered requests."""
    seeded = _seed(gateway, upstream)
    with _admin(gateway) as admin:
        response = admin.put(
            f"/admin/models/{seeded['model']['id']}",
            json={"input_price_per_million": 1000, "output_price_per_million": 2000},
        )
        assert response.status_code == 200, response.text
        created = admin.post(
            "/admin/keys",
            json={
                "name": "priced-app",
                "allowed_models": ["gpt-4o", "gpt-4o-*", "claude-3-5-sonnet-*"],
                "rpm_limit": 600,
                "tpm_limit": 2_000_000,
                "budget_period": "weekly",
                "cost_budget_usd": 1,
                "token_budget": 1_000_000,
                "expires_at": "2031-12-31T18:30:00Z",
            },
        )
        assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert _chat(gateway, key, "a priced question") == 200
    assert _chat(gateway, key, "another priced question", stream=True) == 200
    _flush(gateway)
    return {**seeded, "priced_key": created.json()}


def test_model_prices_are_edited_and_shown(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    _require_fields(ui_gateway, "ModelUpdate", *PRICES)
    p = page
    seeded = _seed(ui_gateway, upstream)
    _sign_in(p, ui_gateway)
    _go(p, "models")
    row = p.locator("tr:has-text('gpt-4o')")
    assert row.locator("[data-testid=prices]").inner_text() == "not priced"
    row.locator("button:has-text('Edit')").click()
    _fill_dialog(
        p,
        {
            "input_price_per_million": "2.5",
            "cached_input_price_per_million": "1.25",
            "output_price_per_million": "10",
        },
    )
    p.wait_for_selector("[data-testid=prices] [data-field=output_price_per_million]")
    prices = row.locator("[data-testid=prices]")
    assert prices.locator("div").all_inner_texts() == ["in $2.50", "cached in $1.25", "out $10.00"]
    with _admin(ui_gateway) as admin:
        model = admin.get("/admin/models").json()[0]
    assert model["id"] == seeded["model"]["id"]
    assert [float(model[name]) for name in PRICES] == [2.5, 1.25, 10.0]

    # The dialog comes filled in; emptying a price clears it.
    row.locator("button:has-text('Edit')").click()
    assert float(p.input_value("#dialog-body [name=input_price_per_million]")) == 2.5
    _fill_dialog(p, {"cached_input_price_per_million": ""})
    p.wait_for_function("!document.querySelector('[data-field=cached_input_price_per_million]')")
    with _admin(ui_gateway) as admin:
        model = admin.get("/admin/models").json()[0]
    assert model["cached_input_price_per_million"] is None
    assert float(model["input_price_per_million"]) == 2.5
    p.screenshot(path=str(OUTPUT / "models-prices.png"))


def test_dashboard_and_logs_show_spend(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page
) -> None:
    _require_fields(ui_gateway, "ModelUpdate", *PRICES)
    _require_fields(ui_gateway, "KeyCreate", *POLICY, "cost_budget_usd")
    p = page
    setup = _priced_setup(ui_gateway, upstream)
    with _admin(ui_gateway) as admin:
        stats = admin.get("/admin/stats").json()
        rows = admin.get("/admin/logs").json()["data"]
    # 10 prompt and 5 completion tokens at $1,000 and $2,000 per million: $0.02 a request.
    priced = [r for r in rows if r["key_name"] == "priced-app"]
    assert [float(r["cost_usd"]) for r in priced] == [0.02, 0.02]
    assert all(r["cost_usd"] is None for r in rows if r["key_name"] != "priced-app")
    _sign_in(p, ui_gateway)
    assert p.locator("[data-testid=tile-spend-24h] .value").inner_text() == "$0.04"
    p.wait_for_selector("[data-testid=chart-spend] .uplot canvas")
    spend = p.locator("[data-testid=chart-spend]")
    assert [v.strip() for v in spend.locator(".u-legend .u-value").all_inner_texts()][1] == "$0.04"
    models = p.locator("[data-testid=model-usage]")
    assert "spend" in models.locator("th").all_inner_texts()
    assert "$0.04" in models.locator("tr:has-text('gpt-4o')").inner_text()
    providers = p.locator("[data-testid=provider-usage]")
    assert "$0.04" in providers.locator("tr:has-text('local-upstream')").inner_text()
    keys = p.locator("[data-testid=key-usage]")
    assert "$0.04" in keys.locator("tr:has-text('priced-app')").inner_text()
    assert stats  # read above, for the failure message when a name changes
    p.screenshot(path=str(OUTPUT / "dashboard-spend.png"), full_page=True)

    _go(p, "keys")
    row = p.locator("tr:has-text('priced-app')")
    assert "$0.04 / $1.00 spend" in row.locator("[data-testid=usage-spend]").inner_text()
    assert "weekly" in row.locator("[data-testid=resets]").inner_text()
    assert setup["priced_key"]["cost_budget_usd"] is not None

    _go(p, "logs")
    costs = p.locator("[data-testid=cost]").all_inner_texts()
    assert sorted(costs) == ["$0.02", "$0.02", "—", "—", "—", "—"], costs
    p.locator("tr:has-text('priced-app') button:has-text('Details')").first.click()
    facts = p.locator("[data-testid=log-facts]")
    assert facts.locator("dd[data-field=cost_usd]").inner_text() == "$0.02"
    p.click("#dialog-cancel")
    p.wait_for_selector("#dialog", state="hidden")
    p.locator("tr:has-text('mobile-app-production') button:has-text('Details')").first.click()
    facts.locator("dd[data-field=key_name]:text-is('mobile-app-production')").wait_for()
    unpriced = facts.locator("dd[data-field=cost_usd]").inner_text()
    assert unpriced == "— (the model has no prices)"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_policy_and_cost_pages_fit_a_phone(
    ui_gateway: ThreadedGateway, upstream: Upstream, page: Page, theme: str
) -> None:
    _require_fields(ui_gateway, "ModelUpdate", *PRICES)
    _require_fields(ui_gateway, "KeyCreate", *POLICY, "cost_budget_usd")
    p = page
    _priced_setup(ui_gateway, upstream)
    p.set_viewport_size(PHONE)
    _sign_in(p, ui_gateway)
    if p.evaluate("document.documentElement.dataset.theme") != theme:
        p.click("#theme")
    p.wait_for_selector("[data-testid=chart-spend] .uplot canvas")
    _assert_fits(p, f"dashboard-spend-phone-{theme}")
    for name in ("models", "keys", "logs"):
        _go(p, name)
        _assert_fits(p, f"{name}-cost-phone-{theme}")
    _go(p, "keys")
    p.click("tr:has-text('priced-app') button:has-text('Edit')")
    assert p.locator("[data-testid=chip]").count() == 3
    _assert_fits(p, f"key-dialog-policies-phone-{theme}")
    p.click("#dialog-cancel")
    _go(p, "models")
    p.click("button:has-text('Edit')")
    _assert_fits(p, f"model-dialog-prices-phone-{theme}")
