"""The Helm chart rendered by Helm's own engine (the Go SDK, in process) and linted, and every rendered object
validated against Kubernetes' OpenAPI schema; then the properties the gateway's operation depends on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from helm_python import Chart, lint

from toolpolicy.config import load_config_text

CHART = Path(__file__).parents[2] / "deploy" / "helm" / "isthmus"
KUBE_VERSION = "1.30"
ERROR = 3  # helm lint's severity for an error


def render(values: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """`helm template gw CHART -n prod` as objects by `Kind/name`."""
    manifests = Chart.load(CHART).render(values, name="gw", namespace="prod", is_install=True)
    objects: dict[str, dict[str, Any]] = {}
    for path, text in manifests.items():
        if not path.endswith(".yaml"):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                objects[f"{document['kind']}/{document['metadata']['name']}"] = document
    return objects


def container(objects: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    spec = objects[name]["spec"]["template"]["spec"]
    found: dict[str, Any] = spec["containers"][0]
    return found


def test_helm_lint_finds_no_error_in_strict_mode() -> None:
    report = lint(CHART, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= ERROR] == []


@pytest.mark.parametrize(
    "values",
    [
        None,
        {"autoscaling": {"enabled": False}, "podDisruptionBudget": {"enabled": False}, "migration": {"enabled": False}},
    ],
)
def test_every_rendered_object_is_valid_for_kubernetes(values: dict[str, Any] | None) -> None:
    for name, document in render(values).items():
        try:
            kubernetes_validate.validate(document, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {error.message} at {list(error.path)}")


def test_the_default_release_has_every_object_the_gateway_needs() -> None:
    assert sorted(render()) == [
        "ConfigMap/gw-isthmus",
        "ConfigMap/gw-isthmus-migrate",
        "Deployment/gw-isthmus",
        "HorizontalPodAutoscaler/gw-isthmus",
        "Job/gw-isthmus-migrate",
        "PodDisruptionBudget/gw-isthmus",
        "Service/gw-isthmus",
        "ServiceAccount/gw-isthmus",
    ]


def test_probes_preStop_and_grace_period_fit_the_drain() -> None:
    values = {"lifecycle": {"drainTimeoutSeconds": 45, "stopTimeoutSeconds": 7, "preStopSleepSeconds": 8}}
    objects = render(values)
    gateway = container(objects, "Deployment/gw-isthmus")
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/health"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert gateway["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "8"]
    grace = objects["Deployment/gw-isthmus"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 8 + 45 + 2 * 7
    config = yaml.safe_load(objects["ConfigMap/gw-isthmus"]["data"]["config.yaml"])
    assert config["server"] == {"drain_timeout": 45, "stop_timeout": 7}


def test_the_rendered_config_is_a_valid_gateway_config_once_its_secrets_are_set() -> None:
    objects = render({"config": {"virtual_keys": [{"name": "bot", "models": ["echo/*"]}]}})
    text = objects["ConfigMap/gw-isthmus"]["data"]["config.yaml"]
    environ = {
        "ISTHMUS_STORE_URL": "postgresql+asyncpg://isthmus:pw@db:5432/isthmus",
        "ISTHMUS_REDIS_URL": "redis://redis:6379/0",
        "ISTHMUS_ADMIN_KEY": "admin",
    }
    settings = load_config_text(text, environ=environ)
    assert settings.listen == "0.0.0.0:8080" and settings.redis == "redis://redis:6379/0"
    assert settings.store.startswith("postgresql+asyncpg://") and len(settings.virtual_keys) == 1
    assert objects["ConfigMap/gw-isthmus-migrate"]["data"] == objects["ConfigMap/gw-isthmus"]["data"]


def test_secrets_are_referenced_never_rendered() -> None:
    extra = [{"name": "OPENAI_API_KEY", "secretName": "llm-keys", "key": "openai"}]
    objects = render({"secrets": {"existingSecret": "gw-secrets", "extraEnv": extra}})
    assert not any(document["kind"] == "Secret" for document in objects.values())
    env = {item["name"]: item for item in container(objects, "Deployment/gw-isthmus")["env"]}
    for name, secret, key in [
        ("ISTHMUS_STORE_URL", "gw-secrets", "store-url"),
        ("ISTHMUS_REDIS_URL", "gw-secrets", "redis-url"),
        ("ISTHMUS_ADMIN_KEY", "gw-secrets", "admin-key"),
        ("OPENAI_API_KEY", "llm-keys", "openai"),
    ]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": secret, "key": key}


def test_the_migration_runs_the_alembic_upgrade_as_a_pre_install_and_pre_upgrade_hook() -> None:
    objects = render()
    for name in ("Job/gw-isthmus-migrate", "ConfigMap/gw-isthmus-migrate"):
        annotations = objects[name]["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    job_weight = int(objects["Job/gw-isthmus-migrate"]["metadata"]["annotations"]["helm.sh/hook-weight"])
    config_weight = int(objects["ConfigMap/gw-isthmus-migrate"]["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert config_weight < job_weight  # its config exists before it runs
    assert container(objects, "Job/gw-isthmus-migrate")["args"][:2] == ["db", "upgrade"]


def test_pods_run_as_a_non_root_user_with_no_privileges() -> None:
    objects = render()
    for name in ("Deployment/gw-isthmus", "Job/gw-isthmus-migrate"):
        security = container(objects, name)["securityContext"]
        assert security["runAsNonRoot"] and security["runAsUser"] != 0
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"]["drop"] == ["ALL"]


def test_autoscaling_owns_the_replica_count_only_when_enabled() -> None:
    scaled = render()
    assert "replicas" not in scaled["Deployment/gw-isthmus"]["spec"]
    target = scaled["HorizontalPodAutoscaler/gw-isthmus"]["spec"]["scaleTargetRef"]
    assert target == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gw-isthmus"}
    fixed = render({"autoscaling": {"enabled": False}, "replicaCount": 3})
    assert fixed["Deployment/gw-isthmus"]["spec"]["replicas"] == 3
    assert "HorizontalPodAutoscaler/gw-isthmus" not in fixed


def test_the_service_needs_no_session_affinity() -> None:
    service = render()["Service/gw-isthmus"]["spec"]
    assert service["sessionAffinity"] == "None" and service["ports"][0]["targetPort"] == "http"
