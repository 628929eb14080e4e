"""`wf import-legacy` (README, Moving from workflow_definitions / the orchestrator function): the research
prompt's `workflow_definitions` and `workflow_executions`, created exactly as the seed writes them, with
sample rows; the definitions land in wf as they are, the open executions come back as a script that
re-enqueues each once under its correlation_id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from wfproc import REPO, WF
from wfsql import SEED_INPUT

# the research prompt (seeds/000), "Existing Queue Infrastructure", verbatim
SEED_TABLES = """
CREATE TABLE workflow_definitions (
  id UUID PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  description TEXT,
  steps JSONB NOT NULL,           -- Array of step definitions
  required_fields TEXT[],         -- Required input fields
  max_retries INTEGER DEFAULT 3,
  timeout_seconds INTEGER DEFAULT 120,
  visibility_timeout INTEGER DEFAULT 60,
  version INTEGER DEFAULT 1,
  active BOOLEAN DEFAULT TRUE,
  created_by TEXT,
  created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ
);

CREATE TABLE workflow_executions (
  id UUID PRIMARY KEY,
  workflow_name TEXT NOT NULL,
  workflow_version INTEGER NOT NULL,
  input_payload JSONB NOT NULL,
  status TEXT NOT NULL,           -- pending, running, completed, failed
  current_step INTEGER DEFAULT 0,
  total_steps INTEGER NOT NULL,
  context JSONB DEFAULT '{}',     -- Accumulated execution context
  error_message TEXT,
  error_step TEXT,
  retry_count INTEGER DEFAULT 0,
  correlation_id TEXT,
  triggered_by TEXT,
  started_at TIMESTAMPTZ,
  completed_at TIMESTAMPTZ,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
"""

# the research prompt's "Example Workflow Definition", verbatim
PROPOSAL_STEPS = [
    {"name": "create_thread", "function": "messages", "action": "create_proposal_thread",
     "payload_template": {"proposalId": "{{proposal_id}}", "guestId": "{{guest_id}}", "hostId": "{{host_id}}",
                          "listingId": "{{listing_id}}", "proposalStatus": "{{status}}"},
     "on_failure": "continue"},
    {"name": "notify_host", "function": "send-email", "action": "send",
     "payload_template": {"template_id": "new_proposal", "recipient_email": "{{host_email}}",
                          "variables": {"guest_name": "{{guest_name}}", "listing_name": "{{listing_name}}"}},
     "on_failure": "continue"},
]
PROPOSAL_CREATED = {
    "name": "proposal-created",
    "description": "Actions after proposal creation",
    "required_fields": ["proposal_id", "guest_id", "host_id", "listing_id"],
    "max_retries": 3,
    "timeout_seconds": 120,
    "visibility_timeout": 60,
    "steps": PROPOSAL_STEPS,
}
LISTING_STEPS = [{"name": "notify_host", "function": "send-email", "action": "send",
                  "payload_template": {"recipient_email": "{{host_email}}"}, "on_failure": "retry"}]
BROKEN_STEPS = [{"name": "a", "function": "Send Email!", "action": "send", "payload_template": {}},
                {"name": "a", "function": "slack", "action": "faq_inquiry", "payload_template": {}}]

PROPOSAL_ROW = str(uuid.UUID(int=1))
LISTING_ROW = str(uuid.UUID(int=2))
BROKEN_ROW = str(uuid.UUID(int=3))


def wf(*args: str, dsn: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    if dsn is not None:
        env["WF_DATABASE_URL"] = dsn
    return subprocess.run([str(WF), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


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


def add_definition(conn: psycopg.Connection, row_id: str, name: str, steps: list[dict[str, Any]],
                   **columns: Any) -> None:
    values = {"id": row_id, "name": name, "steps": Jsonb(steps), **columns}
    placeholders = ", ".join(["%s"] * len(values))
    columns_sql = ", ".join(values)
    conn.execute(f"insert into workflow_definitions ({columns_sql}) values ({placeholders})", list(values.values()))


def add_execution(conn: psycopg.Connection, workflow: str, status: str, correlation_id: str | None,
                  input_payload: dict[str, Any] | None = None, version: int | None = None,
                  current_step: int = 0) -> str:
    """An execution (by default on its definition row's version), created after the ones before it."""
    execution_id = str(uuid.uuid4())
    conn.execute(
        """insert into workflow_executions (id, workflow_name, workflow_version, input_payload, status, current_step,
                                            total_steps, correlation_id, triggered_by)
           values (%s, %s, coalesce(%s, (select d.version from workflow_definitions d where d.name = %s), 1),
                   %s, %s, %s, 2, %s, 'trigger')""",
        (execution_id, workflow, version, workflow, Jsonb(input_payload or SEED_INPUT), status, current_step,
         correlation_id))
    return execution_id


@pytest.fixture
def legacy(conn: psycopg.Connection) -> psycopg.Connection:
    """The seed's two tables with a definition as the prompt shows it (its third version), an inactive one
    whose optional columns are null (the tests add executions)."""
    conn.execute(SEED_TABLES)
    add_definition(conn, PROPOSAL_ROW, "proposal-created", PROPOSAL_STEPS,
                   description="Actions after proposal creation",
                   required_fields=["proposal_id", "guest_id", "host_id", "listing_id"], max_retries=3,
                   timeout_seconds=120, visibility_timeout=60, version=3, created_by="ops")
    add_definition(conn, LISTING_ROW, "listing-published", LISTING_STEPS, description=None, required_fields=None,
                   max_retries=None, active=False)
    return conn


def definition(conn: psycopg.Connection, workflow: str) -> dict[str, Any]:
    return conn.execute("select definition, version, active from wf.workflow_versions where workflow = %s and current",
                        (workflow,)).fetchone()


def runs(conn: psycopg.Connection) -> list[dict[str, Any]]:
    return conn.execute("select workflow, input, idempotency_key, correlation_id from wf.runs order by created_at"
                        ).fetchall()


# ---- definitions ---------------------------------------------------------------------------------------


def test_each_row_is_defined_in_wf_as_the_seed_wrote_it(db, legacy):
    out = ok(wf("import-legacy", dsn=db))
    assert f"-- proposal-created → 1 (row {PROPOSAL_ROW}, version 3 there)" in out.splitlines()
    stored = definition(legacy, "proposal-created")
    assert stored["definition"] == PROPOSAL_CREATED
    assert (stored["version"], stored["active"]) == (1, True)


def test_a_null_column_is_left_out_and_wf_applies_its_default(db, legacy):
    ok(wf("import-legacy", dsn=db))
    assert definition(legacy, "listing-published")["definition"] == {
        "name": "listing-published", "timeout_seconds": 120, "visibility_timeout": 60, "steps": LISTING_STEPS}


def test_an_inactive_row_is_imported_inactive(db, legacy):
    out = ok(wf("import-legacy", dsn=db))
    assert f"-- listing-published → 1 (row {LISTING_ROW}, version 1 there), inactive" in out
    assert definition(legacy, "listing-published")["active"] is False
    legacy.execute("update workflow_definitions set active = true where name = 'listing-published'")
    ok(wf("import-legacy", dsn=db))
    assert definition(legacy, "listing-published")["active"] is True  # wf's flag follows the row's


def test_importing_again_keeps_the_versions_and_a_changed_row_becomes_the_next_version(db, legacy):
    ok(wf("import-legacy", dsn=db))
    ok(wf("import-legacy", dsn=db))
    assert definition(legacy, "proposal-created")["version"] == 1
    legacy.execute("update workflow_definitions set max_retries = 5, version = 4 where name = 'proposal-created'")
    assert "-- proposal-created → 2 (row" in ok(wf("import-legacy", dsn=db))
    assert definition(legacy, "proposal-created")["definition"]["max_retries"] == 5


def test_a_row_with_invalid_steps_is_named_with_its_problem_and_the_others_are_imported(db, legacy):
    add_definition(legacy, BROKEN_ROW, "broken-flow", BROKEN_STEPS)
    result = wf("import-legacy", dsn=db)
    line = bad_input(result, f"workflow_definitions row {BROKEN_ROW} (broken-flow): ", "workflow broken-flow")
    assert re.search(r"step|function", line.split("(broken-flow): ", 1)[1]), line
    assert f"-- not imported: {line.removeprefix('wf: ')}" in result.stdout.splitlines()
    assert definition(legacy, "proposal-created") is not None and definition(legacy, "listing-published") is not None
    assert definition(legacy, "broken-flow") is None


def test_a_template_that_does_not_parse_names_the_row_the_step_and_the_field(db, legacy):
    add_definition(legacy, BROKEN_ROW, "broken-flow", [
        {"name": "a", "function": "slack", "action": "faq_inquiry", "payload_template": {"q": "{{ question "}}])
    bad_input(wf("import-legacy", dsn=db), f"workflow_definitions row {BROKEN_ROW} (broken-flow): "
              "step a: payload_template.q: template does not parse")


def test_without_the_seed_tables_the_import_names_the_missing_table(db):
    bad_input(wf("import-legacy", "--schema", "legacy", dsn=db), "no table legacy.workflow_definitions")


# ---- open executions -------------------------------------------------------------------------------------


def test_only_pending_and_running_executions_are_reported_each_with_its_command(db, legacy):
    pending = add_execution(legacy, "proposal-created", "pending", "proposal_created:p-1")
    running = add_execution(legacy, "proposal-created", "running", "proposal_created:p-2", version=2, current_step=1)
    add_execution(legacy, "proposal-created", "completed", "proposal_created:p-3")
    add_execution(legacy, "proposal-created", "failed", "proposal_created:p-4")
    report = json.loads(ok(wf("import-legacy", "--json", dsn=db)))
    assert [(e["id"], e["status"], e["idempotency_key"]) for e in report["open_executions"]] == [
        (pending, "pending", "proposal_created:p-1"), (running, "running", "proposal_created:p-2")]
    [first, second] = report["open_executions"]
    assert first["command"].startswith("select wf.enqueue('proposal-created', '{")
    assert first["command"].endswith(
        "::jsonb, idempotency_key => 'proposal_created:p-1', correlation_id => 'proposal_created:p-1');")
    assert first["notes"] == []
    assert any("version 2" in n for n in second["notes"]) and any("step 1 of 2" in n for n in second["notes"])


def test_the_printed_script_run_twice_starts_one_run_per_open_execution(db, legacy):
    add_execution(legacy, "proposal-created", "pending", "proposal_created:p-1", {**SEED_INPUT, "note": "it's"})
    add_execution(legacy, "proposal-created", "running", "proposal_created:p-2")
    add_execution(legacy, "proposal-created", "completed", "proposal_created:p-3")
    script = ok(wf("import-legacy", dsn=db))
    assert script.count("select wf.enqueue(") == 2
    legacy.execute(script)
    legacy.execute(script)
    started = runs(legacy)
    assert [(r["workflow"], r["correlation_id"], r["idempotency_key"]) for r in started] == [
        ("proposal-created", "proposal_created:p-1", "proposal_created:p-1"),
        ("proposal-created", "proposal_created:p-2", "proposal_created:p-2")]
    assert started[0]["input"] == {**SEED_INPUT, "note": "it's"}


def test_an_execution_without_a_correlation_id_is_keyed_by_its_id(db, legacy):
    execution = add_execution(legacy, "proposal-created", "pending", None)
    [reported] = json.loads(ok(wf("import-legacy", "--json", dsn=db)))["open_executions"]
    assert reported["idempotency_key"] == f"legacy-execution:{execution}"
    legacy.execute(reported["command"])
    legacy.execute(reported["command"])
    assert [(r["idempotency_key"], r["correlation_id"]) for r in runs(legacy)] == [(f"legacy-execution:{execution}",
                                                                                   None)]


def test_a_command_that_would_fail_is_commented_out_with_the_reason(db, legacy):
    add_definition(legacy, BROKEN_ROW, "broken-flow", BROKEN_STEPS)
    add_execution(legacy, "broken-flow", "pending", "broken:1")
    add_execution(legacy, "listing-published", "pending", "listing:1")
    result = wf("import-legacy", "--json", dsn=db)
    assert result.returncode == 2
    reported = {e["workflow"]: e for e in json.loads(result.stdout)["open_executions"]}
    assert reported["broken-flow"]["notes"] == [
        "its workflow broken-flow was not imported (see above): fix that row and import again"]
    assert reported["listing-published"]["notes"] == [
        "workflow listing-published is inactive: select wf.activate('listing-published') first"]
    assert not reported["broken-flow"]["runnable"] and not reported["listing-published"]["runnable"]
    script = wf("import-legacy", dsn=db).stdout
    assert f"-- {reported['broken-flow']['command']}" in script.splitlines()
    assert f"-- {reported['listing-published']['command']}" in script.splitlines()
    legacy.execute(script)  # runs through: the commands that would fail are comments
    assert runs(legacy) == []


def test_import_legacy_help_shows_the_environment_variable_of_every_option():
    text = ok(wf("import-legacy", "--help"))
    for option, variable in (("--dsn", "WF_DATABASE_URL"), ("--schema", "WF_LEGACY_SCHEMA"), ("--json", "WF_JSON")):
        block = " ".join(text.split(option, 1)[1].split("\n  -", 1)[0].split())
        assert f"env var: {variable}" in block, text
