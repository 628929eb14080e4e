"""The dashboard in a real headless Chromium (Debian's, driven by Playwright) against a real `wf dashboard`
process, and — where a run must execute — a real `wf worker` calling the real Deno functions.

Runs that only need a status (pending, cancelled, failed, completed) get it through wf's SQL API
(wf.claim / wf.fail / wf.complete / wf.cancel), so those tests need no worker. Live updates are made
deterministic by pausing the stage of a run's last step until the page has landed and its live
connection is open (wf.pause_stage / wf.resume_stage), then checking that the page changed by itself: a
marker set on `window` survives and the page was navigated to only once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from wfproc import wait_final, wait_until
from wfsql import claim, complete, define, enqueue, fail, run_status, step_row, step_statuses

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
Page = sync_api.Page
expect = sync_api.expect

REPO = Path(__file__).resolve().parents[2]
NO_WAIT = {"delays": [0]}
FAILED_FILL = "rgb(220, 38, 38)"  # wf.css --failed: #dc2626
SUCCEEDED_FILL = "rgb(22, 163, 74)"  # wf.css --succeeded: #16a34a
SCRIPT = "<script>alert(1)</script>"


# ---- helpers ---------------------------------------------------------------------------------------


def sign_in(page: Page, dashboard: Any, next_path: str = "/runs") -> None:
    """Through the login page's form with the dashboard's token, landing on next_path."""
    response = page.goto(f"{dashboard.url}/login?next={next_path}")
    assert response is not None and response.status == 200
    page.fill("input[name=token]", dashboard.token)
    with page.expect_navigation():
        page.click("form[action='/login'] button")
    assert page.url == f"{dashboard.url}{next_path}", page.url
    expect(page.locator("header .who button")).to_have_text("Sign out")


def wait_live(page: Page) -> None:
    """Until the page's server-sent events connection (/live) is open: the next change reaches it."""
    page.wait_for_function("() => (window.__wfSources || []).some((s) => s.readyState === 1)")


def mark(page: Page) -> None:
    """A marker on window: gone if the page is reloaded or navigated away."""
    page.evaluate("() => { window.__wfMarker = 'still the same document'; }")


def assert_not_reloaded(page: Page) -> None:
    state = page.evaluate("""() => ({marker: window.__wfMarker || null,
                                     navigations: performance.getEntriesByType('navigation').length,
                                     refreshed: document.body.dataset.refreshed || null})""")
    assert state["marker"] == "still the same document", state
    assert state["navigations"] == 1, state
    assert state["refreshed"], state  # wf.js set it after fetching the live part again


def shown_runs(page: Page) -> set[str]:
    return set(page.locator("tr[data-run]").evaluate_all("(rows) => rows.map((r) => r.dataset.run)"))


def failed_run(conn: psycopg.Connection, name: str = "ship-order") -> str:
    """A run failed for good (its one step dead) through wf's SQL API, no worker."""
    define(conn, {"name": name, "steps": [{"name": "ship", "function": "misbehave", "action": "bad_request",
                                           "max_retries": 0}]})
    run_id = enqueue(conn, name, {"order": "o-1"})
    [task] = claim(conn, "misbehave")
    assert fail(conn, task, "bad request: no such address", retryable=False, http_status=400)
    assert run_status(conn, run_id) == "failed"
    return run_id


def event_count(conn: psycopg.Connection, run_id: str) -> int:
    return conn.execute("select count(*) as n from wf.events where run_id = %s", (run_id,)).fetchone()["n"]


def pause_stage(conn: psycopg.Connection, stage: str) -> None:
    conn.execute("select wf.pause_stage(%s)", (stage,))


def resume_stage(conn: psycopg.Connection, stage: str) -> None:
    conn.execute("select wf.resume_stage(%s)", (stage,))


# ---- the run list ------------------------------------------------------------------------------------


def test_the_run_list_filters_by_status_workflow_correlation_id_and_a_search_in_the_input(db, conn, dashboard, page):
    define(conn, {"name": "orders", "steps": [{"name": "pack", "function": "echo", "action": "pack"}]})
    define(conn, {"name": "refunds", "steps": [{"name": "pay_back", "function": "misbehave", "action": "status"}]})
    order_tea = enqueue(conn, "orders", {"customer": "ada", "sku": "earl-grey"}, correlation_id="order-1")
    order_coffee = enqueue(conn, "orders", {"customer": "grace", "sku": "espresso"}, correlation_id="order-2")
    refund_mug = enqueue(conn, "refunds", {"customer": "ada", "reason": "broken mug"}, correlation_id="refund-1")
    refund_late = enqueue(conn, "refunds", {"customer": "linus", "reason": "late"}, correlation_id="refund-2")
    conn.execute("select wf.cancel(%s, 'changed my mind')", (order_coffee,))
    tasks = {t["run_id"]: t for t in claim(conn, "misbehave")}
    assert fail(conn, tasks[uuid.UUID(refund_mug)], "refused", retryable=False)
    assert complete(conn, tasks[uuid.UUID(refund_late)], {"paid": True})
    assert {r: run_status(conn, r) for r in (order_tea, order_coffee, refund_mug, refund_late)} == {
        order_tea: "pending", order_coffee: "cancelled", refund_mug: "failed", refund_late: "completed"}

    page.goto(f"{dashboard.url}/runs")
    assert shown_runs(page) == {order_tea, order_coffee, refund_mug, refund_late}
    for status, n in (("failed", "1"), ("completed", "1"), ("cancelled", "1"), ("pending", "1")):
        expect(page.locator(f'a.count[data-status="{status}"] b')).to_have_text(n)

    def filter_by(**fields: str) -> set[str]:
        """Fill the form on the page (every field: the ones not given emptied), submit, read the rows."""
        form = page.locator("form.filters")
        values = {name: fields.get(name, "") for name in ("status", "workflow", "correlation_id", "q")}
        form.locator("select[name=status]").select_option(values.pop("status"))
        for name, value in values.items():
            form.locator(f"input[name={name}]").fill(value)
        with page.expect_navigation():
            form.locator("button").click()
        for name, value in fields.items():  # the form shows the filter it applied
            expect(form.locator(f"[name={name}]")).to_have_value(value)
        return shown_runs(page)

    assert filter_by(status="failed") == {refund_mug}
    assert filter_by(status="pending") == {order_tea}
    assert filter_by(workflow="orders") == {order_tea, order_coffee}
    assert filter_by(correlation_id="refund-2") == {refund_late}
    assert filter_by(q="ada") == {order_tea, refund_mug}
    assert filter_by(q="broken mug") == {refund_mug}
    assert filter_by(workflow="refunds", q="ada") == {refund_mug}
    assert filter_by(status="completed", workflow="orders") == set()
    expect(page.locator("td.empty")).to_have_text("No run matches.")


# ---- a run's graph -----------------------------------------------------------------------------------


def test_a_runs_graph_shows_a_failed_step_in_the_failure_colour(db, conn, gateway, start_worker, dashboard, page):
    define(conn, {"name": "notify-guests", "backoff": NO_WAIT, "steps": [
        {"name": "load", "function": "echo", "action": "load"},
        {"name": "notify", "function": "misbehave", "action": "bad_request", "on_failure": "continue",
         "payload_template": {"reason": "no such guest"}, "depends_on": ["load"]},
        {"name": "report", "function": "echo", "action": "report", "depends_on": ["notify"]}]})
    run_id = enqueue(conn, "notify-guests", {})
    assert wait_final(conn, run_id, 20, start_worker(db)) == {run_id: "completed"}
    assert step_statuses(conn, run_id) == {"load": "succeeded", "notify": "failed", "report": "succeeded"}

    page.goto(f"{dashboard.url}/runs/{run_id}")
    failed = page.locator('svg#graph g.node[data-step="notify"]')
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_have_class("node st-failed")
    assert failed.locator("rect").evaluate("(r) => getComputedStyle(r).fill") == FAILED_FILL
    for name in ("load", "report"):
        node = page.locator(f'svg#graph g.node[data-step="{name}"]')
        assert node.locator("rect").evaluate("(r) => getComputedStyle(r).fill") == SUCCEEDED_FILL
    # the dependencies are the edges, and the failed attempt's bar in the timeline has the same colour
    edges = page.locator("svg#graph path.edge").evaluate_all("(es) => es.map((e) => [e.dataset.from, e.dataset.to])")
    assert sorted(edges) == [["load", "notify"], ["notify", "report"]]
    bar = page.locator('.gantt-row[data-step="notify"][data-attempt="1"] rect.bar')
    assert bar.evaluate("(r) => getComputedStyle(r).fill") == FAILED_FILL
    expect(page.locator("tr#step-notify .error-message")).to_contain_text("HTTP 400: bad request: no such guest")


# ---- actions -----------------------------------------------------------------------------------------


def test_retry_from_the_ui_completes_the_run(db, conn, gateway, start_worker, dashboard, page):
    """The charge fails once (flaky) and, allowed no retry, fails the run; Retry in the browser calls it
    again, it succeeds and the page shows `completed` by itself."""
    define(conn, {"name": "charge-card", "backoff": NO_WAIT, "steps": [
        {"name": "reserve", "function": "echo", "action": "reserve"},
        {"name": "charge", "function": "flaky", "action": "fail_first", "max_retries": 0,
         "payload_template": {"key": "{{ key }}", "failures": 1}},
        {"name": "receipt", "function": "echo", "action": "receipt"}]})
    run_id = enqueue(conn, "charge-card", {"key": uuid.uuid4().hex})
    worker = start_worker(db)
    assert wait_final(conn, run_id, 20, worker) == {run_id: "failed"}
    assert step_statuses(conn, run_id) == {"reserve": "succeeded", "charge": "dead", "receipt": "cancelled"}

    sign_in(page, dashboard, f"/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("failed")
    pause_stage(conn, "echo")  # the receipt waits until the page below is live
    with page.expect_navigation():
        page.click("button[name=do][value=retry]")
    assert page.url == f"{dashboard.url}/runs/{run_id}"
    expect(page.locator(".flash")).to_contain_text("retried")
    wait_live(page)
    mark(page)
    wait_until(lambda: step_row(conn, run_id, "charge")["status"] == "succeeded", 30, "the charge to succeed")
    resume_stage(conn, "echo")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=10_000)
    assert_not_reloaded(page)
    assert run_status(conn, run_id) == "completed"
    expect(page.locator('svg#graph g.node[data-step="charge"]')).to_have_attribute("data-status", "succeeded")


def test_a_signal_sent_from_the_ui_releases_the_waiting_step(db, conn, gateway, start_worker, dashboard, page):
    """templates/listing-approval.json waits for a moderator's `moderated` signal; sent from the run
    page's form, it publishes the listing and the run completes, the status badge changing by itself."""
    definition = json.loads((REPO / "templates/listing-approval.json").read_text())
    define(conn, definition)
    run_id = enqueue(conn, "listing-approval", {"listing_id": "l-7", "host_id": "h-7", "host_email": "h@example.com"})
    start_worker(db)
    wait_until(lambda: step_row(conn, run_id, "review")["status"] == "running", 30, "the review to wait")

    sign_in(page, dashboard, f"/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running")
    signal = page.locator("form.signal")
    expect(signal.locator("input[name=name]")).to_have_value("moderated")  # the waiting step's signal
    signal.locator("input[name=name]").fill("moderated")
    signal.locator("input[name=payload]").fill('{"approved": true, "by": "mod-3"}')
    pause_stage(conn, "send-email")  # the last step waits until the page below is live
    with page.expect_navigation():
        signal.locator("button[name=do][value=signal]").click()
    expect(page.locator(".flash")).to_contain_text("signal moderated sent")
    wait_live(page)
    mark(page)
    wait_until(lambda: step_row(conn, run_id, "publish")["status"] == "succeeded", 30, "the listing to be published")
    expect(page.locator("#run-status")).not_to_have_text("completed")
    resume_stage(conn, "send-email")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=10_000)
    assert_not_reloaded(page)
    assert step_row(conn, run_id, "review")["output"] == {"approved": True, "by": "mod-3"}
    assert step_statuses(conn, run_id) == {"review": "succeeded", "publish": "succeeded", "email_approved": "succeeded",
                                           "email_rejected": "skipped", "escalate": "skipped"}


# ---- what the pages show -----------------------------------------------------------------------------


def test_an_input_value_with_a_script_tag_shows_as_text(db, conn, dashboard, page, dialogs):
    define(conn, {"name": "guestbook", "steps": [{"name": "store", "function": "echo", "action": "store"}]})
    run_id = enqueue(conn, "guestbook", {"note": SCRIPT, "html": '<img src=x onerror="alert(2)">'},
                     correlation_id=SCRIPT)

    page.goto(f"{dashboard.url}/runs/{run_id}")
    shown = json.loads(page.locator("pre#run-input").inner_text())
    assert shown == {"note": SCRIPT, "html": '<img src=x onerror="alert(2)">'}
    assert page.locator("pre#run-input *").count() == 0  # text only, no element made from it
    expect(page.locator("dl.facts")).to_contain_text(f"Correlation id{SCRIPT}")

    page.goto(f"{dashboard.url}/runs")
    row = page.locator(f'tr[data-run="{run_id}"]')
    expect(row).to_contain_text(SCRIPT)  # the correlation id
    assert row.locator("script, img").count() == 0
    page.locator("form.filters input[name=q]").fill(SCRIPT)
    with page.expect_navigation():
        page.locator("form.filters button").click()
    assert shown_runs(page) == {run_id}  # `<script>` is in its input
    expect(page.locator("form.filters input[name=q]")).to_have_value(SCRIPT)
    assert page.locator("#live script, form.filters script").count() == 0
    page.wait_for_timeout(200)  # a dialog would have opened by now
    assert dialogs.seen == []


# ---- who may act ---------------------------------------------------------------------------------------


def test_the_read_only_mode_has_no_action_buttons_and_refuses_posts(db, conn, readonly_dashboard, page):
    run_id = failed_run(conn)
    define(conn, {"name": "open-one", "steps": [{"name": "wait", "wait_for": {"signal": "go"}}]})
    open_id = enqueue(conn, "open-one", {})
    before = {run_id: event_count(conn, run_id), open_id: event_count(conn, open_id)}

    page.goto(f"{readonly_dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("failed")
    expect(page.locator("header .who")).to_contain_text("read-only")
    assert page.locator("button[name=do]").count() == 0
    assert page.locator("form[method=post]").count() == 0
    page.goto(f"{readonly_dashboard.url}/runs/{open_id}")
    assert page.locator("button[name=do]").count() == 0
    page.goto(f"{readonly_dashboard.url}/runs?status=failed")
    expect(page.locator(f'tr[data-run="{run_id}"]')).to_have_count(1)
    assert page.locator("a[href^='/runs/bulk']").count() == 0

    answers = page.evaluate("""async (posts) => {
        const out = [];
        for (const [path, fields] of posts) {
          const response = await fetch(path, {method: "POST", body: new URLSearchParams(fields)});
          out.push([path, response.status, await response.text()]);
        }
        return out;
      }""", [[f"/runs/{run_id}/retry", {"csrf": "x"}], [f"/runs/{open_id}/cancel", {"csrf": "x"}],
             [f"/runs/{open_id}/signal", {"csrf": "x", "name": "go", "payload": "{}"}],
             ["/runs/bulk", {"csrf": "x", "action": "retry", "status": "failed", "expected": "1"}],
             ["/stages/echo/pause", {"csrf": "x"}], ["/login", {"token": "anything-at-all-here"}]])
    for path, status, body in answers:
        assert status == 403, (path, status)
        assert "read-only" in body, path
    assert run_status(conn, run_id) == "failed" and run_status(conn, open_id) == "pending"
    assert {r: event_count(conn, r) for r in before} == before


def test_the_login_page_signs_in(db, dashboard, page):
    response = page.goto(f"{dashboard.url}/login?next=/stages")
    assert response is not None and response.status == 200
    page.fill("input[name=token]", "not-the-token-at-all")
    with page.expect_navigation():
        page.click("form[action='/login'] button")
    expect(page.locator(".error-message")).to_have_text("That is not the token.")
    page.fill("input[name=token]", dashboard.token)
    with page.expect_navigation():
        page.click("form[action='/login'] button")
    assert page.url == f"{dashboard.url}/stages"
    expect(page.locator("header .who button")).to_have_text("Sign out")


def test_an_action_without_the_csrf_token_or_from_another_site_is_refused(db, conn, dashboard, page):
    run_id = failed_run(conn)
    events_before = event_count(conn, run_id)
    sign_in(page, dashboard, f"/runs/{run_id}")
    retry = page.locator(f"form[action='/runs/{run_id}/retry']")
    csrf = retry.locator("input[name=csrf]").input_value()
    assert len(csrf) >= 32

    # the form without its csrf field
    retry.locator("input[name=csrf]").evaluate("(input) => input.remove()")
    with page.expect_response(f"{dashboard.url}/runs/{run_id}/retry") as answered:
        retry.locator("button[name=do][value=retry]").click()
    assert answered.value.status == 403
    expect(page.locator("h1")).to_have_text("Refused")
    expect(page.locator("p.error-message")).to_contain_text("CSRF token is missing or wrong")
    assert run_status(conn, run_id) == "failed"

    # the form with another csrf value
    page.goto(f"{dashboard.url}/runs/{run_id}")
    page.locator(f"form[action='/runs/{run_id}/retry'] input[name=csrf]").evaluate(
        "(input) => { input.value = input.value.replace(/./g, '0'); }")
    with page.expect_response(f"{dashboard.url}/runs/{run_id}/retry") as answered:
        page.click("button[name=do][value=retry]")
    assert answered.value.status == 403
    expect(page.locator("p.error-message")).to_contain_text("CSRF token is missing or wrong")
    assert run_status(conn, run_id) == "failed"

    # the right csrf value and the session cookie, but another site's Origin
    response = page.context.request.post(f"{dashboard.url}/runs/{run_id}/retry", form={"csrf": csrf},
                                         headers={"Origin": "https://evil.example"}, max_redirects=0)
    assert response.status == 403
    assert "another site" in response.text()
    assert run_status(conn, run_id) == "failed"
    assert event_count(conn, run_id) == events_before

    # and the same form, untouched, is accepted: the refusals were the token's and the origin's
    page.goto(f"{dashboard.url}/runs/{run_id}")
    with page.expect_navigation():
        page.click("button[name=do][value=retry]")
    expect(page.locator(".flash")).to_contain_text("retried")
    assert run_status(conn, run_id) != "failed"


# ---- live ------------------------------------------------------------------------------------------------


def test_a_page_open_on_a_running_run_shows_its_end_without_a_reload(db, conn, gateway, start_worker, dashboard,
                                                                       page):
    """The run's second step waits in a paused stage while the page is opened and goes live; then the stage
    is resumed and the page follows the run to its end by itself."""
    define(conn, {"name": "two-calls", "steps": [
        {"name": "first", "function": "echo", "action": "first"},
        {"name": "second", "function": "noop", "action": "second", "payload_template": {"n": "{{ n }}"}}]})
    pause_stage(conn, "noop")
    run_id = enqueue(conn, "two-calls", {"n": 2})
    worker = start_worker(db)
    wait_until(lambda: step_row(conn, run_id, "first")["status"] == "succeeded", 30, "the first step")

    page.goto(f"{dashboard.url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running")
    expect(page.locator('svg#graph g.node[data-step="first"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator('svg#graph g.node[data-step="second"]')).to_have_attribute("data-status", "queued")
    wait_live(page)
    mark(page)
    resume_stage(conn, "noop")
    expect(page.locator("#run-status")).to_have_text("completed", timeout=10_000)
    assert_not_reloaded(page)
    assert wait_final(conn, run_id, 5, worker) == {run_id: "completed"}
    # the graph and the timeline were drawn again from the refreshed part
    expect(page.locator('svg#graph g.node[data-step="second"]')).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".gantt-row[data-step]")).to_have_count(2)
