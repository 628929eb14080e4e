"""Compensation with the real worker and real Deno functions: a later step fails for good, and the
succeeded steps are undone by real calls, last one first, each seeing what it undoes."""

from __future__ import annotations

from wfproc import wait_final
from wfsql import define, enqueue


def test_a_failed_run_undoes_its_succeeded_steps_last_first(db, conn, gateway, start_worker):
    define(conn, {"name": "saga", "max_retries": 0, "steps": [
        {"name": "charge", "function": "echo", "action": "charge", "payload_template": {"amount": 40},
         "compensate": {"function": "echo", "action": "refund",
                        "payload_template": {"charged": "{{ steps.charge.output.payload.amount }}"}}},
        {"name": "reserve", "function": "echo", "action": "reserve",
         "compensate": {"function": "echo", "action": "release"}},
        {"name": "notify", "function": "misbehave", "action": "fail_plain"}]})
    run_id = enqueue(conn, "saga")
    worker = start_worker(db)
    assert wait_final(conn, run_id, 20, worker) == {run_id: "failed"}

    calls = [(c["headers"]["x-wf-step"], c["action"], c["payload"]) for c in gateway.calls("echo", run_id)]
    assert calls == [("charge", "charge", {"amount": 40}), ("reserve", "reserve", {}),
                     ("reserve:compensate", "release", {}), ("charge:compensate", "refund", {"charged": 40})]
    kinds = [r["kind"] for r in conn.execute(
        "select kind from wf.events where run_id = %s and step is null or kind like 'run_%%' and run_id = %s "
        "order by id", (run_id, run_id))]
    assert kinds[-2:] == ["run_compensating", "run_compensated"]
