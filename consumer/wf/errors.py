"""What a database error means to wf's clients: one table for the worker, the CLI and the HTTP API.

A SQLSTATE matches its own row, else the row of its class (its first two characters), else OTHER.

| SQLSTATE | meaning                                              | worker    | CLI exit | HTTP |
| -------- | ---------------------------------------------------- | --------- | -------- | ---- |
| 22023    | bad input (wf.raise_input_error and its peers)       | permanent | 2        | 400  |
| 22       | other data exceptions: a value PostgreSQL refuses    | permanent | 2        | 400  |
| 54000    | input larger than the max_input_bytes setting        | permanent | 2        | 400  |
| 55000    | an object in the wrong state (inactive workflow, …)  | permanent | 2        | 400  |
| P0002    | unknown workflow, run, step, stage or schedule       | permanent | 2        | 404  |
| 23       | integrity constraint violation: a bug or a race      | permanent | 1        | 500  |
| 42       | privileges, wf missing or older than this client     | permanent | 1        | 500  |
| 54       | other program limits                                 | permanent | 1        | 500  |
| P0       | other PL/pgSQL errors (a raise without errcode, …)   | permanent | 1        | 500  |
| other    | connection, deadlock, serialization, lock timeout, … | retry     | 1        | 500  |

The rule behind it: the caller's mistake (CLI exit 2, HTTP 4xx) is never worth retrying; a fault of
wf or of its set-up that retrying cannot fix is permanent too (exit 1, 500); anything else may go away
(the worker retries a report until the attempt's lease runs out). The SQLSTATEs wf raises itself are
the first five rows (README, SQL API). supabase/functions/workflows/sqlstates.ts holds the HTTP
column; tests/consumer/test_sqlstates.py keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2  # bad input or usage: one line naming the problem, no traceback
HTTP_FAULT = 500  # not the caller's mistake: the HTTP API logs it and answers "internal error"


@dataclass(frozen=True)
class SqlState:
    code: str  # a SQLSTATE ("22023") or a class of them, its first two characters ("22")
    meaning: str
    permanent: bool  # worker: a report the database rejects with it is dropped (logged), not retried
    exit_code: int  # wf CLI
    http_status: int  # supabase/functions/workflows


SQLSTATES: tuple[SqlState, ...] = (
    SqlState("22023", "bad input: a definition, a missing required field or template variable, a wrong JSON "
             "type, an idempotency key reused with another input, bad arguments", True, EXIT_BAD_INPUT, 400),
    SqlState("22", "other data exceptions: a value PostgreSQL cannot take (U+0000 in text or jsonb, a malformed "
             "uuid, a number out of range)", True, EXIT_BAD_INPUT, 400),
    SqlState("54000", "input larger than the max_input_bytes setting", True, EXIT_BAD_INPUT, 400),
    SqlState("55000", "an object not in the state the call needs: an inactive workflow, pg_cron or the "
             "authenticated role missing", True, EXIT_BAD_INPUT, 400),
    SqlState("P0002", "unknown workflow, run, step, stage or schedule", True, EXIT_BAD_INPUT, 404),
    SqlState("23", "integrity constraint violation: a bug of wf or a concurrent change", True, EXIT_FAILURE,
             HTTP_FAULT),
    SqlState("42", "syntax error or access rule violation: a missing privilege, wf missing or older than this "
             "client (42883)", True, EXIT_FAILURE, HTTP_FAULT),
    SqlState("54", "other program limits", True, EXIT_FAILURE, HTTP_FAULT),
    SqlState("P0", "other PL/pgSQL errors: a raise without errcode, a failed assert", True, EXIT_FAILURE,
             HTTP_FAULT),
)
OTHER = SqlState("", "anything else: a lost connection, a deadlock, a serialization failure, a lock timeout "
                 "(55P03), a shutdown, insufficient resources", False, EXIT_FAILURE, HTTP_FAULT)

_BY_CODE = {s.code: s for s in SQLSTATES}


def lookup(sqlstate: str | None) -> SqlState:
    """The row for a SQLSTATE: its own, else its class's, else OTHER."""
    code = sqlstate or ""
    return _BY_CODE.get(code) or _BY_CODE.get(code[:2]) or OTHER


def permanent(sqlstate: str | None) -> bool:
    """Worker: retrying a report the database rejected with this SQLSTATE cannot help."""
    return lookup(sqlstate).permanent


def exit_code(sqlstate: str | None) -> int:
    """CLI: the exit status for a command that failed with this SQLSTATE."""
    return lookup(sqlstate).exit_code


def bad_input(sqlstate: str | None) -> bool:
    """The caller's mistake: the CLI names it in one line and exits 2."""
    return exit_code(sqlstate) == EXIT_BAD_INPUT


def http_status(sqlstate: str | None) -> int:
    """HTTP API: the status for a request that failed with this SQLSTATE."""
    return lookup(sqlstate).http_status


def refused_value(sqlstate: str | None) -> bool:
    """A data exception (class 22): the database cannot store the value it was given (e.g. U+0000 in jsonb)."""
    return (sqlstate or "")[:2] == "22"
