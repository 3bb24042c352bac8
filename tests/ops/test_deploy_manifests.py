"""deploy/kubernetes validated offline against the Kubernetes schemas; deploy/compose and nginx checked."""
from __future__ import annotations

import json
import re
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from service.auth import load_trusted_clients
from service.config import SETTINGS, Settings
from tests.ops import dockerfile
from tests.ops.support import ROOT

KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "deploy" / "compose"
# The oldest Kubernetes the manifests support (native preStop sleep, GA probes) and the newest schema.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())


def manifests() -> dict[str, list[dict]]:
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
            for path in sorted(KUBERNETES.glob("*.yaml")) if path.name != "kustomization.yaml"}


def resources() -> list[dict]:
    return [doc for docs in manifests().values() for doc in docs]


def resource(kind: str, name: str | None = None) -> dict:
    found = [doc for doc in resources() if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema_strictly(version):
    checked = []
    for name, docs in manifests().items():
        for doc in docs:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(part) for part in error.path)
                pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} at {path}: {error.message}")
            checked.append(doc["kind"])
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap",
            "Secret"} <= set(checked)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(manifests())


def graceful_timeout() -> int:
    """How long gunicorn lets workers finish their calls after SIGTERM (service/gunicorn_conf.py)."""
    conf = (ROOT / "service" / "gunicorn_conf.py").read_text()
    return int(re.search(r"^graceful_timeout = (\d+)", conf, re.M).group(1))


def pod() -> dict:
    return resource("Deployment")["spec"]["template"]["spec"]


def containers() -> list[dict]:
    return pod()["containers"] + pod().get("initContainers", [])


def test_pods_run_non_root_read_only_without_capabilities():
    spec = pod()
    image = dockerfile.parse(ROOT / "Dockerfile").final
    uid = image.last("USER").split(":")[0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert str(spec["securityContext"]["runAsUser"]) == uid
    assert str(spec["securityContext"]["fsGroup"]) == image.last("USER").split(":")[-1]
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in containers():
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert "add" not in context["capabilities"]
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_the_only_writable_mount_is_the_images_volume():
    image = dockerfile.parse(ROOT / "Dockerfile").final
    volume = json.loads(image.last("VOLUME"))[0]
    writable_volumes = {v["name"] for v in pod()["volumes"] if "emptyDir" in v}
    for container in containers():
        writable = [m["mountPath"] for m in container["volumeMounts"]
                    if not m.get("readOnly") and m["name"] in writable_volumes]
        assert writable == [volume], container["name"]
        assert all(m.get("readOnly") for m in container["volumeMounts"] if m["name"] not in writable_volumes)
        env = {item["name"]: item["value"] for item in container.get("env", [])}
        for name in ("CDS_DATA_DIR", "CDS_RUNTIME_DIR", "TMPDIR"):
            if name in env:
                assert env[name] == volume or env[name].startswith(volume + "/")


def test_probes_use_health_and_readiness_and_shutdown_fits_the_grace_period():
    container = pod()["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause + graceful_timeout() < pod()["terminationGracePeriodSeconds"]
    port = container["ports"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert str(port["containerPort"]) == env["CDS_PORT"]
    assert resource("Service")["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_migration_runs_before_the_service_in_the_same_image():
    init = pod()["initContainers"]
    assert [c["command"] for c in init] == [["fasciculation-cds", "db", "upgrade"]]
    assert init[0]["image"] == pod()["containers"][0]["image"]
    assert init[0]["envFrom"] == pod()["containers"][0]["envFrom"]


def test_replicas_autoscaling_and_disruption_budget_agree():
    deployment = resource("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= selector.items()
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    hpa = resource("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = resource("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]
    assert resource("Service")["spec"]["selector"] == selector


def test_only_the_ingress_and_the_platform_may_connect_to_the_pods():
    """Issue 15, item 7: /metrics and the health endpoints kept to the platform (no such policy at c2304de)."""
    policy = resource("NetworkPolicy")
    deployment = resource("Deployment")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    port = pod()["containers"][0]["ports"][0]["name"]
    rules = policy["spec"]["ingress"]
    assert len(rules) == 2
    for rule in rules:  # no rule admits everyone: each names its namespace and its pods
        assert [p["port"] for p in rule["ports"]] == [port]
        [source] = rule["from"]
        assert source["namespaceSelector"]["matchLabels"] and source["podSelector"]["matchLabels"]
        assert "ipBlock" not in source


def test_configuration_is_what_the_service_accepts(tmp_path):
    config = resource("ConfigMap", "fasciculation-cds-config")["data"]
    secret = resource("Secret")["stringData"]
    known = {setting.env for setting in SETTINGS}
    assert set(config) | set(secret) <= known, set(config) | set(secret) - known
    # Redis and PostgreSQL are reached through the environment, and kept in the Secret.
    assert {"REDIS_URL", "DATABASE_URL", "CDS_PATIENT_KEY_SECRET"} <= set(secret)
    assert not {"REDIS_URL", "DATABASE_URL", "CDS_PATIENT_KEY_SECRET", "CDS_ADMIN_TOKEN"} & set(config)
    # The trusted-clients ConfigMap is a valid file where CDS_TRUSTED_CLIENTS_FILE points.
    clients_map = resource("ConfigMap", "fasciculation-cds-trusted-clients")
    mount = next(m for m in pod()["containers"][0]["volumeMounts"] if m["name"] == "trusted-clients")
    volume = next(v for v in pod()["volumes"] if v["name"] == "trusted-clients")
    assert volume["configMap"]["name"] == clients_map["metadata"]["name"]
    file_name = Path(config["CDS_TRUSTED_CLIENTS_FILE"])
    assert str(file_name.parent) == mount["mountPath"] and file_name.name in clients_map["data"]
    local = tmp_path / file_name.name
    local.write_text(clients_map["data"][file_name.name])
    assert load_trusted_clients(local).clients
    # The Secret ships placeholders, which production refuses (tests/auth/test_production_refusals.py).
    secret = {name: value.replace("REPLACE-password", secrets.token_hex(16)) if name.endswith("_URL")
              else secrets.token_hex(32) for name, value in secret.items()}
    env = {**config, **secret, "CDS_TRUSTED_CLIENTS_FILE": str(local), "CDS_DATA_DIR": str(tmp_path),
           **{item["name"]: item["value"] for item in pod()["containers"][0]["env"]}}
    env["CDS_DATA_DIR"] = str(tmp_path)
    env["CDS_RUNTIME_DIR"] = str(tmp_path / "run")
    env["TMPDIR"] = str(tmp_path)
    settings = Settings.from_env(env)
    assert settings.mode == "production" and settings.public_base_url.startswith("https://")


# -- docker compose -------------------------------------------------------------------------------------

def compose() -> dict:
    return yaml.safe_load((COMPOSE / "docker-compose.yml").read_text())


def test_compose_runs_two_replicas_behind_nginx_with_postgres_and_redis():
    services = compose()["services"]
    replicas = [name for name, service in services.items()
                if service.get("build") and "command" not in service]
    assert len(replicas) == 2
    assert {"nginx", "postgres", "redis"} <= set(services)
    image = dockerfile.parse(ROOT / "Dockerfile").final
    volume = json.loads(image.last("VOLUME"))[0]
    for name in replicas:
        service = services[name]
        assert (COMPOSE / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["user"] == image.last("USER")
        # A volume of its own (podman refuses tmpfs uid=/gid=; a fresh volume takes the image's owner).
        assert "tmpfs" not in service
        assert f"{name}-run:{volume}" in service["volumes"] and f"{name}-run" in compose()["volumes"]
        # Longer than gunicorn's graceful_timeout: the engines' 10 s default would cut calls short.
        assert int(service["stop_grace_period"].removesuffix("s")) > graceful_timeout()
        env = service["environment"]
        assert env["REDIS_URL"].startswith("redis://redis:") and "@postgres:" in env["DATABASE_URL"]
        assert env["CDS_MODE"] == "production"
        assert set(env) <= {setting.env for setting in SETTINGS}
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["fasciculation-cds", "db", "upgrade"]
    # Every image is pinned to a version line, never latest.
    for service in services.values():
        if "image" in service and "build" not in service:
            assert re.fullmatch(r"[\w./-]+:\d[\w.-]*", service["image"]), service["image"]


def test_the_public_url_is_the_one_nginx_serves():
    """The JWT aud is built from CDS_PUBLIC_BASE_URL: it must be the URL the sandbox calls through nginx."""
    services = compose()["services"]
    conf = (COMPOSE / "nginx.conf").read_text()
    (listen,) = re.findall(r"^\s*listen\s+([^;]+);", conf, re.M)
    (published,) = services["nginx"]["ports"]
    public = urlsplit(services["cds-1"]["environment"]["CDS_PUBLIC_BASE_URL"])
    assert public.scheme == ("https" if "ssl" in listen.split() else "http")
    assert published == f"127.0.0.1:{public.port}:{listen.split()[0]}" and public.hostname == "localhost"


def test_nginx_balances_over_both_replicas_and_publishes_only_the_api():
    services = compose()["services"]
    replicas = sorted(name for name, service in services.items() if service.get("build") and "command" not in service)
    conf = (COMPOSE / "nginx.conf").read_text()
    upstream = re.search(r"upstream cds \{(.*?)\}", conf, re.S).group(1)
    assert sorted(re.findall(r"server (\S+):8080", upstream)) == replicas
    locations = re.findall(r"location\s+(=\s+)?(\S+)\s*\{", conf)
    assert {path for _, path in locations} == {"/cds-services", "/healthz", "/"}
    assert "/metrics" not in conf.replace("/metrics, /healthz and /readyz stay inside", "")
    assert re.search(r"client_max_body_size 5m;", conf)
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]
