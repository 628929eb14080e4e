"""deploy/'s manifests are valid objects of their kinds (Kubernetes' JSON schemas from
kubernetes-validate; KEDA's CRDs as the models cloudcoil-models-keda generates from them), a broken
copy is refused, and they agree with the worker they run: the port it serves /healthz on, its
grace after SIGTERM, its concurrency, the image's user, secrets from Kubernetes Secrets only."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from kubernetes_validate.utils import latest_version
from wf import secrets
from wf.cli import worker

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# the oldest Kubernetes still commonly run, and the newest the package knows
KUBERNETES_VERSIONS = ("1.29.0", latest_version())
KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}
# environment variables whose values are secrets (or say where they are): never a literal
SECRET_ENV = re.compile(r"DATABASE_URL|DSN|TOKEN|SECRET|PASSWORD")

Doc = dict[str, Any]


def manifests() -> list[Path]:
    return sorted(p for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[tuple[str, Doc]]:
    return [(f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
            for path in manifests() for doc in yaml.safe_load_all(path.read_text()) if doc]


def the(kind: str) -> Doc:
    [doc] = [doc for _, doc in documents() if doc["kind"] == kind]
    return doc


def worker_container() -> Doc:
    [container] = the("Deployment")["spec"]["template"]["spec"]["containers"]
    return container


class Refused(Exception):
    """A manifest its schema does not accept."""


def _unknown(given: Any, kept: Any, path: str = "") -> list[str]:
    """Paths of given that a model validation dropped (fields the schema does not know)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        return [p for key, value in given.items()
                for p in ([f"{path}.{key}"] if key not in kept else _unknown(value, kept[key], f"{path}.{key}"))]
    if isinstance(given, list) and isinstance(kept, list):
        return [p for i, (g, k) in enumerate(zip(given, kept, strict=True)) for p in _unknown(g, k, f"{path}[{i}]")]
    return []


def validate(doc: Doc) -> None:
    """Raises Refused unless doc is a valid object of its kind. Kubernetes' own kinds: the strict
    JSON schemas (unknown fields refused) of each version in KUBERNETES_VERSIONS. KEDA's: its
    CRD's models in pydantic's strict mode (no "1" for 1), and a field the model dropped is unknown."""
    if doc.get("apiVersion", "").startswith("keda.sh/"):
        model = KEDA_MODELS[doc["kind"]]
        try:
            kept = model.model_validate(doc, strict=True).model_dump(by_alias=True, exclude_unset=True, mode="json")
        except pydantic.ValidationError as exc:
            raise Refused(str(exc)) from exc
        if unknown := _unknown(doc, kept):
            raise Refused(f"unknown fields: {', '.join(unknown)}")
        return
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise Refused(f"Kubernetes {version}: {'.'.join(map(str, exc.path))}: {exc.message}") from exc


def worker_params(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The options `wf worker` runs with in the container: its args and its environment parsed by
    the CLI itself (a value from a Secret stands in as a placeholder)."""
    container = worker_container()
    assert "command" not in container, "the image's ENTRYPOINT (wf worker) runs"
    placeholders = {"WF_DATABASE_URL": "postgresql://wf@db.invalid/postgres",
                    "WF_FUNCTIONS_URL": "https://functions.invalid/functions/v1"}
    for name in [n for n in os.environ if n.startswith("WF_") or n == "DATABASE_URL"]:
        monkeypatch.delenv(name)
    for var in container["env"]:
        if "value" in var:
            monkeypatch.setenv(var["name"], var["value"])
        elif not var["valueFrom"]["secretKeyRef"].get("optional"):
            monkeypatch.setenv(var["name"], placeholders.get(var["name"], "from-a-secret"))
    ctx = worker.make_context("worker", list(container.get("args", [])))
    return ctx.params


def scaled_trigger() -> Doc:
    [trigger] = [t for t in the("ScaledObject")["spec"]["triggers"] if t["type"] == "postgresql"]
    return trigger


# ---- the schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[name for name, _ in documents()])
def test_every_manifest_is_a_valid_object_of_its_kind(name: str, doc: Doc):
    validate(doc)


def test_the_manifests_hold_a_deployment_a_scaled_object_and_its_trigger_authentication():
    assert sorted(doc["kind"] for _, doc in documents()) == ["Deployment", "ScaledObject", "TriggerAuthentication"]


def _set(doc: Doc, path: str, value: Any) -> Doc:
    broken = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = broken
    for p in parents:
        node = node[p]
    node[last] = value
    return broken


BROKEN = [
    ("Deployment", "spec.template.spec.terminationGracePeriodSeconds", "60"),
    ("Deployment", "spec.template.spec.containers.0.ports.0.containerPort", "9090"),
    ("Deployment", "spec.template.spec.containers.0.env", {"WF_GRACE": "30"}),
    ("Deployment", "spec.template.spec.securityContext.runAsNonRoot", "true"),
    ("ScaledObject", "spec.minReplicaCount", "1"),
    ("ScaledObject", "spec.triggers.0.metadata.targetQueryValue", 16),
    ("ScaledObject", "spec.triggers", {"type": "postgresql"}),
    ("TriggerAuthentication", "spec.secretTargetRef.0.key", ["connection"]),
]


@pytest.mark.parametrize(("kind", "path", "value"), BROKEN, ids=[f"{k}.{p}" for k, p, _ in BROKEN])
def test_a_manifest_with_a_field_of_the_wrong_type_is_refused(kind: str, path: str, value: Any):
    with pytest.raises(Refused):
        validate(_set(the(kind), path, value))


MISSPELT = [
    ("Deployment", "spec.template.spec.containers.0.livenesProbe", {"httpGet": {"path": "/healthz", "port": 9090}}),
    ("ScaledObject", "spec.maxReplicas", 4),
    ("ScaledObject", "spec.triggers.0.authRef", {"name": "wf-keda"}),
    ("TriggerAuthentication", "spec.secretRef", []),
]


@pytest.mark.parametrize(("kind", "path", "value"), MISSPELT, ids=[f"{k}.{p}" for k, p, _ in MISSPELT])
def test_a_manifest_with_a_field_its_kind_does_not_have_is_refused(kind: str, path: str, value: Any):
    with pytest.raises(Refused, match=re.escape(path.rsplit(".", 1)[-1])):
        validate(_set(the(kind), path, value))


def test_a_scaled_object_without_its_target_is_refused():
    broken = copy.deepcopy(the("ScaledObject"))
    del broken["spec"]["scaleTargetRef"]
    with pytest.raises(Refused, match="scaleTargetRef"):
        validate(broken)


def test_kustomization_applies_every_manifest():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [p.name for p in manifests()]
    [image] = kustomization["images"]
    assert image["name"] == worker_container()["image"].split(":")[0]


# ---- the worker they run ----------------------------------------------------------------------


def test_the_probes_ask_healthz_on_the_port_the_worker_serves_it_on(monkeypatch):
    port = worker_params(monkeypatch)["metrics_port"]
    assert port is not None, "without WF_METRICS_PORT (or --metrics-port) the worker serves no /healthz"
    container = worker_container()
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        check = container[probe]["httpGet"]
        assert check["path"] == "/healthz"
        assert ports.get(check["port"], check["port"]) == port, probe


def test_the_pod_is_given_longer_to_stop_than_the_worker_gives_its_calls(monkeypatch):
    grace = worker_params(monkeypatch)["grace"]
    termination = the("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # the calls get `grace` seconds, then the worker flushes its answers and closes its pool
    assert termination >= grace + 10


def test_keda_asks_one_worker_per_concurrency_calls(monkeypatch):
    concurrency = worker_params(monkeypatch)["concurrency"]
    assert float(scaled_trigger()["metadata"]["targetQueryValue"]) == concurrency


def test_the_scaled_object_scales_the_worker_deployment_with_its_trigger_authentication():
    spec = the("ScaledObject")["spec"]
    assert spec["scaleTargetRef"]["name"] == the("Deployment")["metadata"]["name"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert scaled_trigger()["authenticationRef"]["name"] == the("TriggerAuthentication")["metadata"]["name"]
    assert "replicas" not in the("Deployment")["spec"], "the ScaledObject owns the replica count"


def _dockerfile_user() -> str:
    users = re.findall(r"^USER\s+(\S+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    return users[-1]


def test_the_pod_runs_as_the_images_user_by_number_and_never_as_root():
    pod = the("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    user = _dockerfile_user()
    if re.fullmatch(r"\d+(:\d+)?", user):
        uid, _, gid = user.partition(":")
    else:  # a user by name: the uid its useradd gives it
        uid = re.search(rf"useradd\b[^\n]*--uid (\d+)[^\n]*\b{user}\b", (REPO / "Dockerfile").read_text()).group(1)
        gid = uid
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid or uid))
    assert pod["runAsUser"] != 0


def test_the_images_user_is_numeric_so_kubernetes_can_check_run_as_non_root():
    assert re.fullmatch(r"\d+:\d+", _dockerfile_user())


def test_the_worker_cannot_write_its_image_nor_gain_privileges():
    container = worker_container()["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]


def test_secrets_come_from_kubernetes_secrets_never_from_the_manifests():
    for var in worker_container()["env"]:
        if SECRET_ENV.search(var["name"]):
            assert "value" not in var, var["name"]
            assert var["valueFrom"]["secretKeyRef"]["name"] == "wf-worker", var["name"]
    # KEDA's connection: through the TriggerAuthentication, from a Secret, nothing in the trigger
    assert set(scaled_trigger()["metadata"]) == {"query", "targetQueryValue", "activationTargetQueryValue"}
    [ref] = the("TriggerAuthentication")["spec"]["secretTargetRef"]
    assert ref == {"parameter": "connection", "name": "wf-keda", "key": "connection"}
    text = "\n".join(p.read_text() for p in manifests())
    assert not re.search(r"postgres(ql)?://|whsec_|password\s*[:=]", text, re.IGNORECASE)


# ---- the README -------------------------------------------------------------------------------


def _readme_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Running many workers\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def test_the_readme_creates_the_secrets_and_keys_the_manifests_read():
    section = _readme_section()
    created: dict[str, set[str]] = {}
    for m in re.finditer(r"kubectl create secret generic (\S+)((?:\s+\\\n\s*--from-literal=[\w-]+=\S*)+)", section):
        created.setdefault(m.group(1), set()).update(re.findall(r"--from-literal=([\w-]+)=", m.group(2)))
    refs = [var["valueFrom"]["secretKeyRef"] for var in worker_container()["env"] if "valueFrom" in var]
    required = {(r["name"], r["key"]) for r in refs if not r.get("optional")}
    readable = {(r["name"], r["key"]) for r in refs}
    readable |= {(r["name"], r["key"]) for r in the("TriggerAuthentication")["spec"]["secretTargetRef"]}
    shown = {(name, key) for name, keys in created.items() for key in keys}
    assert required <= shown
    assert ("wf-keda", "connection") in shown
    # each optional key is named in the section, and every key shown is one the manifests read
    assert shown <= readable
    for _, key in readable:
        assert f"`{key}`" in section or f"--from-literal={key}=" in section, key


def test_the_readme_shows_the_query_keda_runs():
    section = _readme_section()
    blocks = re.findall(r"```sql\n(.*?)```", section, re.DOTALL)
    query = " ".join(scaled_trigger()["metadata"]["query"].split())
    assert query in [" ".join(b.split()) for b in blocks]


def test_the_readme_says_the_cluster_path_was_not_run_here():
    assert "not run here" in _readme_section()


def test_click_knows_every_worker_variable_the_deployment_sets():
    known = {envvar for p in worker.params if isinstance(p, click.Option)
             for envvar in ([p.envvar] if isinstance(p.envvar, str) else (p.envvar or []))}
    known |= {secrets.TOKEN_ENV, secrets.TOKEN_VAULT_ENV, secrets.SIGNING_ENV, secrets.SIGNING_VAULT_ENV}
    assert {var["name"] for var in worker_container()["env"]} <= known
