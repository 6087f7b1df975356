"""The page in Debian's Chromium (Playwright), against a real controller process releasing a canary through
a traffic gate: the list follows the canary live without a reload, promote and abort clicked with the token
change the rollout, and the same clicks without a token are refused (the page says so; nothing changes).
The page gets its token from the URL fragment (#token=...) `rollouts dashboard` prints; without one it
shows no data.

Set ROLLOUTS_WRITE_SCREENSHOT=1 to refresh docs/dashboard.png (the rollout page mid-canary)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require_tool
from tests.dashboard.helpers import TOKEN, live_server
from tests.e2e.harness import ControllerProcess, Load, wait_until
from tests.e2e.manifests import GATE, canary

pytestmark = pytest.mark.integration

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The e2e canary, ending on an indefinite pause so the buttons have something to act on.
MANIFEST = canary([{"setWeight": 30}, GATE, {"setWeight": 60}, {"pause": {}}])


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop_leaving_no_pods()


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = require_tool("chromium", "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("playwright is not installed in CI: pip install -e '.[test]'")
        pytest.skip("playwright is not installed: pip install playwright")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def status(ctl: ControllerProcess) -> dict[str, Any]:
    return dict(ctl.rollout("shop").get("status") or {})


def open_with_token(page: Any, url: str, route: str) -> None:
    """Opens the page as `rollouts dashboard` prints it (the token in the fragment), then goes to `route`
    (a hash change: the same page, its sessionStorage keeps the token)."""
    page.goto(f"{url}/#token={TOKEN}")
    page.wait_for_function("() => location.hash === ''")
    page.goto(f"{url}/{route}")


def confirm(page: Any, selector: str) -> str:
    """Clicks an action, confirms in the page's dialog, returns the result line the page shows."""
    page.locator("#result").evaluate("node => { node.hidden = true; node.textContent = ''; }")
    page.click(selector)
    page.wait_for_selector("#confirm[open]")
    page.click("#confirm-ok")
    page.wait_for_function("() => !document.querySelector('#result').hidden")
    return str(page.text_content("#result"))


def test_dashboard_in_chromium(controller: ControllerProcess, browser: Any, tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    controller.cli("apply", "-f", str(manifest))
    controller.cli("status", "shop", "--timeout", "60s")
    port = controller.ingress_port("shop")
    errors: list[str] = []
    # The dashboard reaches the controller's local cluster through its kubeconfig, as `rollouts dashboard` does.
    with live_server(None, kubeconfig=controller.home / "kubeconfig") as url, Load(port):
        context = browser.new_context(viewport={"width": 1280, "height": 1500})
        listing, detail = context.new_page(), context.new_page()
        for page in (listing, detail):
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
        open_with_token(listing, url, "#/ns/default")
        listing.wait_for_selector("tr[data-rollout='default/shop'] td.status >> text=Healthy")
        open_with_token(detail, url, "#/rollout/default/shop")
        detail.wait_for_selector("#r-status >> text=Healthy")
        # Remember every set weight the list shows; a reload would lose both the record and the marker.
        listing.evaluate("""() => {
            window.seen = [];
            window.notReloaded = true;
            const record = () => {
              const cell = document.querySelector("tr[data-rollout='default/shop'] td.set-weight");
              if (cell && window.seen[window.seen.length - 1] !== cell.textContent) window.seen.push(cell.textContent);
            };
            new MutationObserver(record).observe(document.querySelector('#rollouts tbody'),
                                                 {childList: true, subtree: true, characterData: true});
        }""")

        controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        listing.wait_for_function(
            "() => window.seen.includes('30') && window.seen.includes('60') && window.notReloaded", timeout=90_000)
        listing.wait_for_selector("tr[data-rollout='default/shop'] td.step >> text=3/4", timeout=30_000)
        assert listing.text_content("tr[data-rollout='default/shop'] td.status") == "Paused"
        assert "rollouts-demo:yellow (canary)" in str(listing.text_content("tr[data-rollout='default/shop'] td.images"))

        # The rollout page followed too: its current step, the gate's measurements against 0.95.
        detail.wait_for_selector("#steps li.current >> text=pause", timeout=20_000)
        detail.wait_for_selector("section.run .threshold.success", state="attached")
        assert detail.locator("section.run circle.point").count() >= 2
        assert detail.locator("#weight-chart polyline.actual").get_attribute("points").count(",") >= 3
        shot = REPO / "docs" / "dashboard.png" if os.environ.get("ROLLOUTS_WRITE_SCREENSHOT") else tmp_path / "d.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        detail.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000

        # Without a token (forgotten; the open stream goes on): both clicks are refused, the page says so,
        # the rollout stays paused.
        detail.click("#token-forget")
        for action in ("promote", "abort"):
            shown = confirm(detail, f"#actions button[data-action='{action}']")
            assert shown.startswith("refused (401)"), shown
        paused = status(controller)
        assert paused.get("pauseConditions") and not paused.get("abort")
        assert paused["currentStepIndex"] == 3

        # A cancelled confirmation does nothing.
        detail.click("#actions button[data-action='abort']")
        detail.click("#confirm-cancel")
        assert not status(controller).get("abort")

        detail.fill("#token", TOKEN)
        detail.click("#token-save")
        assert detail.evaluate("() => sessionStorage.getItem('rollouts.dashboard.token')") == TOKEN
        assert context.cookies() == []
        assert confirm(detail, "#actions button[data-action='promote']") == "rollout 'shop' promoted"
        wait_until(lambda: status(controller).get("phase") == "Healthy"
                   and status(controller).get("stableRS") == status(controller).get("currentPodHash"),
                   60, "the promoted rollout to finish")
        detail.wait_for_selector("#r-status >> text=Healthy", timeout=20_000)

        # A new release through the page's set-image form, then aborted from the page.
        detail.select_option("#si-container", "shop")
        detail.fill("#si-image", "rollouts-demo:green")
        assert confirm(detail, "#set-image button[type=submit]") == "rollout 'shop' image updated"
        detail.wait_for_selector("#r-status >> text=Progressing", timeout=30_000)
        assert confirm(detail, "#actions button[data-action='abort']") == "rollout 'shop' aborted"
        wait_until(lambda: status(controller).get("abort") is True, 10, "the abort to be stored")
        detail.wait_for_selector("#r-status >> text=Degraded", timeout=30_000)
        assert listing.evaluate("() => window.notReloaded") is True
        context.close()
    # The refused clicks log their 401s; anything else (a script error, a CSP violation) is a failure.
    assert [e for e in errors if "status of 401" not in e] == []
    assert sum("status of 401" in e for e in errors) == 2


# -- 12.9: the page tells the truth (a seeded store mid-release: no controller needed) -----------------------

RUNBOOK_SUCCESS = "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.95"
RUNBOOK_FAILURE = "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.9"


def _seed_for_page(db: Path) -> None:
    from rollouts.cluster.store import SQLiteStore
    from tests.dashboard.helpers import ROLLOUT, seed_mid_release

    with SQLiteStore(db) as store:
        seed_mid_release(store)
        run = store.get("AnalysisRun", "default", "shop-bbb222-2-2")
        run["spec"]["metrics"][0]["successCondition"] = RUNBOOK_SUCCESS
        run["spec"]["metrics"][0]["failureCondition"] = RUNBOOK_FAILURE
        store.update(run)
        store.create({**ROLLOUT, "metadata": {"name": "cart", "namespace": "default"}})


def test_dashboard_truthful_page_opened_mid_release(browser: Any, tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    _seed_for_page(db)
    errors: list[str] = []
    with live_server(db) as url:
        context = browser.new_context(viewport={"width": 1280, "height": 1400})
        page = context.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # The list's filter: by name, by status, and nothing.
        open_with_token(page, url, "#/ns/default")
        page.wait_for_selector("tr[data-rollout='default/cart']")
        assert page.locator("#rollouts tbody tr").count() == 2
        page.fill("#filter", "cart")
        page.wait_for_function("() => document.querySelectorAll('#rollouts tbody tr').length === 1")
        assert page.locator("tr[data-rollout='default/cart']").count() == 1
        assert page.text_content("#filter-count") == "1 of 2"
        page.fill("#filter", "paused yellow")
        page.wait_for_selector("tr[data-rollout='default/shop']")
        assert page.locator("#rollouts tbody tr").count() == 1
        page.fill("#filter", "no-such-rollout")
        page.wait_for_selector("#no-match", state="visible")
        page.fill("#filter", "")
        page.wait_for_function("() => document.querySelectorAll('#rollouts tbody tr').length === 2")

        # Opened mid-release: the weight line starts at the release's start (0 %), then 10 %, then 30 %.
        page.goto(f"{url}/#/rollout/default/shop")
        page.wait_for_selector("#weight-chart polyline.actual")
        assert "since the release started" in str(page.text_content("#weight-chart .legend"))
        ys = page.evaluate("""() => document.querySelector('#weight-chart polyline.actual').getAttribute('points')
            .split(' ').map((p) => Number(p.split(',')[1]))""")
        levels = sorted(set(ys), reverse=True)  # SVG y grows downwards: 0 % is the largest
        assert len(levels) == 3, ys  # 0, 10 and 30 %
        assert ys[0] == levels[0] and ys[-1] == levels[-1]  # starts at 0 %, ends at the current 30 %
        xs = page.evaluate("""() => document.querySelector('#weight-chart polyline.actual').getAttribute('points')
            .split(' ').map((p) => Number(p.split(',')[0]))""")
        assert xs[0] < 40 and xs[-1] > 380  # from the chart's left edge (the start) to its right edge (now)

        # The gate's chart has both threshold lines of its compound conditions.
        page.wait_for_selector("section.run .threshold.success", state="attached")
        assert page.locator("section.run .threshold.failure").count() == 1
        assert "result[0] >= 0.95" in str(page.text_content("section.run .threshold-label.success"))

        # Actions that cannot apply are disabled, the reason on hover; the others are enabled.
        retry = page.locator("#actions button[data-action='retry']")
        assert retry.is_disabled()
        assert retry.get_attribute("title") == "retry applies only to an aborted rollout"
        assert page.locator("#actions button[data-action='abort']").is_enabled()
        live_undo = page.locator("#revisions button[data-undo='2']")
        assert live_undo.is_disabled() and "already the rollout's pod template" in str(live_undo.get_attribute("title"))
        assert page.locator("#revisions button[data-undo='1']").is_enabled()

        # ReplicaSets per revision with pods as status dots, images and ready counts.
        canary = page.locator("#replicasets [data-replicaset='shop-bbb222']")
        assert canary.locator(".pod-dot").count() == 2
        assert canary.locator(".pod-dot.CrashLoopBackOff").count() == 1
        assert canary.locator(".pod-dot.ready").count() == 1
        assert canary.locator(".rs-ready").get_attribute("data-ready") == "1/2"
        assert "rollouts-demo:yellow" in str(canary.locator(".rs-images").text_content())
        assert "canary" in str(canary.locator(".tag").all_text_contents())
        stable = page.locator("#replicasets [data-replicaset='shop-aaa111']")
        assert stable.locator(".pod-dot.ready").count() == 2 and stable.locator(".tag.stable").count() == 1
        title = canary.locator(".pod-dot.CrashLoopBackOff").get_attribute("title")
        assert title == "shop-bbb222-y2: CrashLoopBackOff, ready 0/1, 3 restarts, age " + title.rsplit(" ", 1)[-1]

        # With the token, a state change re-renders the buttons (abort done: retry enabled, abort disabled).
        page.fill("#token", TOKEN)
        page.click("#token-save")
        assert confirm(page, "#actions button[data-action='abort']") == "rollout 'shop' aborted"
        page.wait_for_function("() => !document.querySelector(\"#actions button[data-action='retry']\").disabled")
        assert page.locator("#actions button[data-action='abort']").get_attribute("title") == \
            "the rollout is already aborted"
        context.close()
    assert errors == []


def test_dashboard_says_why_live_updates_are_refused(browser: Any, tmp_path: Path) -> None:
    """20.7: past the stream cap the page shows the server's reason instead of silently retrying."""
    db = tmp_path / "state.db"
    _seed_for_page(db)
    with live_server(db, max_streams_per_client=0) as url:
        context = browser.new_context()
        page = context.new_page()
        open_with_token(page, url, "#/ns/default")
        page.wait_for_function("() => !document.querySelector('#result').hidden")
        assert "too many open event streams" in str(page.text_content("#result"))
        assert page.text_content("#live") == "stream refused (429)"
        context.close()


def test_dashboard_token_from_url_fragment_never_sent(browser: Any, tmp_path: Path) -> None:
    """Without a token the page shows no data (every /api call is refused); opened with #token=... it keeps
    the token in sessionStorage, drops it from the address bar, and sends it only in Authorization headers:
    no request URL, Referer or cookie ever carries it."""
    db = tmp_path / "state.db"
    _seed_for_page(db)
    with live_server(db) as url:
        context = browser.new_context()
        page = context.new_page()
        requests: list[Any] = []
        page.on("request", lambda request: requests.append(request))
        page.goto(f"{url}/#/ns/default")
        page.wait_for_function("() => !document.querySelector('#result').hidden")
        assert "refused (401)" in str(page.text_content("#result"))
        assert page.locator("#rollouts tbody tr[data-rollout]").count() == 0
        assert page.text_content("#live") == "stream refused (401)"
        assert "no token" in str(page.text_content("#token-state"))

        page.goto(f"{url}/#token={TOKEN}")
        page.wait_for_selector("tr[data-rollout='default/shop']")
        assert page.evaluate("() => location.href") == f"{url}/"
        assert page.evaluate("() => sessionStorage.getItem('rollouts.dashboard.token')") == TOKEN
        page.reload()  # the token survives a reload of the tab (sessionStorage), not in the URL
        page.wait_for_selector("tr[data-rollout='default/shop']")
        assert context.cookies() == []
        api = [r for r in requests if "/api/" in r.url]
        assert api and all(TOKEN not in r.url for r in requests)
        assert all(TOKEN not in (r.headers.get("referer") or "") for r in requests)
        authorized = [r for r in api if r.headers.get("authorization") == f"Bearer {TOKEN}"]
        assert len(authorized) >= 2  # after the fragment: the namespaces and the list's stream at least
        context.close()
