"""The dashboard over HTTP (aiohttp's test server in this process, a real database): pages, filters and
their errors, paging, actions and their guards (token, CSRF, origin, a reader login), bulk actions, live
events and a database outage. The browser tests (tests/browser) drive the same pages in Chromium."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from wf import runlist
from wf.dashboard.app import STATE
from wfsql import chain, claim, define, enqueue, fail, run_status

TOKEN = "test-token-0123456789abcdef"  # tests/dashboard/conftest.py starts the dashboard with it


async def sign_in(client: TestClient, token: str = TOKEN) -> None:
    response = await client.post("/login", data={"token": token, "next": "/runs"}, allow_redirects=False)
    assert response.status == 303, await response.text()


async def csrf_of(client: TestClient, path: str) -> str:
    html = await (await client.get(path)).text()
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, f"no csrf field on {path}"
    return match.group(1)


def _run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([0-9a-f-]{36})"', html)


async def _get(client, path: str, status: int = 200) -> str:
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_runs_page_lists_runs_newest_first(conn, dashboard):
    define(conn, chain("two", 2))
    first, second = enqueue(conn, "two"), enqueue(conn, "two")
    html = await _get(await dashboard(), "/runs")
    assert _run_ids(html) == [second, first]


async def test_runs_pages_follow_the_next_link_without_repeats_or_gaps(conn, dashboard):
    define(conn, chain("one", 1))
    conn.execute("select wf.enqueue('one', '{}'::jsonb) from generate_series(1, 120)")
    client = await dashboard()
    seen, path, pages = [], "/runs", 0
    while path:
        html = await _get(client, path)
        seen += _run_ids(html)
        pages += 1
        match = re.search(r'<a rel="next" href="([^"]+)"', html)
        path = match.group(1).replace("&amp;", "&") if match else ""
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120


async def test_runs_filter_by_status_workflow_and_correlation_id(conn, dashboard):
    define(conn, chain("a", 1))
    define(conn, chain("b", 1))
    in_a = enqueue(conn, "a", correlation_id="order-7")
    in_b = enqueue(conn, "b")
    cancelled = enqueue(conn, "b")
    conn.execute("select wf.cancel(%s, 'test')", (cancelled,))
    client = await dashboard()
    assert _run_ids(await _get(client, "/runs?workflow=a")) == [in_a]
    assert _run_ids(await _get(client, "/runs?status=cancelled")) == [cancelled]
    assert _run_ids(await _get(client, "/runs?correlation_id=order-7")) == [in_a]
    assert _run_ids(await _get(client, "/runs?workflow=b&status=pending")) == [in_b]


async def test_runs_filter_by_time_range(conn, dashboard):
    define(conn, chain("one", 1))
    old, new = enqueue(conn, "one"), enqueue(conn, "one")
    conn.execute("update wf.runs set created_at = '2026-01-01T12:00:00Z' where id = %s", (old,))
    client = await dashboard()
    assert _run_ids(await _get(client, "/runs?from=2026-01-01&to=2026-01-02")) == [old]
    assert new in _run_ids(await _get(client, "/runs?from=2026-06-01"))


async def test_search_finds_a_text_in_the_input(conn, dashboard):
    define(conn, chain("one", 1))
    hit = enqueue(conn, "one", {"email": "Ada@Example.com"})
    enqueue(conn, "one", {"email": "bob@example.com"})
    client = await dashboard()
    assert _run_ids(await _get(client, "/runs?q=ada@example")) == [hit]
    assert _run_ids(await _get(client, "/runs?q=ADA@EXAMPLE")) == [hit]  # either case
    assert _run_ids(await _get(client, "/runs?q=50%25_off")) == []  # % and _ are text, not patterns
    assert _run_ids(await _get(client, "/runs?q=b_b")) == []


async def test_a_huge_search_is_cut_not_an_error(conn, dashboard):
    define(conn, chain("one", 1))
    enqueue(conn, "one", {"note": "x" * 300})
    html = await _get(await dashboard(), "/runs?q=" + "x" * 100_000)
    assert f"cut to its first {runlist.SEARCH_MAX_CHARS} characters" in html
    assert len(_run_ids(html)) == 1


async def test_search_stops_at_its_window_and_offers_to_continue(conn, dashboard, monkeypatch):
    define(conn, chain("one", 1))
    older = enqueue(conn, "one", {"needle": True})
    conn.execute("select wf.enqueue('one', '{}'::jsonb) from generate_series(1, 30)")
    monkeypatch.setattr(runlist, "SEARCH_WINDOW", 10)
    client = await dashboard()
    path, found, pages = "/runs?q=needle", [], 0
    while path and not found:
        html = await _get(client, path)
        found = _run_ids(html)
        pages += 1
        if not found:
            assert "read the newest 10 runs" in html
        match = re.search(r'<a rel="next" href="([^"]+)"', html)
        path = match.group(1).replace("&amp;", "&") if match else ""
    assert found == [older]
    assert pages == 4


@pytest.mark.parametrize(("query", "field"), [
    ("status=bogus", "status"),
    ("from=yesterday", "from"),
    ("to=2026-13-40", "to"),
    ("from=2026-02-01&to=2026-01-01", "to"),
    ("before=garbage", "before"),
    ("workflow=" + "w" * 300, "workflow"),
    ("limit=abc", "limit"),
])
async def test_a_malformed_filter_is_a_400_naming_the_field(conn, dashboard, query, field):
    html = await _get(await dashboard(), f"/runs?{query}", 400)
    assert re.search(rf'<p class="error-message">{field}: ', html), html


async def test_counts_per_status_cover_the_filter_but_not_the_status(conn, dashboard, monkeypatch):
    define(conn, chain("one", 1))
    for _ in range(3):
        enqueue(conn, "one")
    conn.execute("select wf.cancel(%s, 'x')", (enqueue(conn, "one"),))
    monkeypatch.setattr(runlist, "COUNT_CAP", 2)
    html = await _get(await dashboard(), "/runs?status=cancelled")
    counts = dict(re.findall(r'data-status="(\w+)"[^>]*>\w+ <b>([^<]+)</b>', html))
    assert counts["pending"] == "2+"
    assert counts["cancelled"] == "1"
    assert counts["failed"] == "0"


async def test_an_unknown_run_is_a_404_page(conn, dashboard):
    client = await dashboard()
    assert "no run" in await _get(client, f"/runs/{uuid.uuid4()}", 404)
    assert "no run" in await _get(client, "/runs/not-a-uuid", 404)


async def test_run_page_shows_steps_graph_and_input_escaped(conn, dashboard):
    define(conn, chain("three", 3))
    run_id = enqueue(conn, "three", {"name": "<script>alert(1)</script>"})
    html = await _get(await dashboard(), f"/runs/{run_id}")
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    graph = json.loads(re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', html,
                                 re.S).group(1))
    assert [(e["from"], e["to"]) for e in graph["edges"]] == [("s1", "s2"), ("s2", "s3")]
    assert [n["status"] for n in graph["nodes"]] == ["queued", "waiting", "waiting"]
    assert re.findall(r'<tr id="step-(s\d)"', html) == ["s1", "s2", "s3"]


async def test_every_page_has_server_timing_and_a_strict_content_security_policy(conn, dashboard):
    client = await dashboard()
    for path in ("/runs", "/stages", "/dead-letters", "/workflows"):
        response = await client.get(path)
        assert response.status == 200, path
        assert re.fullmatch(r"db;dur=[\d.]+, render;dur=[\d.]+", response.headers["Server-Timing"])
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


async def test_stages_page_shows_paused_state_and_limits(conn, dashboard):
    define(conn, chain("one", 1))
    conn.execute("select wf.pause_stage('echo'); select wf.configure_stage('echo', 3, null, null)")
    html = await _get(await dashboard(), "/stages")
    row = re.search(r'<tr data-stage="echo">(.*?)</tr>', html, re.S).group(1)
    assert "paused" in row and "<td>3</td>" in row


async def test_workflow_page_diffs_two_versions_side_by_side(conn, dashboard):
    define(conn, chain("w", 2))
    define(conn, chain("w", 3))
    client = await dashboard()
    html = await _get(client, "/workflows/w?a=1&b=2")
    assert "+ step s3" in html
    assert 'class="d-insert"' in html or 'class="d-replace"' in html
    assert "a: workflow w has no version 9" in await _get(client, "/workflows/w?a=9", 400)
    assert "no workflow" in await _get(client, "/workflows/nope", 404)


async def test_dead_letters_page_lists_dead_steps(conn, dashboard):
    define(conn, chain("one", 1, max_retries=0))
    run_id = enqueue(conn, "one")
    [task] = claim(conn, "echo")
    fail(conn, task, "it broke")
    html = await _get(await dashboard(), "/dead-letters")
    assert _run_ids(html) == [run_id]
    assert "it broke" in html


# ---- actions --------------------------------------------------------------------------------------


async def test_read_only_dashboard_shows_no_actions_and_refuses_posts(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard(token=None)
    html = await _get(client, f"/runs/{run_id}")
    assert 'name="do"' not in html and "read-only" in html
    response = await client.post(f"/runs/{run_id}/cancel", data={"csrf": "x"})
    assert response.status == 403
    assert "read-only" in await response.text()
    assert run_status(conn, run_id) == "pending"


async def test_signed_in_cancel_with_the_csrf_token_cancels(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    await sign_in(client)
    csrf = await csrf_of(client, f"/runs/{run_id}")
    response = await client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf})
    assert response.status == 200  # followed the redirect back to the run
    assert "cancelled: the run is cancelled" in await response.text()
    assert run_status(conn, run_id) == "cancelled"


async def test_an_action_without_the_csrf_token_is_refused(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    await sign_in(client)
    for data in ({}, {"csrf": "0" * 64}):
        response = await client.post(f"/runs/{run_id}/cancel", data=data)
        assert response.status == 403
        assert "CSRF" in await response.text()
    assert run_status(conn, run_id) == "pending"


async def test_an_action_from_another_origin_is_refused(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    await sign_in(client)
    csrf = await csrf_of(client, f"/runs/{run_id}")
    response = await client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf},
                                 headers={"Origin": "https://evil.example"})
    assert response.status == 403
    assert run_status(conn, run_id) == "pending"


async def test_a_wrong_token_does_not_sign_in(conn, dashboard):
    client = await dashboard()
    response = await client.post("/login", data={"token": "x" * 30}, allow_redirects=False)
    assert response.status == 403
    assert "wf_session" not in response.cookies
    assert 'name="do"' not in await _get(client, "/runs")


async def test_a_reader_login_is_read_only_even_signed_in(conn, dashboard, login_as):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard(dsn=login_as("wf_reader"))
    await sign_in(client)
    html = await _get(client, f"/runs/{run_id}")
    assert 'name="do"' not in html and "read-only login" in html
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)  # the sign-out form's
    response = await client.post(f"/runs/{run_id}/cancel", data={"csrf": csrf})
    assert response.status == 403
    assert "wf_reader" in await response.text()
    assert run_status(conn, run_id) == "pending"


async def test_a_refused_action_shows_why(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    await sign_in(client)
    csrf = await csrf_of(client, f"/runs/{run_id}")
    html = await (await client.post(f"/runs/{run_id}/retry", data={"csrf": csrf})).text()
    assert "not retried: the run is pending" in html


async def test_a_signal_with_a_payload_that_is_not_json_is_a_400(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    await sign_in(client)
    csrf = await csrf_of(client, f"/runs/{run_id}")
    response = await client.post(f"/runs/{run_id}/signal", data={"csrf": csrf, "name": "go", "payload": "{nope"})
    assert response.status == 400
    assert "payload: not JSON" in await response.text()


async def test_bulk_cancel_confirms_the_count_then_cancels_what_the_filter_selects(conn, dashboard):
    define(conn, chain("a", 1))
    define(conn, chain("b", 1))
    targets = [enqueue(conn, "a") for _ in range(3)]
    other = enqueue(conn, "b")
    client = await dashboard()
    await sign_in(client)
    confirm = await _get(client, "/runs/bulk?action=cancel&status=pending&workflow=a")
    assert "Cancel 3 runs?" in confirm
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', confirm).group(1)
    form = {"csrf": csrf, "action": "cancel", "expected": "3", "status": "pending", "workflow": "a"}
    html = await (await client.post("/runs/bulk", data=form)).text()
    assert "cancelled 3 of 3 runs" in html
    assert {run_status(conn, r) for r in targets} == {"cancelled"}
    assert run_status(conn, other) == "pending"


async def test_bulk_action_reconfirms_when_the_selection_changed(conn, dashboard):
    define(conn, chain("a", 1))
    enqueue(conn, "a")
    client = await dashboard()
    await sign_in(client)
    confirm = await _get(client, "/runs/bulk?action=cancel&status=pending")
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', confirm).group(1)
    enqueue(conn, "a")
    html = await (await client.post("/runs/bulk", data={"csrf": csrf, "action": "cancel", "expected": "1",
                                                         "status": "pending"})).text()
    assert "The selection changed" in html and "Cancel 2 runs?" in html
    assert conn.execute("select count(*) as n from wf.runs where status = 'pending'").fetchone()["n"] == 2


async def test_bulk_retry_needs_a_failed_status_filter(conn, dashboard):
    client = await dashboard()
    await sign_in(client)
    html = await _get(client, "/runs/bulk?action=retry&status=pending", 400)
    assert "status: bulk retry takes failed" in html


# ---- live and outages -----------------------------------------------------------------------------


async def _next_event(stream, wanted: str, data: str | None = None, timeout: float = 3.0) -> str:
    """The data of the next event named `wanted` (with this data, when given)."""

    async def read() -> str:
        event = None
        while True:
            line = (await stream.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == wanted and data in (None, line[6:]):
                return line[6:]

    return await asyncio.wait_for(read(), timeout)


async def test_live_events_tell_a_run_page_when_its_run_changes_and_not_for_other_runs(conn, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    other = enqueue(conn, "one")
    client = await dashboard()
    async with client.get(f"/live?run={run_id}") as stream:
        await _next_event(stream, "status", "up")  # the hub's LISTEN connection is open
        with contextlib.suppress(TimeoutError):  # the catch-ups a page gets on subscribing and on (re)connecting
            while True:
                await _next_event(stream, "change", timeout=0.5)
        conn.execute("select wf.cancel(%s, 'other')", (other,))
        with pytest.raises(TimeoutError):
            await _next_event(stream, "change", timeout=0.8)
        conn.execute("select wf.cancel(%s, 'x')", (run_id,))
        assert await _next_event(stream, "change", timeout=1.5) == run_id


class _Proxy:
    """A TCP proxy to PostgreSQL that the test cuts (every connection dropped, new ones refused) and mends."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()


async def test_a_database_outage_shows_a_banner_and_the_dashboard_recovers_without_a_restart(conn, db, dashboard):
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    info = psycopg.conninfo.conninfo_to_dict(db)
    proxy = _Proxy(info["host"], int(info["port"]))
    await proxy.start()
    client = await dashboard(dsn=db.replace(f":{info['port']}/", f":{proxy.port}/"))
    assert run_id in await _get(client, "/runs")
    await proxy.cut()
    html = await _get(client, "/runs", 503)
    assert "Database unreachable" in html and 'id="db-banner" class="banner" >' in html
    await proxy.start()  # the same port again
    assert run_id in await _get(client, "/runs")
    await proxy.cut()


async def test_bug_the_sign_in_page_was_a_500(conn, dashboard):
    """GET /login rendered its template without `wrong` (a StrictUndefined): aiohttp's bare 500."""
    html = await _get(await dashboard(), "/login?next=/runs")
    assert 'name="token"' in html and 'name="next" value="/runs"' in html


async def test_sign_in_follows_only_a_path_on_this_site(conn, dashboard):
    client = await dashboard()
    for target, expected in (("/runs?status=failed", "/runs?status=failed"), ("//evil.example/x", "/runs"),
                             ("https://evil.example", "/runs")):
        response = await client.post("/login", data={"token": TOKEN, "next": target}, allow_redirects=False)
        assert response.headers["Location"] == expected


async def test_a_page_subscribing_after_a_change_it_missed_is_told_at_once_and_otherwise_not(conn, dashboard):
    """What changed between a page's render and its subscription is not lost (`since` is when it was
    rendered, in server time); a page rendered after the last change gets no needless refresh."""
    define(conn, chain("one", 1))
    run_id = enqueue(conn, "one")
    client = await dashboard()
    async with client.get("/live") as stream:  # the hub is listening
        await _next_event(stream, "status", "up")
    rendered = re.search(r'data-rendered="([\d.]+)"', await _get(client, f"/runs/{run_id}")).group(1)
    conn.execute("select wf.cancel(%s, 'x')", (run_id,))
    hub = client.server.app[STATE].live
    for _ in range(100):  # until the notification reaches the hub
        if hub.changed_since(run_id, float(rendered)):
            break
        await asyncio.sleep(0.02)
    async with client.get(f"/live?run={run_id}&since={rendered}") as stream:
        assert await _next_event(stream, "change", timeout=1.0) == run_id
    later = re.search(r'data-rendered="([\d.]+)"', await _get(client, f"/runs/{run_id}")).group(1)
    async with client.get(f"/live?run={run_id}&since={later}") as stream:
        await _next_event(stream, "status")
        with pytest.raises(TimeoutError):
            await _next_event(stream, "change", timeout=0.8)


async def test_stopping_the_dashboard_ends_open_streams_at_once(conn, dashboard):
    client = await dashboard()
    async with client.get("/live") as stream:
        await _next_event(stream, "status")
        started = asyncio.get_running_loop().time()
        await client.server.runner.shutdown()
        assert await asyncio.wait_for(stream.content.read(), 2.0) is not None
        assert asyncio.get_running_loop().time() - started < 2.0


async def test_a_compensation_that_has_not_started_is_not_drawn(conn, dashboard):
    define(conn, {"name": "pay", "steps": [
        {"name": "charge", "function": "echo", "action": "charge",
         "compensate": {"function": "echo", "action": "refund"}}]})
    run_id = enqueue(conn, "pay")
    html = await _get(await dashboard(), f"/runs/{run_id}")
    graph = json.loads(re.search(r'<script type="application/json" id="graph-data">(.*?)</script>', html,
                                 re.S).group(1))
    assert [n["id"] for n in graph["nodes"]] == ["charge"]
    assert "charge:compensate" not in html
