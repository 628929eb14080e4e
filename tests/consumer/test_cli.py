"""The `wf` command line (README, Command line), run as users run it: `.venv/bin/wf` in a subprocess.
Exit 0 on success, 2 on bad input or usage (one line naming the problem, no traceback), 1 otherwise."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import uuid
from datetime import UTC, datetime

import pytest
from wf.catalog import load
from wfproc import REPO, TOKEN, WF
from wfsql import SEED_INPUT, chain, claim, define, enqueue, fail, run_status, seed_definition, step_statuses

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def wf(*args: str, dsn: str | None = None, env: dict[str, str] | None = None,
       timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    if dsn is not None:
        base["WF_DATABASE_URL"] = dsn
    return subprocess.run([str(WF), *args], cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def bad_input(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit 2 with one line on stderr that names the problem, and no traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def seed(conn) -> int:
    return define(conn, seed_definition())


@pytest.fixture
def unreachable() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/nowhere"


# ---- help and options ------------------------------------------------------------------------------------

COMMANDS = ["install", "define", "enqueue", "status", "stages", "dlq", "retry", "cancel", "signal", "pause", "resume",
            "stage pause", "stage resume", "stage configure", "runs", "workflows", "diff", "gen-types", "worker"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_the_environment_variable_of_every_option(command):
    text = ok(wf(*command.split(), "--help"))
    assert "WF_DATABASE_URL" in text and "DATABASE_URL" in text
    options = re.findall(r"^\s+(--[a-z-]+)", text, re.M)
    assert options
    for option in set(options) - {"--help"}:
        block = " ".join(text.split(option, 1)[1].split("\n  -", 1)[0].split())  # help wraps lines
        assert "env var: WF_" in block, f"{command} {option} has no WF_* variable:\n{text}"


def test_every_command_is_listed():
    for command in COMMANDS:
        *group, name = command.split()
        assert re.search(rf"^\s+{name}\s", ok(wf(*group, "--help")), re.M), command


def test_missing_dsn_is_a_usage_error():
    result = wf("status")
    assert result.returncode == 2
    assert "--dsn" in result.stderr and "Traceback" not in result.stderr


def test_dsn_falls_back_to_database_url(db):
    # a fresh install has only the internal stage (workflow, sql and wait_for steps)
    stages = json.loads(ok(wf("stages", "--json", env={"DATABASE_URL": db})))
    assert [s["stage"] for s in stages] == ["_wf"]


# ---- install -----------------------------------------------------------------------------------------------------


def test_install_then_again_is_idempotent(empty_db):
    first = ok(wf("install", "--no-cron", dsn=empty_db))
    assert "pgmq: bundled" in first or "pgmq: extension" in first
    sql = load()
    assert f"migrations applied: {', '.join(m.name for m in sql.migrations)}\n" in first
    assert f"functions and views applied: {len(sql.functions) + len(sql.views)}: functions/activate.sql" in first
    second = ok(wf("install", dsn=empty_db))
    assert second.splitlines()[:3] == ["pgmq: present", "migrations applied: none (up to date)",
                                       "functions and views applied: none (up to date)"]
    assert "wf.tick() job: absent" in second  # pg_cron serves another database on the test server


def test_install_dry_run_prints_what_it_would_do_and_changes_nothing(empty_db):
    out = ok(wf("install", "--no-cron", "--dry-run", dsn=empty_db)).splitlines()
    migrations = [f"would apply migration {m.name}" for m in load().migrations]
    assert out[:2 + len(migrations)] == ["would install pgmq (bundled)", *migrations,
                                         "would apply functions/activate.sql"]
    assert ok(wf("install", "--no-cron", dsn=empty_db)).startswith("pgmq: bundled")  # nothing was kept
    assert ok(wf("install", "--no-cron", "--dry-run", dsn=empty_db)) == "nothing to do: wf is up to date\n"


def test_install_warns_about_a_function_no_file_defines(db, conn):
    conn.execute("create function wf.old_helper() returns int language sql as $$ select 1 $$")
    result = wf("install", "--no-cron", dsn=db)
    assert result.returncode == 0
    assert "warning: wf.old_helper() is in schema wf but no file in sql/ defines it" in result.stderr


# ---- define -----------------------------------------------------------------------------------------------------


def test_define_prints_name_and_version(db, conn, tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed_definition()))
    assert ok(wf("define", str(path), dsn=db)) == "proposal-created → 1\n"
    assert ok(wf("define", str(path), dsn=db)) == "proposal-created → 1\n"  # identical: same version
    changed = {**seed_definition(), "description": "changed"}
    path.write_text(json.dumps(changed))
    assert ok(wf("define", str(path), dsn=db)) == "proposal-created → 2\n"


def test_define_a_folder_loads_every_json_file(db, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.json").write_text(json.dumps(chain("alpha")))
    (tmp_path / "sub" / "b.json").write_text(json.dumps(chain("beta")))
    (tmp_path / "notes.txt").write_text("not a definition")
    assert sorted(ok(wf("define", str(tmp_path), dsn=db)).splitlines()) == ["alpha → 1", "beta → 1"]


def test_define_the_shipped_templates(db, conn):
    conn.execute((REPO / "supabase/demo.sql").read_text())  # the demo's tables and its allowed sql step
    out = ok(wf("define", str(REPO / "templates"), dsn=db))
    assert "proposal-created → 1" in out and "proposal-status-change → 1" in out


def test_define_names_each_bad_file_and_its_problem_and_still_loads_the_others(db, conn, tmp_path):
    (tmp_path / "good.json").write_text(json.dumps(chain("good")))
    bad_template = chain("bad-template")
    bad_template["steps"][1]["payload_template"] = {"x": "{{ unclosed "}
    (tmp_path / "bad-template.json").write_text(json.dumps(bad_template))
    (tmp_path / "broken.json").write_text('{"name": ')
    (tmp_path / "unknown-key.json").write_text(json.dumps({**chain("unknown-key"), "colour": "red"}))
    (tmp_path / "list.json").write_text("[]")

    result = wf("define", str(tmp_path), dsn=db)
    assert result.returncode == 2
    assert result.stdout == "good → 1\n"
    assert "Traceback" not in result.stderr
    problems = dict(line.removeprefix("wf: ").split(": ", 1) for line in result.stderr.strip().splitlines())
    assert set(problems) == {str(tmp_path / n) for n in
                             ("bad-template.json", "broken.json", "unknown-key.json", "list.json")}
    assert "step s2: payload_template.x: template does not parse" in problems[str(tmp_path / "bad-template.json")]
    assert "not valid JSON" in problems[str(tmp_path / "broken.json")]
    assert 'unknown key "colour"' in problems[str(tmp_path / "unknown-key.json")]
    assert "must be a JSON object" in problems[str(tmp_path / "list.json")]
    names = [r["name"] for r in conn.execute("select name from wf.workflows").fetchall()]
    assert names == ["good"]


def test_define_a_missing_path_is_a_usage_error(db, tmp_path):
    result = wf("define", str(tmp_path / "nope.json"), dsn=db)
    assert result.returncode == 2
    assert "nope.json" in result.stderr and "Traceback" not in result.stderr


# ---- enqueue --------------------------------------------------------------------------------------------------------


def test_enqueue_prints_the_run_id(db, conn, seed):
    run_id = ok(wf("enqueue", "proposal-created", "--input", json.dumps(SEED_INPUT), dsn=db)).strip()
    assert UUID.match(run_id)
    row = conn.execute("select input, status from wf.runs where id = %s", (run_id,)).fetchone()
    assert (row["input"], row["status"]) == (SEED_INPUT, "pending")


def test_enqueue_priority(db, conn):
    define(conn, chain("two", n=2))
    run_id = ok(wf("enqueue", "two", "--priority", "5", dsn=db)).strip()
    assert conn.execute("select priority from wf.runs where id = %s", (run_id,)).fetchone()["priority"] == 5
    result = wf("enqueue", "two", "--priority", "101", dsn=db)
    assert result.returncode == 2 and "--priority" in result.stderr


def test_enqueue_input_from_a_file_key_and_correlation_id(db, conn, seed, tmp_path):
    path = tmp_path / "input.json"
    path.write_text(json.dumps(SEED_INPUT))
    args = ("enqueue", "proposal-created", "--input", f"@{path}", "--key", "k-1", "--correlation-id", "corr-9")
    first = ok(wf(*args, dsn=db)).strip()
    assert ok(wf(*args, dsn=db)).strip() == first  # same key, same input: the same run
    row = conn.execute("select idempotency_key, correlation_id from wf.runs where id = %s", (first,)).fetchone()
    assert (row["idempotency_key"], row["correlation_id"]) == ("k-1", "corr-9")
    other = json.dumps({**SEED_INPUT, "proposal_id": "p-2"})
    bad_input(wf("enqueue", "proposal-created", "--input", other, "--key", "k-1", dsn=db), "k-1",
              "different input")


NEXT_YEAR = datetime.now(UTC).year + 1


@pytest.mark.parametrize("at", [f"{NEXT_YEAR}-01-02T03:04:05Z", f"{NEXT_YEAR}-01-02T05:04:05+02:00",
                                f"{NEXT_YEAR}-01-02 03:04:05"])
def test_enqueue_at_schedules_the_run(db, conn, seed, at):
    run_id = ok(wf("enqueue", "proposal-created", "--input", json.dumps(SEED_INPUT), "--at", at, dsn=db)).strip()
    row = conn.execute("select status, run_at at time zone 'UTC' as run_at from wf.runs where id = %s",
                       (run_id,)).fetchone()
    assert row["status"] == "scheduled"
    assert row["run_at"].isoformat() == f"{NEXT_YEAR}-01-02T03:04:05"


def test_enqueue_unknown_workflow(db):
    bad_input(wf("enqueue", "no-such-workflow", dsn=db), "unknown workflow no-such-workflow")


def test_enqueue_missing_required_field(db, seed):
    partial = {k: v for k, v in SEED_INPUT.items() if k != "host_id"}
    bad_input(wf("enqueue", "proposal-created", "--input", json.dumps(partial), dsn=db),
              "proposal-created", "host_id")


@pytest.mark.parametrize(("value", "fragment"), [
    ("{not json", "--input is not valid JSON"),
    ("[1, 2]", "--input must be a JSON object"),
    ("42", "--input must be a JSON object"),
    ("@/nonexistent/input.json", "cannot read /nonexistent/input.json"),
])
def test_enqueue_bad_input(db, seed, value, fragment):
    bad_input(wf("enqueue", "proposal-created", "--input", value, dsn=db), fragment)


def test_enqueue_bad_time_is_a_usage_error(db, seed):
    result = wf("enqueue", "proposal-created", "--at", "tomorrow", dsn=db)
    assert result.returncode == 2
    assert "--at" in result.stderr and "Traceback" not in result.stderr


def test_enqueue_inactive_workflow(db, conn, seed):
    conn.execute("select wf.deactivate('proposal-created')")
    bad_input(wf("enqueue", "proposal-created", "--input", json.dumps(SEED_INPUT), dsn=db), "inactive")


# ---- status, stages, dlq -----------------------------------------------------------------------------------


def test_status_overview_table_and_json(db, conn, seed):
    runs = [enqueue(conn, "proposal-created", SEED_INPUT) for _ in range(2)]
    table = ok(wf("status", dsn=db))
    header = table.splitlines()[0].split()
    assert header[:5] == ["run_id", "workflow", "version", "status", "progress"]
    for run_id in runs:
        assert re.search(rf"^{run_id}\s+proposal-created\s+1\s+pending\s+0/2", table, re.M), table
    rows = json.loads(ok(wf("status", "--json", dsn=db)))
    assert {r["run_id"] for r in rows} == set(runs)
    assert {r["progress"] for r in rows} == {"0/2"}
    assert len(json.loads(ok(wf("status", "--json", "--limit", "1", dsn=db)))) == 1


def test_status_of_one_run_shows_its_steps_and_events(db, conn, seed):
    run_id = enqueue(conn, "proposal-created", SEED_INPUT)
    [task] = claim(conn, "messages")
    fail(conn, task, "HTTP 503: try later", http_status=503)
    text = ok(wf("status", run_id, dsn=db))
    assert text.splitlines()[0].split() == ["run", run_id, "proposal-created", "v1", "running", "0/2"]
    assert "last error (create_thread): HTTP 503: try later" in text
    assert re.search(r"^create_thread\s+1\s+retrying\b.*\b503\s+HTTP 503: try later", text, re.M), text
    for kind in ("run_created", "started", "retrying"):
        assert re.search(rf"\s{kind}\s", text), kind

    story = json.loads(ok(wf("status", run_id, "--json", dsn=db)))
    assert story["run"]["run_id"] == run_id and story["run"]["status"] == "running"
    assert [(a["step"], a["attempt"], a["status"], a["http_status"]) for a in story["attempts"]] == \
        [("create_thread", 1, "retrying", 503)]
    kinds = [e["kind"] for e in story["events"]]
    assert kinds[0] == "run_created" and kinds.index("started") < kinds.index("retrying")


def test_status_of_an_unknown_or_malformed_run(db):
    bad_input(wf("status", str(uuid.uuid4()), dsn=db), "unknown run")
    bad_input(wf("status", "not-a-uuid", dsn=db), "not a run id", "not-a-uuid")


def test_status_with_no_runs(db):
    assert ok(wf("status", dsn=db)).strip() == "(none)"
    assert json.loads(ok(wf("status", "--json", dsn=db))) == []


def test_stages(db, conn, seed):
    enqueue(conn, "proposal-created", SEED_INPUT)
    table = ok(wf("stages", dsn=db))
    assert re.search(r"^messages\s+wf_messages\s+1\b", table, re.M), table
    assert re.search(r"^send-email\s+wf_send_email\s+0\b", table, re.M), table
    rows = {r["stage"]: r for r in json.loads(ok(wf("stages", "--json", dsn=db)))}
    assert set(rows) == {"_wf", "messages", "send-email"}  # _wf: the internal stage
    assert (rows["messages"]["queue"], rows["messages"]["depth"]) == ("wf_messages", 1)


def test_dlq(db, conn):
    define(conn, chain("doomed", n=2, max_retries=0))
    assert ok(wf("dlq", dsn=db)).strip() == "(none)"
    run_id = enqueue(conn, "doomed")
    [task] = claim(conn, "echo")
    fail(conn, task, "HTTP 400: no", retryable=False, http_status=400)
    assert run_id in ok(wf("dlq", dsn=db))
    [row] = json.loads(ok(wf("dlq", "--json", dsn=db)))
    assert (row["run_id"], row["step"], row["http_status"], row["error"]) == (run_id, "s1", 400, "HTTP 400: no")


# ---- retry, cancel -----------------------------------------------------------------------------------------


def test_retry_a_failed_run(db, conn):
    define(conn, chain("doomed", n=2, max_retries=0))
    run_id = enqueue(conn, "doomed")
    [task] = claim(conn, "echo")
    fail(conn, task, "HTTP 400: no", retryable=False, http_status=400)
    assert run_status(conn, run_id) == "failed"
    assert ok(wf("retry", run_id, dsn=db)).strip() == f"run {run_id} resumed"
    assert run_status(conn, run_id) == "running"
    assert step_statuses(conn, run_id)["s1"] == "queued"


def test_retry_of_a_run_that_did_not_fail(db, conn, seed):
    run_id = enqueue(conn, "proposal-created", SEED_INPUT)
    bad_input(wf("retry", run_id, dsn=db), run_id, "pending", "not failed")
    bad_input(wf("retry", str(uuid.uuid4()), dsn=db), "unknown run")
    bad_input(wf("retry", "nope", dsn=db), "not a run id")


def test_cancel(db, conn, seed):
    run_id = enqueue(conn, "proposal-created", SEED_INPUT)
    assert ok(wf("cancel", run_id, "--reason", "changed my mind", dsn=db)).strip() == f"run {run_id} cancelled"
    assert run_status(conn, run_id) == "cancelled"
    assert conn.execute("select error from wf.runs where id = %s", (run_id,)).fetchone()["error"] == "changed my mind"
    bad_input(wf("cancel", run_id, dsn=db), "already cancelled")
    bad_input(wf("cancel", str(uuid.uuid4()), dsn=db), "unknown run")


def waiting_for_approval(conn) -> str:
    define(conn, {"name": "approval", "steps": [{"name": "approve", "wait_for": {"signal": "approved"}}]})
    run_id = enqueue(conn, "approval")
    assert claim(conn, "_wf") == []  # the wait starts inside the claim: nothing for a worker to do
    return run_id


def test_signal_completes_the_waiting_step_with_the_payload(db, conn):
    run_id = waiting_for_approval(conn)
    out = ok(wf("signal", run_id, "approved", "--payload", '{"by": "ana"}', dsn=db))
    assert out.strip() == f"signal approved sent to run {run_id}"
    assert run_status(conn, run_id) == "completed"
    output = conn.execute("select output from wf.steps where run_id = %s", (run_id,)).fetchone()["output"]
    assert output == {"by": "ana"}


def test_signal_to_a_finished_run_is_bad_input(db, conn):
    run_id = waiting_for_approval(conn)
    ok(wf("signal", run_id, "approved", dsn=db))
    bad_input(wf("signal", run_id, "approved", dsn=db), "already completed")


def test_signal_with_a_payload_that_is_not_json_is_bad_input(db, conn):
    run_id = waiting_for_approval(conn)
    bad_input(wf("signal", run_id, "approved", "--payload", "{nope", dsn=db), "--payload is not valid JSON")
    bad_input(wf("signal", run_id, "x" * 101, dsn=db), "signal name must be 1 to 100 characters")
    assert run_status(conn, run_id) == "running"


def test_status_of_a_run_shows_what_it_waits_for_and_its_output(db, conn):
    run_id = waiting_for_approval(conn)
    assert 'now: approve: waiting for signal "approved"' in ok(wf("status", run_id, dsn=db))
    ok(wf("signal", run_id, "approved", "--payload", '{"by": "ana"}', dsn=db))
    assert 'output: {"approve":{"by":"ana"}}' in ok(wf("status", run_id, dsn=db))


def test_pause_and_resume_a_run(db, conn):
    define(conn, chain("two", n=2))
    run_id = enqueue(conn, "two")
    assert ok(wf("pause", run_id, dsn=db)).strip() == f"run {run_id} paused"
    assert run_status(conn, run_id) == "paused"
    bad_input(wf("pause", run_id, dsn=db), "only a scheduled, pending or running run pauses")
    assert ok(wf("resume", run_id, dsn=db)).strip() == f"run {run_id} resumed (pending)"
    bad_input(wf("resume", run_id, dsn=db), "not paused")
    bad_input(wf("pause", str(uuid.uuid4()), dsn=db), "unknown run")


def test_stage_configure_sets_and_clears_the_limits(db, conn):
    define(conn, chain("two", n=2))
    out = ok(wf("stage", "configure", "echo", "--max-concurrency", "4", "--rate", "2.5", dsn=db)).strip()
    assert out == "stage echo: max_concurrency=4, rate_per_second=2.5, burst=3"
    assert ok(wf("stage", "configure", "echo", dsn=db)).strip() == "stage echo: no limits"
    bad_input(wf("stage", "configure", "echo", "--rate", "-1", dsn=db), "rate_per_second must be more than 0")
    bad_input(wf("stage", "configure", "nope", "--max-concurrency", "1", dsn=db), "unknown stage nope")


def test_stage_pause_and_resume(db, conn):
    define(conn, chain("two", n=2))
    assert ok(wf("stage", "pause", "echo", dsn=db)).strip() == "stage echo paused"
    assert {r["stage"]: r["paused"] for r in json.loads(ok(wf("stages", "--json", dsn=db)))}["echo"] is True
    assert ok(wf("stage", "pause", "echo", dsn=db)).strip() == "stage echo was paused already"
    assert ok(wf("stage", "resume", "echo", dsn=db)).strip() == "stage echo resumed"
    bad_input(wf("stage", "pause", "nope", dsn=db), "unknown stage nope")


# ---- worker ------------------------------------------------------------------------------------------------


def test_worker_once_drains_what_is_ready_and_exits(db, conn, gateway):
    define(conn, chain("three", n=3))
    runs = [enqueue(conn, "three") for _ in range(3)]
    env = {"WF_FUNCTIONS_URL": gateway.url, "WF_FUNCTIONS_TOKEN": TOKEN, "WF_SIGNING_SECRET": gateway.secret}
    result = wf("worker", "--once", dsn=db, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {run_status(conn, r) for r in runs} == {"completed"}  # each step's successor too
    events = [json.loads(line)["event"] for line in result.stdout.splitlines()]
    assert events.count("call") == 9
    assert events[-1] == "worker_stopped"


def test_worker_once_serves_only_the_stages_asked_for(db, conn, gateway):
    define(conn, chain("three", n=3))
    run_id = enqueue(conn, "three")
    env = {"WF_FUNCTIONS_URL": gateway.url, "WF_FUNCTIONS_TOKEN": TOKEN, "WF_SIGNING_SECRET": gateway.secret}
    ok(wf("worker", "--once", "--stages", "other", dsn=db, env=env))
    assert step_statuses(conn, run_id)["s1"] == "queued"


def test_worker_rejects_a_functions_url_that_is_not_http(db):
    bad_input(wf("worker", "--once", "--functions-url", "ftp://example.com", dsn=db), "--functions-url")


def test_worker_needs_a_functions_url(db):
    result = wf("worker", "--once", dsn=db)
    assert result.returncode == 2
    assert "--functions-url" in result.stderr and "Traceback" not in result.stderr


# ---- an unreachable database: exit 1 -----------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("install",),
    ("define", str(REPO / "templates")),
    ("enqueue", "proposal-created"),
    ("status",),
    ("status", "00000000-0000-0000-0000-000000000000"),
    ("stages",),
    ("dlq",),
    ("retry", "00000000-0000-0000-0000-000000000000"),
    ("cancel", "00000000-0000-0000-0000-000000000000"),
    ("worker", "--once", "--functions-url", "http://127.0.0.1:9/functions/v1"),
], ids=lambda a: a[0] if len(a) == 1 or a[0] not in ("status",) else "status-run")
def test_unreachable_database_exits_1(unreachable, args):
    result = wf(*args, dsn=unreachable)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wf: cannot reach the database"), result.stderr




# ---- runs, workflows, diff -----------------------------------------------------------------------------


def test_runs_filters_by_status_workflow_and_correlation_id(db, conn):
    define(conn, chain("two", n=2))
    define(conn, chain("one", n=1))
    a = enqueue(conn, "two", correlation_id="order-1")
    b = enqueue(conn, "one")
    conn.execute("select wf.cancel(%s)", (b,))
    listed = {r["run_id"]: r for r in json.loads(ok(wf("runs", "--json", dsn=db)))}
    assert set(listed) == {a, b}
    assert [r["run_id"] for r in json.loads(ok(wf("runs", "--json", "--status", "cancelled", dsn=db)))] == [b]
    assert [r["run_id"] for r in json.loads(ok(wf("runs", "--json", "--workflow", "two", dsn=db)))] == [a]
    assert [r["run_id"] for r in json.loads(ok(wf("runs", "--json", "--correlation-id", "order-1", dsn=db)))] == [a]
    assert json.loads(ok(wf("runs", "--json", "--since", "2999-01-01", dsn=db))) == []
    result = wf("runs", "--status", "nope", dsn=db)
    assert result.returncode == 2 and "--status" in result.stderr


def test_runs_searches_the_input_and_names_a_bad_time_option(db, conn):
    define(conn, chain("one", n=1))
    hit = enqueue(conn, "one", {"email": "ada@example.com"})
    enqueue(conn, "one", {"email": "bob@example.com"})
    assert [r["run_id"] for r in json.loads(ok(wf("runs", "--json", "--search", "ADA@", dsn=db)))] == [hit]
    result = wf("runs", "--until", "tomorrow", dsn=db)
    assert result.returncode == 2
    assert result.stderr.strip() == "wf: --until: not an ISO time (like 2026-12-01T10:00): 'tomorrow'"


def test_workflows_lists_current_versions_and_the_versions_of_one(db, conn):
    define(conn, chain("two", n=2))
    define(conn, chain("two", n=3))
    [row] = json.loads(ok(wf("workflows", "--json", dsn=db)))
    assert (row["workflow"], row["current_version"], row["versions"], row["steps"]) == ("two", 2, 2, 3)
    versions = json.loads(ok(wf("workflows", "two", "--json", dsn=db)))
    assert [(v["version"], v["current"]) for v in versions] == [(2, True), (1, False)]
    bad_input(wf("workflows", "nope", dsn=db), "unknown workflow nope")


def test_diff_names_what_changed_between_two_versions(db, conn):
    first = chain("two", n=2)
    define(conn, first)
    second = chain("two", n=3)
    second["max_retries"] = 5
    second["steps"][0]["payload_template"] = {"i": 10}
    define(conn, second)
    out = ok(wf("diff", "two", "1", "2", dsn=db)).splitlines()
    assert out[0] == "workflow two: version 1 → 2"
    assert "  max_retries: (added) 5" in out
    assert "  + step s3 (echo.go)" in out
    assert "  ~ step s1: payload_template.i: 1 → 10" in out
    assert ok(wf("diff", "two", "2", "2", dsn=db)).splitlines()[1] == "  no change"
    bad_input(wf("diff", "two", "1", "9", dsn=db), "workflow two has no version 9")
