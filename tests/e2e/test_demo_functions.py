"""The demo edge functions the templates call (supabase/functions/<name>, built on _shared/outbox.ts),
against the real Deno gateway and PostgreSQL: each answers every action its templates use, with the
output fields they read; payloads are validated at the boundary (400 naming the field); a duplicate
delivery (same webhook-id) is answered with the first answer and recorded once; bubble-sync fails for
good while demo.flags says the API key is invalid, and succeeds once it is fixed; and every template
runs to completion under the real `wf worker --once`, with one demo.outbox row per step call: a function
step's row written by the function, a sql step's by demo.set_proposal_status (supabase/demo.sql), a
workflow step's in its child run; a wait_for step records nothing (the test sends its signal). A run that
fails is undone by its steps' compensations (`<step>:compensate`), real calls recorded the same way:
booking-payment releases the dates, then refunds the charge, when the host declines. external-sync has a
concurrency key and debounce per record: a burst of edits becomes one sync carrying the last edit, a second
sync of a record waits for the first (a debounced run is started by back-dating its start, never by waiting)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from standardwebhooks import Webhook
from wf.calls import classify
from wfproc import FINAL_RUN, REPO, SIGNING_SECRET, TOKEN, WF, Gateway, run_once
from wfsql import define, dlq, enqueue, make_visible, step_row, step_statuses

TEMPLATE_FILES = sorted((REPO / "templates").glob("*.json")) + sorted((REPO / "templates/patterns").glob("*.json"))
TEMPLATES: dict[str, dict[str, Any]] = {
    d["name"]: d for d in (json.loads(p.read_text()) for p in TEMPLATE_FILES)
}
FUNCTIONS = sorted(p.parent.name for p in (REPO / "supabase/functions").glob("*/index.ts")
                   if (p.parent / "index.ts").read_text().count("demoFunction(") > 0)
KEY_REJECTED = "Bubble rejected the API key (401): rotate BUBBLE_API_KEY"


def definition_steps(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A definition's steps by name, and each step's `compensate` (a function call or a sql step) by the
    name its compensation has in a run: `<step>:compensate`."""
    steps = {s["name"]: s for s in definition["steps"]}
    return {**steps, **{f"{name}:compensate": s["compensate"] for name, s in steps.items() if "compensate" in s}}


def template_actions() -> dict[tuple[str, str], set[str]]:
    """(function, action) of every function step and function compensation of the templates → the output
    fields some template reads from it (sql, workflow and wait_for steps call no edge function)."""
    used: dict[tuple[str, str], set[str]] = {}
    for definition in TEMPLATES.values():
        by_step = {name: (s["function"], s["action"]) for name, s in definition_steps(definition).items()
                   if "function" in s}
        for pair in by_step.values():
            used.setdefault(pair, set())
        for step, output_field in re.findall(r"steps\.(\w+)\.output\.(\w+)", json.dumps(definition)):
            if step in by_step:
                used[by_step[step]].add(output_field)
    return used


def children_first() -> list[dict[str, Any]]:
    """The templates in an order wf.define accepts: the workflows a workflow step runs first."""
    ordered: list[dict[str, Any]] = []

    def place(definition: dict[str, Any]) -> None:
        for step in definition["steps"]:
            if "workflow" in step:
                place(TEMPLATES[step["workflow"]])
        if definition not in ordered:
            ordered.append(definition)

    for definition in TEMPLATES.values():
        place(definition)
    return ordered


USED = template_actions()

# one realistic payload per (function, action), shaped as the templates render them
SAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("auth-user", "signup"): {"email": "ada@example.com"},
    ("users", "create_user"): {"authUserId": "auth_1", "email": "ada@example.com", "firstName": "Ada",
                               "lastName": "Lovelace"},
    ("users", "create_host_account"): {"userId": "user_1"},
    ("users", "create_guest_account"): {"userId": "user_1"},
    ("proposal", "reserve"): {"orderId": "o-1"},
    ("proposal", "release"): {"reservationId": "res_0123456789abcdef"},
    ("proposal", "confirm"): {"orderId": "b-1", "reservationId": "res_0123456789abcdef", "declined": False},
    ("payments", "charge"): {"bookingId": "b-1", "guestId": "g-1", "amount": 42000, "currency": "EUR"},
    ("payments", "refund"): {"chargeId": "ch_0123456789abcdef", "reason": "booking_not_confirmed"},
    ("listing", "publish"): {"listingId": "l-1"},
    ("listing", "update_host_count"): {"hostId": "h-1"},
    ("virtual-meeting", "accept"): {"meetingId": "vm-1"},
    ("virtual-meeting", "update_link"): {"meetingId": "vm-1", "link": "https://meet.example.com/evt_1"},
    ("messages", "create_proposal_thread"): {"proposalId": "p-1", "guestId": "g-1", "hostId": "h-1",
                                             "listingId": "l-1", "proposalStatus": "accepted"},
    ("messages", "send_splitbot_message"): {"threadId": "thread-p-1", "text": "Your proposal was accepted."},
    ("messages", "send_message"): {"threadId": "t-1", "text": "Meeting confirmed"},
    ("send-email", "send"): {"template_id": "welcome", "recipient_email": "ada@example.com",
                             "variables": {"first_name": "Ada"}},
    ("sms", "send"): {"to": "+14155550100", "text": "Good news"},
    ("calendar", "create_event"): {"meetingId": "vm-1", "startsAt": "2026-12-01T15:00:00Z",
                                   "attendees": ["h-1", "g-1"]},
    ("calendar", "send_invite"): {"eventId": "evt_1", "attendees": ["h-1", "g-1"]},
    ("bubble-sync", "sync_single"): {"table": "proposal", "recordId": "p-1", "operation": "UPDATE",
                                     "fields": {"status": "accepted"}},
    ("analytics", "track"): {"event": "signup_completed", "userId": "user_1", "properties": {"source": "web"}},
    ("seo", "request_indexing"): {"url": "https://listings.example.com/l/l-1"},
    ("distribution", "publish"): {"listingId": "l-1", "url": "https://listings.example.com/l/l-1",
                                  "channel": "partner-feed"},
}

GUEST = {"guest_id": "g-1", "guest_email": "grace@example.com", "guest_phone": "+14155550100"}


def hours_from_now(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat(timespec="seconds")


# a realistic input per template (by workflow name)
INPUTS: dict[str, dict[str, Any]] = {
    "proposal-created": {"proposal_id": "p-100", "guest_id": "g-1", "host_id": "h-1", "listing_id": "l-1",
                         "status": "pending", "host_email": "host@example.com", "guest_name": "Grace",
                         "listing_name": "Loft by the river"},
    "proposal-status-change": {"id": "p-200", "status": "accepted", "host_id": "h-1", "listing_id": "l-1", **GUEST},
    "user-signup": {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "source": "demo"},
    "signup-sync": {"user_id": "user_1", "email": "ada@example.com", "host_account_id": "host_1",
                    "guest_account_id": "guest_1"},
    # the meeting is less than 24 h away: its reminder's not_before has passed, so it goes out at once
    "virtual-meeting-accepted": {"meeting_id": "vm-7", "host_id": "h-1", "starts_at": hours_from_now(20),
                                 "thread_id": "t-1", **GUEST},
    "listing-published": {"listing_id": "l-42", "host_id": "h-1", "host_email": "host@example.com"},
    "listing-approval": {"listing_id": "l-77", "host_id": "h-1", "host_email": "host@example.com"},
    "order-fulfilment": {"order_id": "o-9", "email": "grace@example.com", "phone": "+14155550100"},
    "notify-with-fallback": {"user_id": "g-1", "phone": "+14155550100", "email": "grace@example.com",
                             "text": "Your keys are ready"},
    "external-sync": {"table": "listing", "record_id": "l-1"},
    "booking-reminder": {"booking_id": "b-5", "guest_email": "grace@example.com"},
    # without fail_confirmation the host confirms: nothing to compensate
    "booking-payment": {"booking_id": "b-7", "guest_id": "g-1", "guest_email": "grace@example.com",
                        "amount_cents": 42000},
}
# the signals a template's wait_for steps wait for, sent once the run waits (by workflow name)
SIGNALS: dict[str, tuple[str, dict[str, Any]]] = {
    "listing-approval": ("moderated", {"approved": True, "by": "mod-1"}),
}


# ---- fixtures: a database with wf, demo.sql and the templates; a gateway writing to it ----------


@pytest.fixture(scope="module")
def demo_db(pg_server, template_db) -> Iterator[str]:
    """A database cloned from the wf template, with supabase/demo.sql loaded (it allows the sql step's
    function) and templates/ defined, children first."""
    name = f"wf_demo_{uuid.uuid4().hex[:12]}"
    janitor = pg_server.janitor(name, template_dbname=template_db)
    janitor.init()
    dsn = pg_server.dsn(name)
    try:
        with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
            conn.execute((REPO / "supabase/demo.sql").read_text())
            for definition in children_first():
                define(conn, definition)
        yield dsn
    finally:
        janitor.drop()


@pytest.fixture(scope="module")
def demo_gateway(demo_db: str) -> Iterator[Gateway]:
    """scripts/serve-functions with WF_DEMO_DATABASE_URL: the functions record into demo.outbox."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WF_DEMO_DATABASE_URL", demo_db)
        gw = Gateway().start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="module")
def dconn(demo_db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(demo_db, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture
def bubble_key_invalid(dconn: psycopg.Connection) -> Iterator[None]:
    """demo.flags bubble_api_key_valid = false for the test (true again afterwards, whatever happens)."""
    dconn.execute("update demo.flags set value = 'false' where key = 'bubble_api_key_valid'")
    try:
        yield
    finally:
        set_bubble_key_valid(dconn)


def set_bubble_key_valid(conn: psycopg.Connection) -> None:
    conn.execute("update demo.flags set value = 'true' where key = 'bubble_api_key_valid'")


# ---- calling a function directly, as the worker does -------------------------------------------


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def data(self) -> dict[str, Any]:
        assert self.status == 200 and self.body["success"] is True, (self.status, self.body)
        return self.body["data"]


_signer = Webhook(SIGNING_SECRET)


def post(gw: Gateway, function: str, action: str, payload: Any, webhook_id: str | None = None, *,
         run_id: str | None = None, step: str | None = None, token: str = TOKEN, sign: bool = True) -> Answer:
    """POST {action, payload} signed (Standard Webhooks) with a fresh webhook-id unless one is given."""
    body = json.dumps({"action": action, "payload": payload})
    webhook_id = webhook_id or f"test-{uuid.uuid4().hex}"
    headers = {"content-type": "application/json", "authorization": f"Bearer {token}"}
    if run_id:
        headers.update({"x-wf-run": run_id, "x-wf-step": step or "step", "x-wf-attempt": "1"})
    if sign:
        now = datetime.now(UTC)
        headers.update({"webhook-id": webhook_id, "webhook-timestamp": str(int(now.timestamp())),
                        "webhook-signature": _signer.sign(webhook_id, now, body)})
    return request(gw, function, "POST", body.encode(), headers)


def request(gw: Gateway, function: str, method: str = "GET", data: bytes | None = None,
            headers: dict[str, str] | None = None) -> Answer:
    req = urllib.request.Request(f"{gw.url}/{function}", data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return Answer(response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, json.loads(exc.read() or b"null"), dict(exc.headers))


def outbox(conn: psycopg.Connection, *, webhook_id: str | None = None, run_id: str | None = None) -> list[dict]:
    return conn.execute("""select "function", action, webhook_id, run_id::text as run_id, step, payload, result
                           from demo.outbox where webhook_id = %s or run_id = %s::uuid order by id""",
                        (webhook_id, run_id)).fetchall()


# ---- every action the templates use ------------------------------------------------------------


def test_the_samples_cover_exactly_the_actions_the_templates_use():
    assert set(SAMPLES) == set(USED)
    assert {fn for fn, _ in USED} == set(FUNCTIONS)
    # what the templates read from earlier steps (a sanity check of the parsing above)
    assert USED[("messages", "create_proposal_thread")] == {"thread_id"}
    assert USED[("calendar", "create_event")] == {"event_id", "link"}
    assert USED[("listing", "publish")] == {"url"}
    assert USED[("users", "create_host_account")] == {"account_id"}
    # booking-payment's refund and release (compensations) read what charge and reserve answered
    assert USED[("payments", "charge")] == {"charge_id"}
    assert USED[("proposal", "reserve")] == {"reservation_id"}
    assert {("payments", "refund"), ("proposal", "release")} <= set(USED)


@pytest.mark.parametrize(("function", "action"), sorted(SAMPLES), ids=lambda v: v)
def test_each_action_answers_with_the_fields_the_templates_read_and_records_one_outbox_row(
        demo_gateway, dconn, function, action):
    run_id = str(uuid.uuid4())
    webhook_id = f"{run_id}:call"
    answer = post(demo_gateway, function, action, SAMPLES[function, action], webhook_id, run_id=run_id, step="call")
    data = answer.data
    assert data["action"] == action
    for output_field in USED[function, action]:
        assert isinstance(data.get(output_field), str) and data[output_field], (output_field, data)
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")]

    [row] = outbox(dconn, webhook_id=webhook_id)
    assert (row["function"], row["action"], row["run_id"], row["step"]) == (function, action, run_id, "call")
    assert row["payload"] == SAMPLES[function, action]
    assert row["result"] == data

    # the ids the templates read are derived from the input: another delivery computes the same
    again = post(demo_gateway, function, action, SAMPLES[function, action]).data
    assert {f: again[f] for f in USED[function, action]} == {f: data[f] for f in USED[function, action]}


def test_the_answers_of_the_steps_that_later_steps_read(demo_gateway):
    thread = post(demo_gateway, "messages", "create_proposal_thread", SAMPLES["messages", "create_proposal_thread"])
    assert thread.data == {"action": "create_proposal_thread", "thread_id": "thread-p-1"}  # tests/e2e seed test
    assert post(demo_gateway, "listing", "publish", {"listingId": "l 42"}).data == {
        "action": "publish", "listing_id": "l 42", "status": "published",
        "url": "https://listings.example.com/l/l%2042"}
    event = post(demo_gateway, "calendar", "create_event", SAMPLES["calendar", "create_event"]).data
    assert event["link"] == f"https://meet.example.com/{event['event_id']}"
    assert event["starts_at"] == "2026-12-01T15:00:00.000Z"
    # the same instant written another way is the same event
    other = post(demo_gateway, "calendar", "create_event",
                 {**SAMPLES["calendar", "create_event"], "startsAt": "2026-12-01 16:00:00+01"}).data
    assert other["event_id"] == event["event_id"]
    auth = post(demo_gateway, "auth-user", "signup", {"email": "Ada@Example.com"}).data
    assert auth["user_id"] == post(demo_gateway, "auth-user", "signup", {"email": "ada@example.com"}).data["user_id"]
    host = post(demo_gateway, "users", "create_host_account", {"userId": "u-1"}).data
    guest = post(demo_gateway, "users", "create_guest_account", {"userId": "u-1"}).data
    assert host["account_id"] != guest["account_id"]
    assert (host["kind"], guest["kind"]) == ("host", "guest")
    # an integer id (a lone "{{ x }}" keeps its JSON type) is the same id as its text
    assert post(demo_gateway, "users", "create_user", {**SAMPLES["users", "create_user"], "authUserId": 7}).data[
        "user_id"] == post(demo_gateway, "users", "create_user",
                           {**SAMPLES["users", "create_user"], "authUserId": "7"}).data["user_id"]
    sms = post(demo_gateway, "sms", "send", {"to": "+44 (20) 7946-0958", "text": "x" * 161}).data
    assert (sms["to"], sms["segments"]) == ("+442079460958", 2)


# ---- bad input: 400 naming the field, nothing recorded -----------------------------------------


BAD_PAYLOADS = [
    ("sms", "send", {"to": "not-a-number", "text": "hi"},
     "to: must be a phone number in E.164 form, e.g. +14155550100"),
    ("sms", "send", {"to": "+14155550100"}, "text: required"),
    ("sms", "send", {"to": "+14155550100", "text": "  "}, "text: must not be empty"),
    ("send-email", "send", {"template_id": "welcome", "recipient_email": "ada"},
     "recipient_email: must be an email address"),
    ("send-email", "send", {"template_id": "welcome", "recipient_email": "ada@example.com", "variables": [1]},
     "variables: must be an object"),
    ("users", "create_user", {"email": "ada@example.com", "firstName": "A", "lastName": "L"}, "authUserId: required"),
    ("users", "create_host_account", {"userId": "u-1", "admin": True}, "admin: unknown field"),
    ("users", "create_guest_account", {"userId": {"id": 1}}, "userId: must be a string or an integer id"),
    ("messages", "create_proposal_thread", {**SAMPLES["messages", "create_proposal_thread"], "proposalStatus": "maybe"},
     "proposalStatus: must be one of pending, accepted, declined, rejected, cancelled, withdrawn, expired"),
    ("calendar", "create_event", {"meetingId": "m", "startsAt": "tomorrow", "attendees": ["a"]},
     "startsAt: must be an ISO 8601 date-time with a time zone, e.g. 2026-12-01T15:00:00Z"),
    ("calendar", "create_event", {"meetingId": "m", "startsAt": "2026-02-30T10:00:00Z", "attendees": ["a"]},
     "startsAt: is not a valid date-time"),
    ("calendar", "send_invite", {"eventId": "e", "attendees": []}, "attendees: must name at least one attendee"),
    ("calendar", "send_invite", {"eventId": "e", "attendees": ["a", ""]}, "attendees.1: must not be empty"),
    ("bubble-sync", "sync_single", {"table": "proposal", "recordId": "p-1", "operation": "UPSERT"},
     "operation: must be INSERT, UPDATE or DELETE"),
    ("bubble-sync", "sync_single", {"table": "Proposal; drop", "recordId": "p-1", "operation": "UPDATE"},
     "table: must be a lowercase name (a-z, 0-9, _ . : -)"),
    ("analytics", "track", {"event": "x", "properties": "y"}, "properties: must be an object"),
    ("seo", "request_indexing", {"url": "javascript:alert(1)"}, "url: must be an http(s) URL"),
    ("distribution", "publish", {"listingId": "l-1", "url": "https://x.example.com", "channel": "Partner Feed"},
     "channel: must be a lowercase name (a-z, 0-9, _ . : -)"),
    ("distribution", "publish", {"listingId": "l-1", "url": "https://x.example.com",
                                 "channels": ["partner-feed"]}, "channel: required"),
    ("virtual-meeting", "update_link", {"meetingId": "m", "link": "not a url"}, "link: must be a URL"),
    ("auth-user", "signup", {}, "email: required"),
    ("listing", "publish", {"listingId": 1.5}, "listingId: must be a string or an integer id"),
    ("messages", "send_message", {"threadId": "t", "text": "x" * 4001}, "text: must be at most 4000 characters"),
    ("payments", "charge", {**SAMPLES["payments", "charge"], "amount": 420.5},
     "amount: must be a whole number of cents"),
    ("payments", "charge", {**SAMPLES["payments", "charge"], "amount": "420"}, "amount: must be a number of cents"),
    ("payments", "charge", {**SAMPLES["payments", "charge"], "amount": 0}, "amount: must be more than 0"),
    ("payments", "charge", {**SAMPLES["payments", "charge"], "currency": "euro"},
     "currency: must be a three-letter currency code, e.g. EUR"),
    ("payments", "refund", {"chargeId": "res_0123456789abcdef"},
     "chargeId: must be the charge_id a charge answered (ch_…)"),
    ("proposal", "release", {"orderId": "o-1"}, "reservationId: required"),
    # the host declines: refused at the boundary, so not retried (booking-payment's failure on demand)
    ("proposal", "confirm", {**SAMPLES["proposal", "confirm"], "declined": True},
     "declined: the host declined the booking"),
    ("proposal", "confirm", {**SAMPLES["proposal", "confirm"], "declined": "yes"}, "declined: must be true or false"),
]


@pytest.mark.parametrize(("function", "action", "payload", "error"), BAD_PAYLOADS,
                         ids=[f"{f}.{a}:{e.split(':')[0]}" for f, a, _, e in BAD_PAYLOADS])
def test_a_bad_payload_is_a_400_naming_the_field_and_records_nothing(demo_gateway, dconn, function, action, payload,
                                                                     error):
    webhook_id = f"bad-{uuid.uuid4().hex}"
    answer = post(demo_gateway, function, action, payload, webhook_id)
    assert (answer.status, answer.body) == (400, {"success": False, "error": error})
    assert outbox(dconn, webhook_id=webhook_id) == []
    outcome = classify(answer.status, json.dumps(answer.body).encode(), None)
    assert (outcome.ok, outcome.retryable) == (False, False)  # the worker does not retry it


@pytest.mark.parametrize("function", FUNCTIONS)
def test_an_unknown_action_is_a_400_naming_it(demo_gateway, function):
    answer = post(demo_gateway, function, "launch_rockets", {})
    assert answer.status == 400
    assert answer.body["success"] is False
    assert answer.body["error"].startswith(f'unknown action "launch_rockets" for {function} (known: ')


def test_the_envelope_the_token_and_the_signature_are_checked_and_no_cors_headers_are_sent(demo_gateway, dconn):
    sample = SAMPLES["sms", "send"]
    assert post(demo_gateway, "sms", "send", sample, token="wrong").status == 401
    assert post(demo_gateway, "sms", "send", sample, sign=False).status == 401  # the gateway has a secret
    body = json.dumps({"action": "send", "payload": sample})
    now = datetime.now(UTC)
    forged = {"authorization": f"Bearer {TOKEN}", "webhook-id": "forged",
              "webhook-timestamp": str(int(now.timestamp())),
              "webhook-signature": _signer.sign("forged", now, body + " ")}
    assert request(demo_gateway, "sms", "POST", body.encode(), forged).status == 401
    assert outbox(dconn, webhook_id="forged") == []
    assert request(demo_gateway, "sms", "GET").status == 401  # the call log is behind the token too
    payload_not_object = post(demo_gateway, "sms", "send", ["+14155550100"])
    assert (payload_not_object.status, payload_not_object.body["error"]) == (400, '"payload" must be an object')
    options = request(demo_gateway, "sms", "OPTIONS", headers={"authorization": f"Bearer {TOKEN}",
                                                               "origin": "https://evil.example.com"})
    assert options.status == 405
    for answer in (options, post(demo_gateway, "sms", "send", sample), post(demo_gateway, "sms", "send", {})):
        assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers


# ---- duplicate deliveries ----------------------------------------------------------------------


def test_a_duplicate_webhook_id_gets_the_first_answer_and_writes_one_outbox_row(demo_gateway, dconn):
    webhook_id = f"{uuid.uuid4()}:sms"
    first = post(demo_gateway, "sms", "send", {"to": "+14155550100", "text": "first"}, webhook_id)
    # a retry after a lost answer (here with a different payload, to tell the answers apart)
    second = post(demo_gateway, "sms", "send", {"to": "+14155550111", "text": "second"}, webhook_id)
    assert second.data == first.data
    assert first.data["to"] == "+14155550100"
    assert second.headers.get("x-demo-replayed") == "true" and "x-demo-replayed" not in first.headers
    [row] = outbox(dconn, webhook_id=webhook_id)
    assert row["payload"]["text"] == "first"


def test_concurrent_duplicate_deliveries_record_one_row_and_all_get_its_answer(demo_gateway, dconn):
    webhook_id = f"{uuid.uuid4()}:email"
    answers: list[Answer] = []

    def deliver(i: int) -> None:
        answers.append(post(demo_gateway, "send-email", "send",
                            {"template_id": "welcome", "recipient_email": f"u{i}@example.com"}, webhook_id))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    [row] = outbox(dconn, webhook_id=webhook_id)
    assert all(a.data == row["result"] for a in answers)
    assert sum("x-demo-replayed" not in a.headers for a in answers) == 1


def test_without_a_database_calls_are_deduplicated_and_logged_in_memory(gateway):
    """The session gateway has no WF_DEMO_DATABASE_URL: the same dedupe, in memory; GET lists, DELETE clears."""
    assert request(gateway, "sms", "DELETE", headers={"authorization": f"Bearer {TOKEN}"}).status == 200
    run_id = str(uuid.uuid4())
    webhook_id = f"{run_id}:notify"
    first = post(gateway, "sms", "send", {"to": "+14155550100", "text": "first"}, webhook_id, run_id=run_id,
                 step="notify")
    second = post(gateway, "sms", "send", {"to": "+14155550100", "text": "second"}, webhook_id, run_id=run_id,
                  step="notify")
    assert second.data == first.data and second.headers.get("x-demo-replayed") == "true"
    assert post(gateway, "sms", "send", {"to": "nope", "text": "x"}, run_id=run_id).status == 400

    calls = gateway.calls("sms", run_id)
    assert [c["outcome"] for c in calls] == ["ok", "duplicate", "to: must be a phone number in E.164 form, "
                                             "e.g. +14155550100"]
    assert calls[0]["headers"] == {"x-wf-run": run_id, "x-wf-step": "notify", "x-wf-attempt": "1",
                                   "x-correlation-id": None, "webhook-id": webhook_id}
    assert calls[1]["payload"] == {"to": "+14155550100", "text": "second"}

    # DELETE forgets the calls and what was delivered: the same webhook-id is new again
    assert gateway.request("sms", "DELETE") == (200, {"cleared": 3})
    assert gateway.calls("sms") == []
    third = post(gateway, "sms", "send", {"to": "+14155550100", "text": "third"}, webhook_id)
    assert "x-demo-replayed" not in third.headers


# ---- bubble-sync: the API key the demo breaks and fixes ------------------------------------------


def test_bubble_sync_fails_for_good_while_the_key_is_invalid_and_succeeds_once_fixed(demo_gateway, dconn,
                                                                                     bubble_key_invalid):
    webhook_id = f"{uuid.uuid4()}:sync_bubble"
    payload = SAMPLES["bubble-sync", "sync_single"]
    refused = post(demo_gateway, "bubble-sync", "sync_single", payload, webhook_id)
    assert (refused.status, refused.body) == (200, {"success": False, "error": KEY_REJECTED})
    outcome = classify(refused.status, json.dumps(refused.body).encode(), None)
    assert (outcome.ok, outcome.retryable, outcome.error) == (False, False, KEY_REJECTED)
    assert outbox(dconn, webhook_id=webhook_id) == []
    # other functions do not care
    assert post(demo_gateway, "analytics", "track", SAMPLES["analytics", "track"]).status == 200

    set_bubble_key_valid(dconn)
    # the retry after the fix comes with the same webhook-id: it is not a duplicate of the refusal
    fixed = post(demo_gateway, "bubble-sync", "sync_single", payload, webhook_id)
    assert fixed.data["record_id"] == "p-1" and "x-demo-replayed" not in fixed.headers
    assert len(outbox(dconn, webhook_id=webhook_id)) == 1


# ---- end to end: the templates under the real `wf worker --once` ----------------------------------


def once(dsn: str, gw: Gateway) -> None:
    result = run_once(dsn, gw.url)
    assert result.returncode == 0, (result.stdout, result.stderr)


def tree_events(conn: psycopg.Connection, run_id: str) -> int:
    """How many events the run and its child runs have: what tells a round of the worker did something."""
    return conn.execute("select count(*) as n from wf.events e join wf.run_tree(%s) t on t.run_id = e.run_id",
                        (run_id,)).fetchone()["n"]


def drain(dsn: str, gw: Gateway, conn: psycopg.Connection, run_id: str, rounds: int = 10) -> None:
    """`wf worker --once` until the run is final or a round changes nothing in its tree (a step waits for a
    delay, a not_before, a backoff or a signal). --once drains what is ready when it looks; a child run
    that ends or a signal makes more ready, which the next round picks up."""
    for _ in range(rounds):
        before = tree_events(conn, run_id)
        once(dsn, gw)
        if run_status(conn, run_id)["status"] in FINAL_RUN or tree_events(conn, run_id) == before:
            return
    raise AssertionError(f"run {run_id} still {run_status(conn, run_id)} after {rounds} rounds of --once")


def start(conn: psycopg.Connection, workflow: str, input: dict[str, Any]) -> str:
    """Start a run; a debounced one (external-sync) as if its debounce were over, so it runs now."""
    run_id = enqueue(conn, workflow, input, correlation_id=f"test-{workflow}")
    if "debounce" in TEMPLATES[workflow]:
        debounce_over(conn, run_id)
    return run_id


def debounce_over(conn: psycopg.Connection, run_id: str) -> None:
    """Time passes until a debounced run's start (`seconds` after its last enqueue): its run_at is back-dated
    and its first messages, sent with that delay, become visible now."""
    conn.execute("update wf.runs set run_at = now() - interval '1 second' where id = %s and run_at > now()",
                 (run_id,))
    for step in conn.execute("select function, msg_id from wf.steps where run_id = %s and status = 'queued'",
                             (run_id,)).fetchall():
        make_visible(conn, step["function"], step["msg_id"])


def signal(conn: psycopg.Connection, run_id: str, name: str, payload: dict[str, Any]) -> None:
    assert conn.execute("select wf.signal(%s, %s, %s) as ok", (run_id, name, Jsonb(payload))).fetchone()["ok"]


def child_run(conn: psycopg.Connection, run_id: str, step: str) -> dict[str, Any]:
    """The (latest) child run a workflow step started."""
    return conn.execute("""select id::text as id, workflow, status, output, correlation_id from wf.runs
                           where parent_run_id = %s and parent_step = %s order by created_at desc limit 1""",
                        (run_id, step)).fetchone()


def template_step(steps: dict[str, dict[str, Any]], call: str) -> dict[str, Any]:
    """The template's step a call belongs to (`steps` from definition_steps, so a compensation
    `<step>:compensate` is that step's `compensate`): a map step's item `<step>[<i>]` is a call of `<step>`."""
    return steps[re.sub(r"\[\d+\]$", "", call)]


def step_calls(conn: psycopg.Connection, run_id: str, name: str, step: dict[str, Any]) -> list[str]:
    """The calls a step made: itself, or for a map step (for_each) its items `<step>[<i>]` in input order."""
    if "for_each" not in step:
        return [name]
    return [r["name"] for r in conn.execute(
        "select name from wf.steps where run_id = %s and map_step = %s order by item", (run_id, name)).fetchall()]


def assert_one_outbox_row_per_step_call(conn: psycopg.Connection, run_id: str, expected: set[str]) -> list[dict]:
    """`expected` are the steps that succeeded, compensations (`<step>:compensate`, a call of the step's
    `compensate`) included. demo.outbox holds exactly one row per call of such a step,
    with the output the run stored: a function step's row written by the function (its function, action and
    webhook-id <run_id>:<step>), a sql step's by the SQL function (function 'sql', its name as the action,
    no webhook-id). A map step (for_each) calls once per item: a row per item `<step>[<i>]` (every item
    succeeded), and the step's output is the items' outputs in input order. A workflow step calls nothing
    itself: its child run completed with the step's output, and is checked the same way (every step of the
    child succeeded). A wait_for step records nothing. Returns the run's rows, a sql step's row with its
    step name filled in."""
    workflow = conn.execute("select workflow from wf.runs where id = %s", (run_id,)).fetchone()["workflow"]
    steps = definition_steps(TEMPLATES[workflow])
    statuses = step_statuses(conn, run_id)
    assert {s for s, status in statuses.items() if status == "succeeded" and s in steps} == expected, statuses
    sql_steps = {s["sql"].split(".", 1)[1]: name for name, s in steps.items() if "sql" in s}
    outputs = {r["name"]: r["output"] for r in conn.execute(
        "select name, output from wf.steps where run_id = %s", (run_id,)).fetchall()}
    rows = [{**r, "step": sql_steps[r["action"]]} if r["function"] == "sql" else r
            for r in outbox(conn, run_id=run_id)]
    calls = {name: step_calls(conn, run_id, name, steps[name]) for name in expected
             if "function" in steps[name] or "sql" in steps[name]}
    assert Counter(r["step"] for r in rows) == Counter(c for cs in calls.values() for c in cs), rows
    for row in rows:
        step = template_step(steps, row["step"])
        if "sql" in step:
            assert (row["function"], row["action"], row["webhook_id"]) == ("sql", step["sql"].split(".", 1)[1], None)
        else:
            assert (row["function"], row["action"], row["webhook_id"]) == (step["function"], step["action"],
                                                                           f"{run_id}:{row['step']}")
        assert row["result"] == outputs[row["step"]]
    for name, items in calls.items():
        if "for_each" in steps[name]:
            assert {statuses[i] for i in items} <= {"succeeded"}, statuses
            assert outputs[name] == [outputs[i] for i in items]
    for name in sorted(expected):
        if "workflow" in steps[name]:
            child = child_run(conn, run_id, name)
            assert (child["workflow"], child["status"]) == (steps[name]["workflow"], "completed"), child
            assert child["output"] == outputs[name]
            assert_one_outbox_row_per_step_call(conn, child["id"],
                                                {s["name"] for s in TEMPLATES[child["workflow"]]["steps"]})
    return rows


def run_status(conn: psycopg.Connection, run_id: str) -> dict[str, Any]:
    return conn.execute("select status, progress, current_steps, last_error, output from wf.runs_overview "
                        "where run_id = %s", (run_id,)).fetchone()


def run_to_the_end(gw: Gateway, dsn: str, conn: psycopg.Connection, workflow: str,
                   input: dict[str, Any]) -> str:
    """Start a run and drain it, sending the template's signals (SIGNALS) once it waits for them."""
    run_id = start(conn, workflow, input)
    drain(dsn, gw, conn, run_id)
    if workflow in SIGNALS:
        assert run_status(conn, run_id)["status"] == "running"
        signal(conn, run_id, *SIGNALS[workflow])
        drain(dsn, gw, conn, run_id)
    return run_id


@pytest.mark.parametrize("workflow", sorted(set(INPUTS) - {"booking-reminder"}))
def test_each_template_completes_with_one_outbox_row_per_step_call(demo_gateway, demo_db, dconn, workflow):
    run_id = run_to_the_end(demo_gateway, demo_db, dconn, workflow, INPUTS[workflow])
    overview = run_status(dconn, run_id)
    assert overview["status"] == "completed", overview
    expected = {s["name"] for s in TEMPLATES[workflow]["steps"]}
    if workflow == "notify-with-fallback":
        expected -= {"email_fallback"}  # the SMS went out: its `when` fallback is skipped
    if workflow == "listing-approval":
        expected -= {"email_rejected", "escalate"}  # approved in time
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, expected)
    by_step = {r["step"]: r for r in rows}
    output = overview["output"]

    # what later steps received from earlier ones, end to end
    if workflow == "proposal-status-change":
        # started by wf enqueue, not by the trigger: there is no demo.proposal row to update
        assert by_step["update_proposal"]["payload"] == {"proposal_id": "p-200", "status": "accepted",
                                                        "run_id": run_id}
        assert by_step["update_proposal"]["result"] == {"proposal_id": "p-200", "status": "accepted",
                                                       "found": False}
        assert by_step["splitbot"]["payload"]["threadId"] == "thread-p-200"
        assert by_step["track"]["payload"]["properties"] == {"proposal_id": "p-200", "thread_id": "thread-p-200"}
        assert output == {"proposal_id": "p-200", "status": "accepted", "thread_id": "thread-p-200",
                          "bubble_id": by_step["sync_bubble"]["result"]["bubble_id"]}
    if workflow == "user-signup":
        user_id = by_step["user_record"]["result"]["user_id"]
        assert by_step["user_record"]["payload"]["authUserId"] == by_step["auth_user"]["result"]["user_id"]
        host_id = by_step["host_account"]["result"]["account_id"]
        guest_id = by_step["guest_account"]["result"]["account_id"]
        child = child_run(dconn, run_id, "sync_signup")
        assert child["correlation_id"] == "test-user-signup"
        synced = {r["step"]: r for r in outbox(dconn, run_id=child["id"])}
        assert {s: (r["payload"]["table"], r["payload"]["recordId"]) for s, r in synced.items()} == {
            "user": ("user", user_id), "host_account": ("host_account", host_id),
            "guest_account": ("guest_account", guest_id)}
        assert synced["host_account"]["payload"]["fields"] == {"user_id": user_id}
        bubble = {"user_bubble_id": synced["user"]["result"]["bubble_id"],
                  "host_account_bubble_id": synced["host_account"]["result"]["bubble_id"],
                  "guest_account_bubble_id": synced["guest_account"]["result"]["bubble_id"]}
        assert child["output"] == bubble
        assert output == {"user_id": user_id, "host_account_id": host_id, "guest_account_id": guest_id,
                          "bubble": bubble}
        assert by_step["track_conversion"]["payload"]["properties"] == {"source": "demo"}
        tree = dconn.execute("select workflow, depth, parent_step, status from wf.run_tree(%s)", (run_id,)).fetchall()
        assert [tuple(r.values()) for r in tree] == [("user-signup", 0, None, "completed"),
                                                    ("signup-sync", 1, "sync_signup", "completed")]
    if workflow == "virtual-meeting-accepted":
        event = by_step["calendar_event"]["result"]
        assert by_step["invites"]["payload"]["eventId"] == event["event_id"]
        assert by_step["save_link"]["payload"]["link"] == event["link"]
        assert by_step["confirm_email"]["payload"]["variables"]["link"] == event["link"]
        assert by_step["reminder"]["payload"] == {
            "template_id": "meeting_reminder", "recipient_email": "grace@example.com",
            "variables": {"link": event["link"], "starts_at": INPUTS[workflow]["starts_at"]}}
    if workflow == "listing-published":
        url = by_step["publish"]["result"]["url"]
        assert url == "https://listings.example.com/l/l-42"
        assert by_step["seo"]["payload"] == {"url": url}
        # distribute maps over the channels (none in the input: the template's default), one call each
        channels = [by_step[f"distribute[{i}]"]["payload"] for i in range(2)]
        assert channels == [{"listingId": "l-42", "url": url, "channel": c} for c in ("partner-feed", "newsletter")]
        assert output["distribute"] == [by_step[f"distribute[{i}]"]["result"] for i in range(2)]
    if workflow == "listing-approval":
        url = by_step["publish"]["result"]["url"]
        assert by_step["email_approved"]["payload"]["variables"] == {"url": url, "moderator": "mod-1"}
        assert output == {"listing_id": "l-77", "decision": {"approved": True, "by": "mod-1"}, "url": url}
    if workflow == "order-fulfilment":
        assert by_step["track"]["payload"]["properties"] == {"order_id": "o-9", "sms_status": "succeeded"}
    if workflow == "notify-with-fallback":
        assert by_step["track"]["payload"]["properties"] == {"channel": "sms"}
    if workflow == "booking-payment":
        # the host confirmed: nothing was undone (no compensation step, no refund or release call)
        assert not [s for s in step_statuses(dconn, run_id) if s.endswith(":compensate")]
        kinds = {r["kind"] for r in dconn.execute("select kind from wf.events where run_id = %s", (run_id,))}
        assert "run_compensating" not in kinds
        charge_id = by_step["charge"]["result"]["charge_id"]
        reservation_id = by_step["reserve"]["result"]["reservation_id"]
        assert by_step["notify"]["payload"]["variables"] == {"booking_id": "b-7", "charge_id": charge_id}
        assert by_step["confirm"]["payload"] == {"orderId": "b-7", "reservationId": reservation_id,
                                                 "declined": False}
        assert by_step["charge"]["payload"]["currency"] == "EUR"  # the template's default


def test_a_booking_the_host_declines_releases_the_dates_then_refunds_the_charge(demo_gateway, demo_db, dconn):
    """booking-payment's saga: with fail_confirmation the host declines, confirm is dead at its first
    attempt (a 400 is not retried) and the run fails; the succeeded steps that have a compensation are
    undone by real calls, one at a time, the last one first — release, then refund, with the charge's id."""
    run_id = start(dconn, "booking-payment", {**INPUTS["booking-payment"], "booking_id": "b-8",
                                              "fail_confirmation": True})
    drain(demo_db, demo_gateway, dconn, run_id)
    overview = run_status(dconn, run_id)
    assert overview["status"] == "failed", overview
    confirm = step_row(dconn, run_id, "confirm")
    assert (confirm["status"], confirm["attempt"], confirm["http_status"]) == ("dead", 1, 400)
    assert "declined: the host declined the booking" in confirm["error"]

    rows = assert_one_outbox_row_per_step_call(
        dconn, run_id, {"charge", "reserve", "notify", "reserve:compensate", "charge:compensate"})
    assert [(r["step"], r["function"], r["action"]) for r in rows] == [
        ("charge", "payments", "charge"), ("reserve", "proposal", "reserve"), ("notify", "send-email", "send"),
        ("reserve:compensate", "proposal", "release"), ("charge:compensate", "payments", "refund")]
    by_step = {r["step"]: r for r in rows}
    charge_id = by_step["charge"]["result"]["charge_id"]
    assert by_step["charge:compensate"]["payload"] == {"chargeId": charge_id, "reason": "booking_not_confirmed"}
    assert by_step["charge:compensate"]["result"]["status"] == "refunded"
    assert by_step["reserve:compensate"]["payload"] == {
        "reservationId": by_step["reserve"]["result"]["reservation_id"]}
    # notify has no compensation: an email cannot be unsent
    assert "notify:compensate" not in step_statuses(dconn, run_id)
    kinds = [r["kind"] for r in dconn.execute(
        "select kind from wf.events where run_id = %s and kind like 'run_%%' order by id", (run_id,))]
    assert kinds[-2:] == ["run_compensating", "run_compensated"], kinds


# ---- the step kinds of DESIGN §10 in the templates ----------------------------------------------------


def insert_proposal(conn: psycopg.Connection, proposal_id: str) -> None:
    conn.execute("""insert into demo.proposal (id, guest_id, host_id, listing_id, guest_email, guest_phone)
                    values (%s, 'g-1', 'h-1', 'l-1', 'grace@example.com', '+14155550100')""", (proposal_id,))


def proposal_runs(conn: psycopg.Connection, proposal_id: str) -> list[str]:
    rows = conn.execute("""select id::text as id from wf.runs
                           where workflow = 'proposal-status-change' and input ->> 'id' = %s order by created_at""",
                        (proposal_id,)).fetchall()
    return [r["id"] for r in rows]


def test_a_proposal_accepted_in_the_table_is_stamped_by_the_sql_step_of_the_run_it_started(demo_gateway, demo_db,
                                                                                          dconn):
    insert_proposal(dconn, "p-300")
    dconn.execute("update demo.proposal set status = 'accepted' where id = 'p-300'")
    [run_id] = proposal_runs(dconn, "p-300")
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    row = dconn.execute("select status, accepted_at from demo.proposal where id = 'p-300'").fetchone()
    assert row["status"] == "accepted" and row["accepted_at"] is not None
    [recorded] = [r for r in outbox(dconn, run_id=run_id) if r["function"] == "sql"]
    assert recorded["result"] == {"proposal_id": "p-300", "status": "accepted", "found": True}
    assert step_row(dconn, run_id, "update_proposal")["output"] == recorded["result"]


def test_a_run_enqueued_for_a_pending_proposal_accepts_it_without_the_trigger_starting_a_second_run(
        demo_gateway, demo_db, dconn):
    insert_proposal(dconn, "p-301")
    run_id = start(dconn, "proposal-status-change", {**INPUTS["proposal-status-change"], "id": "p-301"})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    row = dconn.execute("select status, accepted_at from demo.proposal where id = 'p-301'").fetchone()
    assert row["status"] == "accepted" and row["accepted_at"] is not None
    # pending → accepted by the step itself: the proposal_accepted trigger stays out of it
    assert proposal_runs(dconn, "p-301") == [run_id]
    # and outside a step the trigger works as before (the setting the step uses does not linger)
    dconn.execute("update demo.proposal set status = 'pending' where id = 'p-301'")
    dconn.execute("update demo.proposal set status = 'accepted' where id = 'p-301'")
    assert len(proposal_runs(dconn, "p-301")) == 2


def test_a_listing_rejected_by_the_moderator_is_not_published_and_the_host_is_told_why(demo_gateway, demo_db,
                                                                                       dconn):
    run_id = start(dconn, "listing-approval", {**INPUTS["listing-approval"], "listing_id": "l-78"})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["current_steps"] == 'review: waiting for signal "moderated"'
    signal(dconn, run_id, "moderated", {"approved": False, "by": "mod-2", "reason": "photos missing"})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    assert step_statuses(dconn, run_id) == {"review": "succeeded", "publish": "skipped", "email_approved": "skipped",
                                            "email_rejected": "succeeded", "escalate": "skipped"}
    [row] = assert_one_outbox_row_per_step_call(dconn, run_id, {"review", "email_rejected"})
    assert row["payload"]["variables"] == {"listing_id": "l-78", "reason": "photos missing"}


def test_a_listing_nobody_moderates_within_48_hours_is_escalated_to_the_moderators(demo_gateway, demo_db, dconn):
    run_id = start(dconn, "listing-approval", {**INPUTS["listing-approval"], "listing_id": "l-79",
                                               "moderators_email": "mods@example.com"})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert step_row(dconn, run_id, "review")["status"] == "running"
    # 48 hours pass: the wait's timer (wake_at and its message in the internal stage) is due
    dconn.execute("update wf.steps set wake_at = now() - interval '1 second' where run_id = %s and name = 'review'",
                  (run_id,))
    make_visible(dconn, "_wf")
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    review = step_row(dconn, run_id, "review")
    assert (review["status"], review["error"]) == ("failed", 'no signal "moderated" within 172800 seconds')
    assert step_statuses(dconn, run_id)["publish"] == "skipped"
    [row] = assert_one_outbox_row_per_step_call(dconn, run_id, {"escalate"})
    assert row["payload"] == {"template_id": "moderation_overdue", "recipient_email": "mods@example.com",
                              "variables": {"listing_id": "l-79", "host_id": "h-1", "error": review["error"]}}
    # a signal after the run ended is refused (false), not kept
    assert not dconn.execute("select wf.signal(%s, 'moderated', '{}') as ok", (run_id,)).fetchone()["ok"]


def test_the_meeting_reminder_waits_until_24_hours_before_the_meeting(demo_gateway, demo_db, dconn):
    starts_at = hours_from_now(72)
    run_id = start(dconn, "virtual-meeting-accepted", {**INPUTS["virtual-meeting-accepted"], "meeting_id": "vm-8",
                                                       "starts_at": starts_at})
    drain(demo_db, demo_gateway, dconn, run_id)
    overview = run_status(dconn, run_id)
    assert overview["status"] == "running"
    assert overview["current_steps"].startswith("reminder: not before ")
    reminder = step_row(dconn, run_id, "reminder")
    assert (reminder["status"], reminder["attempt"]) == ("queued", 0)  # waiting uses no attempt
    due = datetime.fromisoformat(starts_at) - timedelta(days=1)
    assert abs((reminder["queued_at"] - due).total_seconds()) < 2
    assert "reminder" not in {r["step"] for r in outbox(dconn, run_id=run_id)}

    # two days pass: the meeting is now 20 hours away (its time in the run moves, as the clock cannot)
    dconn.execute("update wf.runs set input = jsonb_set(input, '{starts_at}', to_jsonb(%s::text)) where id = %s",
                  (hours_from_now(20), run_id))
    make_visible(dconn, "send-email")
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    assert step_row(dconn, run_id, "reminder")["attempt"] == 1
    assert_one_outbox_row_per_step_call(dconn, run_id, {s["name"] for s in
                                                        TEMPLATES["virtual-meeting-accepted"]["steps"]})


def test_notify_with_fallback_emails_when_the_sms_number_is_bad(demo_gateway, demo_db, dconn):
    run_id = start(dconn, "notify-with-fallback", {**INPUTS["notify-with-fallback"], "phone": "not-a-number"})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    statuses = step_statuses(dconn, run_id)
    assert statuses["sms"] != "succeeded"
    sms = dconn.execute("select attempt, error, http_status from wf.steps where run_id = %s and name = 'sms'",
                        (run_id,)).fetchone()
    # the 400 is final: one attempt, no retry
    assert (sms["attempt"], sms["http_status"]) == (1, 400)
    assert "to: must be a phone number" in sms["error"]
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, {"email_fallback", "track"})
    assert {r["step"]: r for r in rows}["track"]["payload"]["properties"] == {"channel": "email"}


def test_booking_reminder_sends_the_reminder_when_its_delay_is_over(demo_gateway, demo_db, dconn):
    run_id = start(dconn, "booking-reminder", INPUTS["booking-reminder"])
    once(demo_db, demo_gateway)
    assert run_status(dconn, run_id)["status"] == "running"
    assert [r["step"] for r in outbox(dconn, run_id=run_id)] == ["confirm"]
    make_visible(dconn, "send-email")  # 24 hours later
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, {"confirm", "remind"})
    assert rows[1]["payload"]["template_id"] == "booking_reminder"


def wf_cli(*args: str, dsn: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_") and k != "DATABASE_URL"}
    return subprocess.run([str(WF), *args], cwd=REPO, env={**env, "WF_DATABASE_URL": dsn}, capture_output=True,
                          text=True, timeout=60)


def test_a_rejected_bubble_key_dead_letters_the_run_and_wf_retry_completes_it_once_fixed(
        demo_gateway, demo_db, dconn, bubble_key_invalid):
    """The demo's failure: listing-published while Bubble rejects the key → sync_bubble dead at the first
    attempt (no retries despite max_retries 2), the run failed and in the DLQ; fix the key, `wf retry`,
    and the run completes — the steps that had succeeded are not called again."""
    run_id = start(dconn, "listing-published", INPUTS["listing-published"])
    drain(demo_db, demo_gateway, dconn, run_id)
    overview = run_status(dconn, run_id)
    assert overview["status"] == "failed", overview
    assert KEY_REJECTED in overview["last_error"]
    statuses = step_statuses(dconn, run_id)
    assert statuses["sync_bubble"] == "dead", statuses
    assert [m for m in dlq(dconn) if m["message"].get("run_id") == run_id]
    assert dconn.execute("select attempt from wf.steps where run_id = %s and name = 'sync_bubble'",
                         (run_id,)).fetchone()["attempt"] == 1
    before = outbox(dconn, run_id=run_id)
    # the steps that ran before the run failed (the others, cancelled with it, run after the retry)
    assert {"publish"} <= {r["step"] for r in before} <= {"publish", "email_host", "seo", "host_count"}

    set_bubble_key_valid(dconn)
    retried = wf_cli("retry", run_id, dsn=demo_db)
    assert retried.returncode == 0, retried.stderr
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed", run_status(dconn, run_id)
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, {s["name"] for s in
                                                               TEMPLATES["listing-published"]["steps"]})
    assert rows[:len(before)] == before


def test_listing_published_distributes_to_each_channel_of_its_input_in_one_call_per_channel(
        demo_gateway, demo_db, dconn):
    channels = ["partner-feed", "newsletter", "social.x"]
    run_id = start(dconn, "listing-published", {**INPUTS["listing-published"], "listing_id": "l-45",
                                                "channels": channels})
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, {s["name"] for s in
                                                               TEMPLATES["listing-published"]["steps"]})
    sent = [r for r in rows if r["function"] == "distribution"]
    assert sorted((r["step"], r["payload"]["channel"]) for r in sent) == [
        ("distribute[0]", "partner-feed"), ("distribute[1]", "newsletter"), ("distribute[2]", "social.x")]
    output = step_row(dconn, run_id, "distribute")["output"]
    assert [o["channel"] for o in output] == channels
    assert len({o["distribution_id"] for o in output}) == 3


@pytest.fixture
def bubble_sync_paused(demo_db: str) -> Iterator[None]:
    """`wf stage pause bubble-sync` for the test (resumed afterwards, whatever happens)."""
    paused = wf_cli("stage", "pause", "bubble-sync", dsn=demo_db)
    assert (paused.returncode, paused.stdout) == (0, "stage bubble-sync paused\n"), paused.stderr
    try:
        yield
    finally:
        wf_cli("stage", "resume", "bubble-sync", dsn=demo_db)


def test_a_paused_bubble_sync_stage_holds_the_sync_while_the_key_is_revoked_and_resumed_it_completes_the_run(
        demo_gateway, demo_db, dconn, bubble_key_invalid, bubble_sync_paused):
    """The demo's other way through the revoked key: pause the stage, so sync_bubble waits in its queue
    (no call, no attempt used) while the rest of the run goes on; fix the key, resume the stage, and the run
    completes without a single failed attempt — nothing in the DLQ, nothing to retry."""
    run_id = start(dconn, "listing-published", {**INPUTS["listing-published"], "listing_id": "l-44"})
    drain(demo_db, demo_gateway, dconn, run_id)
    overview = run_status(dconn, run_id)
    assert overview["status"] == "running", overview
    assert "sync_bubble" in overview["current_steps"]
    sync = step_row(dconn, run_id, "sync_bubble")
    assert (sync["status"], sync["attempt"]) == ("queued", 0)
    stage = dconn.execute("select paused, depth from wf.stage_health where stage = 'bubble-sync'").fetchone()
    assert stage["paused"] is True and stage["depth"] >= 1, stage
    # the steps that do not wait for the sync went on; distribute waits for it
    assert {r["step"] for r in outbox(dconn, run_id=run_id)} == {"publish", "email_host", "seo", "host_count"}

    set_bubble_key_valid(dconn)
    resumed = wf_cli("stage", "resume", "bubble-sync", dsn=demo_db)
    assert resumed.stdout == "stage bubble-sync resumed\n", resumed.stderr
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed", run_status(dconn, run_id)
    assert step_row(dconn, run_id, "sync_bubble")["attempt"] == 1
    kinds = {r["kind"] for r in dconn.execute("select kind from wf.events where run_id = %s", (run_id,))}
    assert not kinds & {"retrying", "failed", "dead"}, kinds
    assert not [m for m in dlq(dconn) if m["message"].get("run_id") == run_id]
    assert_one_outbox_row_per_step_call(dconn, run_id, {s["name"] for s in TEMPLATES["listing-published"]["steps"]})

def test_a_rejected_bubble_key_fails_the_signup_sync_child_and_wf_retry_of_the_signup_starts_a_new_one(
        demo_gateway, demo_db, dconn, bubble_key_invalid):
    """user-signup's records go to Bubble in its child run: the rejected key kills the child's first step,
    the child fails, and so does sync_signup (an attempt is one child run; max_retries 0, the child retried
    its own steps) and the signup. `wf retry` of the signup, once the key is fixed, starts a second child."""
    input = {**INPUTS["user-signup"], "email": "bob@example.com", "first_name": "Bob"}
    run_id = start(dconn, "user-signup", input)
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "failed"
    assert step_statuses(dconn, run_id)["sync_signup"] == "dead"
    first = child_run(dconn, run_id, "sync_signup")
    assert first["status"] == "failed"
    assert step_row(dconn, first["id"], "user")["error"] == KEY_REJECTED
    assert outbox(dconn, run_id=first["id"]) == []

    set_bubble_key_valid(dconn)
    retried = wf_cli("retry", run_id, dsn=demo_db)
    assert retried.returncode == 0, retried.stderr
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed", run_status(dconn, run_id)
    assert child_run(dconn, run_id, "sync_signup")["id"] != first["id"]
    assert [(r["workflow"], r["depth"], r["status"]) for r in dconn.execute(
        "select * from wf.run_tree(%s)", (run_id,)).fetchall()] == [
        ("user-signup", 0, "completed"), ("signup-sync", 1, "failed"), ("signup-sync", 1, "completed")]
    assert_one_outbox_row_per_step_call(dconn, run_id, {s["name"] for s in TEMPLATES["user-signup"]["steps"]})


def sync_input(record_id: str, edit: int) -> dict[str, Any]:
    return {"table": "listing", "record_id": record_id, "fields": {"edit": edit}}


def test_a_burst_of_edits_to_one_listing_becomes_one_sync_carrying_the_last_edit(demo_gateway, demo_db, dconn):
    """external-sync's debounce (the demo's burst): 20 enqueues for one record before its run starts return
    that run, each replacing its input; nothing is called before the debounce is over; then one sync."""
    ids = [enqueue(dconn, "external-sync", sync_input("l-80", i), correlation_id="test-burst") for i in range(1, 21)]
    [run_id] = set(ids)
    assert run_status(dconn, run_id)["status"] == "scheduled"
    once(demo_db, demo_gateway)  # the debounce is not over: nothing is due
    assert outbox(dconn, run_id=run_id) == []
    debounce_over(dconn, run_id)
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    rows = assert_one_outbox_row_per_step_call(dconn, run_id, {"sync", "track"})
    [sync] = [r for r in rows if r["step"] == "sync"]
    assert sync["payload"] == {"table": "listing", "recordId": "l-80", "operation": "UPDATE", "fields": {"edit": 20}}
    kinds = Counter(r["kind"] for r in dconn.execute("select kind from wf.events where run_id = %s", (run_id,)))
    assert kinds["run_debounced"] == 19


@pytest.fixture
def analytics_paused(demo_db: str) -> Iterator[None]:
    """`wf stage pause analytics` for the test (resumed afterwards, whatever happens)."""
    paused = wf_cli("stage", "pause", "analytics", dsn=demo_db)
    assert paused.returncode == 0, paused.stderr
    try:
        yield
    finally:
        wf_cli("stage", "resume", "analytics", dsn=demo_db)


def test_a_second_sync_of_a_record_waits_for_the_first_to_end(demo_gateway, demo_db, dconn, analytics_paused):
    """external-sync's concurrency key (the demo's l-78): while a sync of the record is in flight (its track
    step waits in the paused analytics stage) a second one is held; it starts when the first ends."""
    first = start(dconn, "external-sync", sync_input("l-81", 1))
    drain(demo_db, demo_gateway, dconn, first)
    assert run_status(dconn, first)["current_steps"] == "track (queued)"
    second = start(dconn, "external-sync", sync_input("l-81", 2))
    assert second != first  # the first has started: no debounce into it
    assert run_status(dconn, second)["current_steps"] == 'waiting for concurrency key record_id="l-81"'
    once(demo_db, demo_gateway)
    assert outbox(dconn, run_id=second) == []

    resumed = wf_cli("stage", "resume", "analytics", dsn=demo_db)
    assert resumed.returncode == 0, resumed.stderr
    drain(demo_db, demo_gateway, dconn, first)
    assert run_status(dconn, first)["status"] == "completed"
    drain(demo_db, demo_gateway, dconn, second)  # queued by the transaction that ended the first
    assert run_status(dconn, second)["status"] == "completed"
    times = dconn.execute("select f.finished_at, s.started_at from wf.runs f, wf.runs s where f.id = %s and s.id = %s",
                          (first, second)).fetchone()
    assert times["started_at"] >= times["finished_at"]
    for run_id, edit in ((first, 1), (second, 2)):
        rows = assert_one_outbox_row_per_step_call(dconn, run_id, {"sync", "track"})
        assert [r["payload"]["fields"] for r in rows if r["step"] == "sync"] == [{"edit": edit}]


def test_a_lost_answer_is_replayed_from_the_outbox_when_the_worker_retries(demo_gateway, demo_db, dconn):
    """A function that did its work but whose answer was lost is called again with the same webhook-id
    (the worker's retry): it answers from demo.outbox and the side effect happens once."""
    run_id = start(dconn, "external-sync", INPUTS["external-sync"])
    # the side effect of `sync` happened, as if an earlier attempt's answer had been lost on the way back
    earlier = post(demo_gateway, "bubble-sync", "sync_single",
                   {"table": "listing", "recordId": "l-1", "operation": "UPDATE"}, f"{run_id}:sync",
                   run_id=run_id, step="sync").data
    drain(demo_db, demo_gateway, dconn, run_id)
    assert run_status(dconn, run_id)["status"] == "completed"
    assert_one_outbox_row_per_step_call(dconn, run_id, {"sync", "track"})
    assert dconn.execute("select output from wf.steps where run_id = %s and name = 'sync'",
                         (run_id,)).fetchone()["output"] == earlier


def test_the_functions_source_has_no_wildcard_cors_and_reads_the_environment_lazily():
    """ADR-015's anti-patterns, checked in the source of the demo functions and their helper."""
    sources = {p: p.read_text() for p in (REPO / "supabase/functions").glob("*/index.ts")
               if p.parent.name in FUNCTIONS}
    sources[Path("_shared/outbox.ts")] = (REPO / "supabase/functions/_shared/outbox.ts").read_text()
    for path, text in sources.items():
        assert "Access-Control-Allow-Origin" not in text, path
        # Deno.env is read inside functions only, never at module scope
        for line in text.splitlines():
            if "Deno.env" in line:
                assert line.startswith((" ", "\t")), (path, line)
