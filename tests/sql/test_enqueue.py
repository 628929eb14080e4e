"""wf.enqueue: input checks naming what is missing, idempotency, size limit, run_at, correlation."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from wfsql import (
    chain,
    claim,
    counts,
    define,
    enqueue,
    messages,
    run_status,
    step_statuses,
    wait_until_blocked_or_done,
)

RUN_TABLES = ("wf.runs", "wf.steps", "wf.events")


def templated(required: list[str] | None = None, **payload: object) -> dict[str, object]:
    definition: dict[str, object] = {
        "name": "mail",
        "steps": [{"name": "send", "function": "echo", "action": "send", "payload_template": payload}],
    }
    if required is not None:
        definition["required_fields"] = required
    return definition


@pytest.fixture
def mail(conn):
    define(conn, templated(["proposal_id", "guest_id"], to="{{ host_email }}", id="{{ proposal_id }}"))
    return conn


def nothing_enqueued(conn) -> bool:
    return counts(conn, *RUN_TABLES) == dict.fromkeys(RUN_TABLES, 0) and messages(conn, "echo") == []


# --- what is missing is named -------------------------------------------------------------------


def test_missing_required_field_is_named(mail):
    with pytest.raises(errors.InvalidParameterValue,
                       match=r"workflow mail: input is missing required field\(s\) guest_id(\n|$)"):
        enqueue(mail, "mail", {"proposal_id": 1, "host_email": "h@x"})
    assert nothing_enqueued(mail)


def test_every_missing_required_field_is_named(mail):
    with pytest.raises(errors.InvalidParameterValue, match=r"field\(s\) guest_id, proposal_id"):
        enqueue(mail, "mail", {"host_email": "h@x"})


def test_missing_template_variable_is_named(mail):
    with pytest.raises(errors.InvalidParameterValue,
                       match=r"workflow mail: input is missing variable\(s\) host_email used by its templates"):
        enqueue(mail, "mail", {"proposal_id": 1, "guest_id": 2})
    assert nothing_enqueued(mail)


def test_variable_read_through_input_is_required(conn):
    define(conn, templated(to="{{ input.email | lower }}"))
    with pytest.raises(errors.InvalidParameterValue, match=r"missing variable\(s\) email"):
        enqueue(conn, "mail", {})
    assert enqueue(conn, "mail", {"email": "A@X"})


def test_variables_with_a_default_or_from_steps_are_not_required(conn):
    define(conn, templated(nick="{{ nickname | default('friend') }}", prev="{{ steps.a.output.id }}",
                           run="{{ run.id }}", lit="{{ true }}"))
    assert enqueue(conn, "mail", {})


def test_unknown_workflow_raises_p0002_naming_it(shared_conn):
    with pytest.raises(errors.NoDataFound, match="unknown workflow nope"):
        enqueue(shared_conn, "nope")


def test_null_workflow_is_rejected(shared_conn):
    with pytest.raises(errors.InvalidParameterValue, match="workflow must not be null"):
        shared_conn.execute("select wf.enqueue(null)")


@pytest.mark.parametrize("value, kind", [(None, "null"), ([1, 2], "array"), ("text", "string"), (7, "number")])
def test_input_that_is_not_an_object_is_rejected(shared_conn, value, kind):
    define(shared_conn, chain())
    with pytest.raises(errors.InvalidParameterValue,
                       match=f"workflow chain: input must be a JSON object, got {kind}"):
        shared_conn.execute("select wf.enqueue('chain', %s::jsonb)", (None if value is None else Jsonb(value),))
    assert nothing_enqueued(shared_conn)


@pytest.mark.parametrize("field", ["idempotency_key", "correlation_id"])
@pytest.mark.parametrize("value", ["", "k" * 513])
def test_empty_or_oversized_key_is_rejected_naming_the_field(shared_conn, field, value):
    define(shared_conn, chain())
    with pytest.raises(errors.InvalidParameterValue, match=f"workflow chain: {field} must be 1 to 512 characters"):
        shared_conn.execute(f"select wf.enqueue('chain', '{{}}', {field} => %s)", (value,))
    assert nothing_enqueued(shared_conn)


# --- idempotency --------------------------------------------------------------------------------


def test_same_idempotency_key_returns_the_same_run(conn):
    define(conn, chain())
    first = enqueue(conn, "chain", {"a": 1}, key="order-7")
    assert enqueue(conn, "chain", {"a": 1}, key="order-7") == first
    assert counts(conn, "wf.runs") == {"wf.runs": 1}
    assert len(messages(conn, "echo")) == 1  # the repeat sent nothing


def test_same_idempotency_key_with_another_input_raises(conn):
    define(conn, chain())
    first = enqueue(conn, "chain", {"a": 1}, key="order-7")
    with pytest.raises(errors.InvalidParameterValue,
                       match=f"idempotency_key order-7 was used by run {first} with a different input"):
        enqueue(conn, "chain", {"a": 2}, key="order-7")
    assert counts(conn, "wf.runs") == {"wf.runs": 1}


def test_idempotency_keys_are_scoped_per_workflow(conn):
    define(conn, chain("one"))
    define(conn, chain("two"))
    assert enqueue(conn, "one", key="k") != enqueue(conn, "two", key="k")


def test_runs_without_a_key_are_never_merged(conn):
    define(conn, chain())
    assert enqueue(conn, "chain") != enqueue(conn, "chain")


# --- size limit ---------------------------------------------------------------------------------


def test_input_over_one_megabyte_is_rejected_leaving_nothing_behind(conn):
    define(conn, chain())
    big = {"blob": "x" * (1024 * 1024)}
    message = r"workflow chain: input is 10485\d\d bytes, more than the 1048576"
    with pytest.raises(errors.ProgramLimitExceeded, match=message):
        enqueue(conn, "chain", big)
    assert nothing_enqueued(conn)


def test_input_just_under_the_limit_is_accepted(conn):
    define(conn, chain())
    assert enqueue(conn, "chain", {"blob": "x" * (1024 * 1024 - 100)})


# --- run_at -------------------------------------------------------------------------------------


def test_run_at_in_the_future_schedules_the_run(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain", run_at=datetime.now(UTC) + timedelta(hours=1))
    assert run_status(conn, run_id) == "scheduled"
    [msg] = messages(conn, "echo")
    assert 3590 <= msg["wait"] <= 3601  # the first message is sent with the delay
    assert claim(conn, "echo") == []


def test_scheduled_run_is_claimable_once_its_time_has_come(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain", run_at=datetime.now(UTC) + timedelta(hours=1))
    conn.execute("update pgmq.q_wf_echo set vt = now() - interval '1 second'")  # an hour later
    [task] = claim(conn, "echo")
    assert (str(task["run_id"]), task["step"], task["attempt"]) == (run_id, "s1", 1)
    assert run_status(conn, run_id) == "running"


def test_run_at_in_the_past_starts_at_once(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain", run_at=datetime.now(UTC) - timedelta(minutes=5))
    assert run_status(conn, run_id) == "pending"
    assert [t["step"] for t in claim(conn, "echo")] == ["s1"]


# --- what a run keeps ---------------------------------------------------------------------------


def test_correlation_id_is_kept_and_handed_to_the_call(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain", correlation_id="req-42")
    row = conn.execute("select correlation_id from wf.runs where id = %s", (run_id,)).fetchone()
    assert row["correlation_id"] == "req-42"
    [task] = claim(conn, "echo")
    assert task["correlation_id"] == "req-42"
    assert task["context"]["run"]["correlation_id"] == "req-42"


def test_enqueue_queues_only_the_first_step(conn):
    define(conn, chain())
    run_id = enqueue(conn, "chain", {"a": 1})
    assert step_statuses(conn, run_id) == {"s1": "queued", "s2": "waiting", "s3": "waiting"}
    [msg] = messages(conn, "echo")
    assert msg["message"] == {"run_id": run_id, "step": "s1"}


def test_enqueue_notifies_the_stage_queue(conn, db):
    define(conn, chain())
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("listen wf")
        enqueue(conn, "chain")
        notes = list(listener.notifies(timeout=2, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [("wf", "wf_echo")]


def test_concurrent_enqueues_with_the_same_key_start_one_run(conn, db):
    define(conn, chain())
    with psycopg.connect(db, row_factory=dict_row) as first:  # holds its transaction open
        first_id = enqueue(first, "chain", {"a": 1}, key="same")
        result: dict[str, str] = {}
        other = threading.Thread(
            target=lambda: result.update(id=enqueue_on_new_connection(db, "chain", {"a": 1}, "same")))
        other.start()
        wait_until_blocked_or_done(conn, other)
        first.commit()
        other.join(timeout=30)
    assert result["id"] == first_id
    assert counts(conn, "wf.runs") == {"wf.runs": 1}
    assert len(messages(conn, "echo")) == 1


def enqueue_on_new_connection(db: str, workflow: str, input: dict, key: str) -> str:
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as c:
        return enqueue(c, workflow, input, key=key)


def test_enqueue_rolled_back_leaves_no_run_and_no_message(conn):
    define(conn, chain())
    with pytest.raises(RuntimeError), conn.transaction():
        enqueue(conn, "chain")
        raise RuntimeError("the caller's transaction fails after the enqueue")
    assert nothing_enqueued(conn)


def test_a_delayed_send_notifies_too(conn, db):
    define(conn, chain(n=1, delay_seconds=60))
    with psycopg.connect(db, autocommit=True) as listener:
        listener.execute("listen wf")
        enqueue(conn, "chain")
        notes = list(listener.notifies(timeout=2, stop_after=1))
    assert [(n.channel, n.payload) for n in notes] == [("wf", "wf_echo")]
