"""wf.define: validation naming the place, versioning, activation, no partial state."""

from __future__ import annotations

import copy

import psycopg
import pytest
from psycopg import errors
from psycopg.types.json import Jsonb
from wfsql import chain, claim, complete, counts, define, enqueue, run_status

DEFINITION_TABLES = ("wf.definitions", "wf.definition_steps", "wf.workflows", "wf.stages")
# what a fresh install holds: no definitions, and the internal stage `_wf` (workflow, sql, wait_for steps)
NOTHING_DEFINED = dict.fromkeys(DEFINITION_TABLES, 0) | {"wf.stages": 1}


def step(name: str = "a", **extra: object) -> dict[str, object]:
    return {"name": name, "function": "echo", "action": "go", **extra}


def workflow(*steps: dict[str, object], **top: object) -> dict[str, object]:
    return {"name": "bad", **top, "steps": list(steps)}


# --- versioning -------------------------------------------------------------------------------


def test_identical_definition_returns_the_same_version(conn):
    assert define(conn, chain()) == 1
    assert define(conn, chain()) == 1
    assert counts(conn, "wf.definitions") == {"wf.definitions": 1}


def test_key_order_does_not_make_a_definition_different(conn):
    definition = chain()
    reordered = dict(reversed(list(definition.items())))
    reordered["steps"] = [dict(reversed(list(s.items()))) for s in definition["steps"]]
    assert define(conn, definition) == 1
    assert define(conn, reordered) == 1


def test_changed_definition_creates_the_next_version(conn):
    assert define(conn, chain(n=2)) == 1
    assert define(conn, chain(n=3)) == 2
    row = conn.execute("select current_version from wf.workflows where name = 'chain'").fetchone()
    assert row["current_version"] == 2


def test_all_versions_are_kept(conn):
    v1, v2 = chain(n=2), chain(n=3)
    assert [define(conn, d) for d in (v1, v2, v1)] == [1, 2, 3]
    rows = conn.execute(
        "select version, definition from wf.definitions where workflow = 'chain' order by version"
    ).fetchall()
    assert [(r["version"], r["definition"]) for r in rows] == [(1, v1), (2, v2), (3, v1)]
    per_version = conn.execute(
        """select version, count(*) as n from wf.definition_steps where workflow = 'chain'
           group by version order by version"""
    ).fetchall()
    assert [(r["version"], r["n"]) for r in per_version] == [(1, 2), (2, 3), (3, 2)]


def test_runs_stay_on_the_version_they_started_with(conn):
    old = chain(n=2)
    define(conn, old)
    old_run = enqueue(conn, "chain")
    new = copy.deepcopy(old)
    new["steps"][1]["action"] = "go-v2"
    new["steps"].append({"name": "s3", "function": "echo", "action": "go"})
    assert define(conn, new) == 2
    new_run = enqueue(conn, "chain")

    versions = conn.execute("select id::text, version from wf.runs").fetchall()
    assert {r["id"]: r["version"] for r in versions} == {old_run: 1, new_run: 2}
    step_names = conn.execute(
        "select count(*) as n from wf.steps where run_id = %s", (old_run,)
    ).fetchone()
    assert step_names["n"] == 2

    for task in claim(conn, "echo"):  # both runs' s1
        complete(conn, task)
    by_run = {t["run_id"]: t for t in (dict(t, run_id=str(t["run_id"])) for t in claim(conn, "echo"))}
    assert by_run[old_run]["action"] == "go"
    assert by_run[new_run]["action"] == "go-v2"
    complete(conn, by_run[old_run])
    assert run_status(conn, old_run) == "completed"  # v1 has no s3
    assert run_status(conn, new_run) == "running"


# --- bad definitions: each rejected with SQLSTATE 22023 and a message naming the place --------

BAD_DEFINITIONS = {
    "not_an_object": ([step()], "definition must be a JSON object"),
    "bad_workflow_name": (
        {"name": "Bad Name", "steps": [step()]}, r'definition\.name must match .* got "Bad Name"'),
    "missing_workflow_name": ({"steps": [step()]}, r"definition\.name must match .* got nothing"),
    "unknown_top_level_key": (workflow(step(), retries=3), 'workflow bad: unknown key "retries"'),
    "unknown_step_key": (workflow(step(fn="x")), 'workflow bad: step a: unknown key "fn"'),
    "no_steps": (workflow(), "workflow bad: steps must be a non-empty array"),
    "steps_missing": ({"name": "bad"}, "workflow bad: steps must be a non-empty array"),
    "step_not_an_object": (workflow("a"), r"workflow bad: steps\[0\] must be an object"),
    "bad_step_name": (workflow(step("a b")), r"workflow bad: steps\[0\]\.name must match"),
    "duplicate_step_names": (
        workflow(step("a"), step("b"), step("a")),
        r'workflow bad: steps\[2\]: duplicate step name "a"'),
    "unknown_dependency": (
        workflow(step("a"), step("b", depends_on=["a", "zzz"])),
        'workflow bad: step b: depends_on names unknown step "zzz"'),
    "depends_on_itself": (
        workflow(step("a", depends_on=["a"])), "workflow bad: step a: depends_on names the step itself"),
    "dependency_cycle": (
        workflow(step("a", depends_on=["c"]), step("b", depends_on=["a"]), step("c", depends_on=["b"])),
        "workflow bad: depends_on forms a cycle through steps a, b, c"),
    "cycle_through_list_order": (
        workflow(step("a", depends_on=["b"]), step("b")),
        "workflow bad: depends_on forms a cycle through steps a, b"),
    "depends_on_not_a_list": (
        workflow(step("a"), step("b", depends_on="a")),
        "workflow bad: step b: depends_on must be an array of step names"),
    "invalid_function_name": (
        workflow(step(function="Send Email")), r"workflow bad: step a: function must match .*Send Email"),
    "function_name_with_a_slash": (
        workflow(step(function="../admin")), "workflow bad: step a: function must match"),
    "function_name_too_long": (workflow(step(function="f" * 48)), "workflow bad: step a: function must match"),
    "missing_function": (
        {"name": "bad", "steps": [{"name": "a", "action": "go"}]},
        "workflow bad: step a: needs exactly one of function, workflow, sql, wait_for, got none"),
    "missing_action": (
        {"name": "bad", "steps": [{"name": "a", "function": "echo"}]},
        "workflow bad: step a: action must be a non-empty string"),
    "unbalanced_template": (
        workflow(step(payload_template={"to": "{{ email"})),
        "workflow bad: step a: payload_template: template does not parse"),
    "nested_unbalanced_template": (
        workflow(step(payload_template={"a": {"b": ["ok", "{% if x %}{{ y }"]}})),
        "workflow bad: step a: payload_template: template does not parse"),
    "empty_template_expression": (
        workflow(step(payload_template={"to": "{{ }}"})),
        r"workflow bad: step a: payload_template: template does not parse \(empty expression\)"),
    "unbalanced_brackets_in_template": (
        workflow(step(payload_template={"to": "{{ items[0 }}"})),
        r"workflow bad: step a: payload_template: template does not parse \(unbalanced brackets"),
    "unparsable_when": (workflow(step(when="{{ x ==")), "workflow bad: step a: when: template does not parse"),
    "when_not_a_string": (workflow(step(when=True)), "workflow bad: step a: when must be a template string"),
    "payload_template_not_an_object": (
        workflow(step(payload_template=["a"])), "workflow bad: step a: payload_template must be a JSON object"),
    "bad_on_failure": (
        workflow(step(on_failure="explode")), 'workflow bad: step a: on_failure must be .* got "explode"'),
    "negative_max_retries": (
        workflow(step(), max_retries=-1), r"workflow bad\.max_retries must be an integer between 0 and 100, got -1"),
    "max_retries_as_a_string": (
        workflow(step(), max_retries="3"), r'workflow bad\.max_retries must be an integer .* got "3"'),
    "fractional_timeout": (
        workflow(step(timeout_seconds=1.5)), r"workflow bad: step a\.timeout_seconds must be an integer .* got 1\.5"),
    "zero_timeout": (workflow(step(timeout_seconds=0)), r"step a\.timeout_seconds must be an integer between 1"),
    "negative_delay": (workflow(step(delay_seconds=-5)), r"step a\.delay_seconds must be an integer between 0"),
    "huge_visibility_timeout": (
        workflow(step(), visibility_timeout=10**9), r"workflow bad\.visibility_timeout must be an integer"),
    "backoff_not_an_object": (workflow(step(backoff=5)), r"step a\.backoff must be an object"),
    "unknown_backoff_key": (
        workflow(step(backoff={"base": 5})), r'workflow bad: step a\.backoff: unknown key "base"'),
    "backoff_factor_below_one": (
        workflow(step(), backoff={"factor": 0.5}), r"workflow bad\.backoff\.factor must be a number between 1 and 10"),
    "backoff_zero_base": (
        workflow(step(backoff={"base_seconds": 0})), r"step a\.backoff\.base_seconds must be an integer between 1"),
    "backoff_negative_delay": (
        workflow(step(backoff={"delays": [60, -1]})), r"step a\.backoff\.delays must hold whole seconds"),
    "backoff_empty_delays": (workflow(step(backoff={"delays": []})), r"step a\.backoff\.delays must be a non-empty"),
    "required_fields_not_strings": (
        workflow(step(), required_fields=["a", 1]), "workflow bad: required_fields must be an array of strings"),
    "too_many_steps": (
        workflow(*[step(f"s{i}") for i in range(201)]), "workflow bad: at most 200 steps, got 201"),
}


@pytest.mark.parametrize("definition, message", BAD_DEFINITIONS.values(), ids=BAD_DEFINITIONS.keys())
def test_bad_definition_is_rejected_naming_the_place(shared_conn, definition, message):
    with pytest.raises(errors.InvalidParameterValue, match=message):
        define(shared_conn, definition)
    assert counts(shared_conn, *DEFINITION_TABLES) == NOTHING_DEFINED


def test_null_definition_is_rejected(shared_conn):
    with pytest.raises(errors.InvalidParameterValue, match="definition must be a JSON object"):
        shared_conn.execute("select wf.define(null)")


def test_rejected_definition_leaves_nothing_behind(conn):
    define(conn, chain("other"))
    before = counts(conn, *DEFINITION_TABLES, "pgmq.meta")
    # a new function with a good step first, then a bad one: validation of the whole definition
    # happens before anything is stored
    definition = workflow(step("a", function="fresh-fn"), step("b", depends_on=["nope"]))
    with pytest.raises(errors.InvalidParameterValue):
        define(conn, definition)
    assert counts(conn, *DEFINITION_TABLES, "pgmq.meta") == before


def test_define_rejected_after_creating_a_stage_leaves_no_stage_or_queue(conn):
    # foo-bar and foo_bar would share the queue wf_foo_bar: the first stage (and its queue) is
    # created before the second is refused, and both must roll back
    definition = workflow(step("a", function="foo-bar"), step("b", function="foo_bar"))
    with pytest.raises(errors.InvalidParameterValue, match="function foo_bar would share queue wf_foo_bar"):
        define(conn, definition)
    assert counts(conn, *DEFINITION_TABLES) == NOTHING_DEFINED
    queues = conn.execute("select queue_name from pgmq.list_queues() order by 1").fetchall()
    assert [q["queue_name"] for q in queues] == ["wf__wf", "wf_dlq"]


def test_rejected_new_version_keeps_the_current_one(conn):
    define(conn, chain())
    broken = chain()
    broken["steps"][1]["depends_on"] = ["s9"]
    with pytest.raises(errors.InvalidParameterValue):
        define(conn, broken)
    row = conn.execute("select current_version from wf.workflows where name = 'chain'").fetchone()
    assert row["current_version"] == 1
    assert counts(conn, "wf.definitions") == {"wf.definitions": 1}


def test_longest_function_name_gets_a_queue_within_pgmq_limits(conn):
    name = "f" * 47
    define(conn, workflow(step(function=name)))
    queue = conn.execute("select queue from wf.stages where name = %s", (name,)).fetchone()["queue"]
    assert len(queue) <= 47 and queue.startswith("wf_fff")
    enqueue(conn, "bad")
    [task] = claim(conn, name)
    assert task["function"] == name


# --- SQL injection through names ----------------------------------------------------------------

INJECTION = "x'; drop table wf.runs; --"


@pytest.mark.parametrize(
    "definition",
    [
        workflow(step(function=INJECTION)),
        workflow(step(INJECTION)),
        {"name": INJECTION, "steps": [step()]},
        workflow(step(), step("b", depends_on=[INJECTION])),
    ],
    ids=["function", "step", "workflow", "depends_on"],
)
def test_sql_injection_through_a_name_is_rejected_and_harms_nothing(shared_conn, definition):
    with pytest.raises(errors.InvalidParameterValue):
        define(shared_conn, definition)
    assert shared_conn.execute("select to_regclass('wf.runs') is not null as ok").fetchone()["ok"]
    assert counts(shared_conn, *DEFINITION_TABLES) == NOTHING_DEFINED


def test_sql_injection_through_enqueue_and_claim_names_is_harmless(conn):
    define(conn, chain())
    with pytest.raises(errors.NoDataFound, match="unknown workflow x'; drop table"):
        enqueue(conn, INJECTION)
    with pytest.raises(errors.NoDataFound, match="unknown stage x'; drop table"):
        claim(conn, INJECTION)
    assert conn.execute("select to_regclass('wf.runs') is not null as ok").fetchone()["ok"]
    assert enqueue(conn, "chain")


# --- activation ---------------------------------------------------------------------------------


def test_enqueue_of_an_inactive_workflow_raises_55000(conn):
    define(conn, chain())
    assert conn.execute("select wf.deactivate('chain') as ok").fetchone()["ok"] is True
    with pytest.raises(errors.ObjectNotInPrerequisiteState, match="workflow chain is inactive"):
        enqueue(conn, "chain")
    assert counts(conn, "wf.runs") == {"wf.runs": 0}


def test_activate_lets_runs_start_again(conn):
    define(conn, chain())
    conn.execute("select wf.deactivate('chain')")
    conn.execute("select wf.activate('chain')")
    run_id = enqueue(conn, "chain")
    assert run_status(conn, run_id) == "pending"


def test_deactivate_lets_started_runs_finish(conn):
    define(conn, chain(n=1))
    run_id = enqueue(conn, "chain")
    conn.execute("select wf.deactivate('chain')")
    [task] = claim(conn, "echo")
    assert complete(conn, task)
    assert run_status(conn, run_id) == "completed"


@pytest.mark.parametrize("fn", ["activate", "deactivate"])
def test_activation_of_an_unknown_workflow_raises_naming_it(shared_conn, fn):
    with pytest.raises(errors.NoDataFound, match="unknown workflow nope"):
        shared_conn.execute(f"select wf.{fn}('nope')")


@pytest.mark.parametrize("fn", ["activate", "deactivate"])
def test_activation_of_null_raises(shared_conn, fn):
    with pytest.raises(errors.InvalidParameterValue, match="workflow must not be null"):
        shared_conn.execute(f"select wf.{fn}(null)")


def test_define_errors_use_sqlstate_22023(shared_conn):
    with pytest.raises(psycopg.Error) as info:
        shared_conn.execute("select wf.define(%s)", (Jsonb({"name": "x", "steps": []}),))
    assert info.value.sqlstate == "22023"
