"""Answer classification (README, Edge function contract) and the call headers, no database, no network."""

from __future__ import annotations

import email.utils
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook
from wf.calls import EXCERPT_CHARS, MAX_RETRY_AFTER, Call, Caller, classify, parse_retry_after


def body(value: object) -> bytes:
    return json.dumps(value).encode()


# ---- success ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202])
def test_success_true_gives_its_data_as_output(status):
    outcome = classify(status, body({"success": True, "data": {"id": 1, "list": [1, None]}}), None)
    assert outcome.ok
    assert outcome.output == {"id": 1, "list": [1, None]}
    assert outcome.http_status == status
    assert outcome.error is None


def test_success_without_data_is_an_empty_output():
    outcome = classify(200, body({"success": True}), None)
    assert outcome.ok and outcome.output is None


def test_data_keeps_its_json_type():
    assert classify(200, body({"success": True, "data": [1, "two"]}), None).output == [1, "two"]
    assert classify(200, body({"success": True, "data": 3}), None).output == 3


# ---- retried ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 429])
def test_5xx_408_429_are_retried(status):
    outcome = classify(status, body({"success": False, "error": "down"}), None)
    assert (outcome.ok, outcome.retryable, outcome.http_status) == (False, True, status)
    assert outcome.error == f"HTTP {status}: down"


def test_5xx_with_a_body_that_is_not_json_keeps_an_excerpt():
    outcome = classify(502, b"<html>Bad Gateway</html>", None)
    assert outcome.retryable
    assert outcome.error == "HTTP 502: <html>Bad Gateway</html>"


def test_429_honours_retry_after_in_seconds():
    outcome = classify(429, body({"success": False, "error": "slow down"}), "17")
    assert (outcome.retryable, outcome.retry_after, outcome.error) == (True, 17, "HTTP 429: slow down")


def test_429_honours_retry_after_as_an_http_date():
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    outcome = classify(429, b"", when)
    assert outcome.retryable
    assert 118 <= outcome.retry_after <= 121


def test_503_passes_retry_after_on_too():
    assert classify(503, b"", "5").retry_after == 5


def test_success_false_retryable_true_is_retried():
    outcome = classify(200, body({"success": False, "error": "busy", "retryable": True}), None)
    assert (outcome.ok, outcome.retryable, outcome.error, outcome.http_status) == (False, True, "busy", 200)


@pytest.mark.parametrize("flag", ["true", 1, None, False])
def test_only_a_json_true_retryable_retries(flag):
    outcome = classify(200, body({"success": False, "error": "no", "retryable": flag}), None)
    assert not outcome.retryable


# ---- not retried ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 422, 451])
def test_other_4xx_are_not_retried(status):
    outcome = classify(status, body({"success": False, "error": "nope"}), "30")
    assert (outcome.ok, outcome.retryable, outcome.http_status) == (False, False, status)
    assert outcome.error == f"HTTP {status}: nope"
    assert outcome.retry_after is None


@pytest.mark.parametrize("status", [301, 302, 303, 304, 307, 308])
def test_3xx_is_not_retried(status):
    outcome = classify(status, b"", None)
    assert (outcome.ok, outcome.retryable, outcome.http_status) == (False, False, status)


def test_success_false_is_not_retried():
    outcome = classify(200, body({"success": False, "error": "business rule violated"}), None)
    assert (outcome.ok, outcome.retryable, outcome.error) == (False, False, "business rule violated")


def test_success_false_without_error_says_so():
    assert classify(200, body({"success": False}), None).error == "function answered success: false"


@pytest.mark.parametrize("raw", [
    b"this is not json",
    b"",
    b"[1, 2]",
    b'"success"',
    b"null",
    b'{"data": {}}',
    b'{"success": "yes"}',
    b'{"success": 1}',
    b'{"success": true',
])
def test_a_2xx_body_that_breaks_the_contract_is_not_retried(raw):
    outcome = classify(200, raw, None)
    assert (outcome.ok, outcome.retryable, outcome.http_status) == (False, False, 200)
    assert outcome.error.startswith("response breaks the contract")
    assert raw.decode() in outcome.error


def test_error_excerpts_are_bounded():
    huge = b"x" * 100_000
    for status in (200, 400, 500):
        error = classify(status, huge, None).error
        assert len(error) < EXCERPT_CHARS + 100
        assert error.endswith("…")


def test_excerpt_survives_bytes_that_are_not_utf8():
    assert "\ufffd" in classify(500, b"\xff\xfe broken", None).error


# ---- Retry-After ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None),
    ("", None),
    ("0", 0),
    ("5", 5),
    (" 42 ", 42),
    ("abc", None),
    ("-1", None),
    ("1.5", None),
    ("99999999999", MAX_RETRY_AFTER),
])
def test_retry_after_seconds(value, seconds):
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize("fmt", [
    lambda d: email.utils.format_datetime(d, usegmt=True),  # IMF-fixdate
    lambda d: d.strftime("%A, %d-%b-%y %H:%M:%S GMT"),  # RFC 850
    lambda d: d.strftime("%a %b %d %H:%M:%S %Y"),  # asctime, no zone: UTC
])
def test_retry_after_http_date(fmt):
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=90)
    assert 88 <= parse_retry_after(fmt(when)) <= 91


def test_retry_after_date_in_the_past_is_now():
    past = email.utils.format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert parse_retry_after(past) == 0


def test_retry_after_date_far_ahead_is_capped():
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(days=30), usegmt=True)
    assert parse_retry_after(later) == MAX_RETRY_AFTER


# ---- headers ------------------------------------------------------------------------------------------

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CALL = Call("0b8e0d9e-1111-4222-8333-444455556666", "notify_host", 3, "send-email", "send", {"a": 1}, 5.0, "corr-1")


def test_headers_carry_the_token_the_run_and_a_verifiable_signature():
    caller = Caller("http://functions.test/functions/v1", "tok", SECRET, max_connections=1)
    raw = b'{"action":"send","payload":{"a":1}}'
    headers = caller.headers(CALL, raw)
    assert headers["authorization"] == "Bearer tok"
    assert headers["content-type"] == "application/json"
    assert (headers["x-wf-run"], headers["x-wf-step"], headers["x-wf-attempt"]) == (CALL.run_id, "notify_host", "3")
    assert headers["x-correlation-id"] == "corr-1"
    assert headers["webhook-id"] == f"{CALL.run_id}:notify_host"
    assert Webhook(SECRET).verify(raw, headers) == {"action": "send", "payload": {"a": 1}}
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(raw.replace(b"1", b"2"), headers)


def test_webhook_id_is_the_same_on_every_attempt():
    caller = Caller("http://functions.test/functions/v1", None, SECRET, max_connections=1)
    ids = {caller.headers(Call(CALL.run_id, "s", n, "f", "a", {}, 1.0), b"{}")["webhook-id"] for n in (1, 2, 7)}
    assert ids == {f"{CALL.run_id}:s"}


def test_no_token_and_no_secret_means_no_such_headers():
    headers = Caller("http://x/functions/v1", None, None, max_connections=1).headers(
        Call("r", "s", 1, "f", "a", {}, 1.0), b"{}")
    assert not {"authorization", "webhook-id", "webhook-signature", "webhook-timestamp",
                "x-correlation-id"} & set(headers)


def test_a_failure_keeps_an_excerpt_of_a_body_that_says_more_than_the_error():
    body = b'{"success": false, "error": "card declined", "decline_code": "insufficient_funds"}'
    outcome = classify(402, body, None)
    assert outcome.error.startswith("HTTP 402: card declined | body: ")
    assert "insufficient_funds" in outcome.error
