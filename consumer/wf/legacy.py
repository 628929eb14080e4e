"""`wf import-legacy`: move the research prompt's orchestrator tables onto wf (README, Moving from
workflow_definitions / the orchestrator function).

- Every `workflow_definitions` row becomes a wf definition as it is (the seed format is wf's): `name`,
  `description`, `required_fields`, `max_retries`, `timeout_seconds`, `visibility_timeout` and `steps`,
  a null column left out (wf's default applies). Each row goes through wf.define in its own transaction,
  so a row wf refuses is named with the problem and the others are imported. wf keeps its own version
  numbers; the row's `version` is reported beside them. wf's active flag follows the row's `active`.
  Running it again changes nothing that did not change (an identical definition keeps its version).
- `workflow_executions` rows still `pending` or `running` are reported, each with a `select wf.enqueue(...)`
  whose idempotency key is the execution's `correlation_id` (the seed made it for idempotency), or
  `legacy-execution:<id>` when it has none: run twice, it starts one run. Nothing is enqueued here. A
  command that would fail as things are (its workflow not imported or inactive) is printed commented out,
  with the reason, so the script always runs through; fix it and import again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from wf import errors, queries
from wf.definitions import template_problems

# the definition keys a workflow_definitions row has, in the seed's order (steps last)
ROW_KEYS = ("name", "description", "required_fields", "max_retries", "timeout_seconds", "visibility_timeout", "steps")


class LegacyError(Exception):
    """The legacy tables cannot be read as the seed made them: one line naming what is missing."""


@dataclass(frozen=True)
class Imported:
    row_id: str
    workflow: str
    version: int  # wf's
    legacy_version: int | None
    active: bool


@dataclass(frozen=True)
class RowProblem:
    row_id: str
    name: str | None
    problem: str

    def __str__(self) -> str:
        return f"workflow_definitions row {self.row_id} ({self.name or 'no name'}): {self.problem}"


@dataclass(frozen=True)
class OpenExecution:
    id: str
    workflow: str
    status: str
    idempotency_key: str
    correlation_id: str | None
    command: str  # the statement that re-enqueues it in wf
    notes: tuple[str, ...] = ()
    runnable: bool = True  # false: the command would fail as things are (a note says why); printed commented out


@dataclass
class Report:
    schema: str
    imported: list[Imported] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    open_executions: list[OpenExecution] = field(default_factory=list)
    executions_table: bool = True

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": [vars(i) for i in self.imported],
            "problems": [{**vars(p), "message": str(p)} for p in self.problems],
            "open_executions": [{**vars(e), "notes": list(e.notes)} for e in self.open_executions],
        }

    def script(self) -> list[str]:
        """What `wf import-legacy` prints: a SQL script (psql -f) whose statements re-enqueue the open
        executions; everything else is a comment."""
        lines = [f"-- wf import-legacy from {self.schema}.workflow_definitions"]
        for i in self.imported:
            legacy = f", version {i.legacy_version} there" if i.legacy_version is not None else ""
            state = "" if i.active else ", inactive (as the row: wf.activate turns it on)"
            lines.append(f"-- {i.workflow} → {i.version} (row {i.row_id}{legacy}){state}")
        for p in self.problems:
            lines.append(f"-- not imported: {p}")
        if not self.executions_table:
            lines.append(f"-- no table {self.schema}.workflow_executions: no open executions to report")
            return lines
        if not self.open_executions:
            lines.append("-- no workflow_executions row is pending or running")
            return lines
        lines += [
            f"-- {len(self.open_executions)} workflow_executions row(s) still pending or running. Stop the",
            "-- orchestrator (its pg_cron job and the trigger on workflow_executions) first, then run this script:",
            "-- each statement starts one run, keyed by the correlation_id; running it again starts none.",
        ]
        for e in self.open_executions:
            lines.append(f"-- execution {e.id}: {e.workflow}, {e.status}, idempotency key {e.idempotency_key}")
            lines += [f"--   {note}" for note in e.notes]
            lines.append(e.command if e.runnable else f"-- {e.command}")
        return lines


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def definition_of(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A workflow_definitions row as a wf definition: its columns as they are, nulls left out."""
    return {key: row[key] for key in ROW_KEYS if row[key] is not None}


async def _define(conn: asyncpg.Connection, row: asyncpg.Record) -> Imported | RowProblem:
    name = row["name"]
    definition = definition_of(row)
    found = template_problems(definition)
    if found:
        return RowProblem(row["id"], name, "; ".join(found))
    try:
        async with conn.transaction():
            version = await conn.fetchval(queries.DEFINE, definition)
            await conn.fetchval(queries.LEGACY_ACTIVATE if row["active"] is not False else queries.LEGACY_DEACTIVATE,
                                name)
    except asyncpg.PostgresError as exc:
        if not errors.bad_input(exc.sqlstate):
            raise
        return RowProblem(row["id"], name, str(exc).splitlines()[0])
    return Imported(row["id"], name, version, row["version"], row["active"] is not False)


def _notes(row: asyncpg.Record, workflows: dict[str, asyncpg.Record], imported: dict[str, Imported],
           refused: set[str]) -> tuple[tuple[str, ...], bool]:
    """What to know before running the execution's command, and whether it can run as things are."""
    notes = []
    name = row["workflow_name"]
    wf_workflow = workflows.get(name)
    runnable = False
    if name in refused:
        notes.append(f"its workflow {name} was not imported (see above): fix that row and import again")
    elif wf_workflow is None:
        notes.append(f"wf has no workflow {name} (no workflow_definitions row): define it and import again")
    elif not wf_workflow["active"]:
        notes.append(f"workflow {name} is inactive: select wf.activate('{name}') first")
    else:
        runnable = True
    legacy = imported.get(name)
    if legacy is not None and legacy.legacy_version is not None and row["workflow_version"] != legacy.legacy_version:
        notes.append(f"it started on version {row['workflow_version']} of {name}; the row holds version "
                     f"{legacy.legacy_version}, which wf runs (as its version {legacy.version})")
    if row["status"] == "running":
        notes.append(f"the orchestrator was at step {row['current_step']} of {row['total_steps']}: the steps it "
                     "finished run again (their functions see new webhook-ids)")
    if len(row["idempotency_key"]) > 512:
        notes.append("its correlation_id is longer than the 512 characters of an idempotency key: enqueue it "
                     "with a shorter key by hand")
        runnable = False
    return tuple(notes), runnable


async def import_legacy(conn: asyncpg.Connection, schema: str = "public") -> Report:
    report = Report(schema)
    definitions_table = f"{quote_ident(schema)}.workflow_definitions"
    if not await conn.fetchval(queries.LEGACY_TABLE_EXISTS, definitions_table):
        raise LegacyError(f"no table {schema}.workflow_definitions here (--schema names the tables' schema)")
    for row in await conn.fetch(queries.LEGACY_DEFINITIONS.format(schema=quote_ident(schema))):
        outcome = await _define(conn, row)
        if isinstance(outcome, RowProblem):
            report.problems.append(outcome)
        else:
            report.imported.append(outcome)
    if not await conn.fetchval(queries.LEGACY_TABLE_EXISTS, f"{quote_ident(schema)}.workflow_executions"):
        report.executions_table = False
        return report
    rows = await conn.fetch(queries.LEGACY_OPEN_EXECUTIONS.format(schema=quote_ident(schema)))
    names = sorted({r["workflow_name"] for r in rows})
    workflows = {w["workflow"]: w for w in await conn.fetch(queries.LEGACY_WF_WORKFLOWS, names)}
    imported = {i.workflow: i for i in report.imported}
    refused = {p.name for p in report.problems if p.name}
    for row in rows:
        notes, runnable = _notes(row, workflows, imported, refused)
        report.open_executions.append(OpenExecution(
            row["id"], row["workflow_name"], row["status"], row["idempotency_key"], row["correlation_id"],
            row["command"], notes, runnable))
    return report
