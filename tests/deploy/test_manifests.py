"""The Kubernetes manifests under deploy/, offline: each is valid Kubernetes (strict: an unknown
field fails), and each agrees with the code it runs: the service's port and probe paths, the
environment variables the code reads, the config keys (the ConfigMap's file is read by the
project's own reader), the commands and tasks the containers name, the Secret's keys."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from journeyguard.features.cli import app
from journeyguard.features.config.reader import parse_config
from journeyguard.outreach import SECRET_VARIABLE, URL_VARIABLE
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
KUBERNETES_VERSION = "1.33.0"  # CronJob timeZone is GA from 1.27
CLI_IMAGE = "journeyguard"  # the Dockerfile's image; the service's is "journeyguard-service"
SERVICE_PORT = 3000  # where `bentoml serve` listens in the Bento's image
# Variables the code reads, and those of the libraries and servers it runs.
LIBRARY_VARIABLES = {
    "MLFLOW_TRACKING_URI",
    "MLFLOW_DISABLE_TELEMETRY",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
    "BENTOML_CONFIG_OPTIONS",
    "BENTOML_DO_NOT_TRACK",
    "PGPASSWORD",  # libpq's (psycopg's) password: never in a URL of the ConfigMap
}

runner = CliRunner()


def documents() -> list[dict[str, Any]]:
    """Every resource of the manifests the kustomization lists."""
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    found = []
    for name in listed:
        found += [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    return found


def resource(kind: str, name: str) -> dict[str, Any]:
    matches = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def workloads() -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] in ("Deployment", "CronJob")]


def containers() -> list[dict[str, Any]]:
    return [c for doc in workloads() for c in pod_spec(doc)["containers"]]


def config_map_file() -> tuple[str, str, str]:
    """The ConfigMap's name, its one key (the file name) and the file's text."""
    config_map = resource("ConfigMap", "journeyguard-config")
    ((key, text),) = config_map["data"].items()
    return config_map["metadata"]["name"], key, text


def env_value(container: dict[str, Any], name: str) -> str | None:
    return next((e.get("value") for e in container.get("env", []) if e["name"] == name), None)


def test_the_kustomization_lists_every_manifest():
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    on_disk = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk)


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_kubernetes(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field():
    deployment = resource("Deployment", "journeyguard-service")
    container = pod_spec(deployment)["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_config_map_is_a_config_the_project_reads():
    _, key, text = config_map_file()
    settings = parse_config(tomllib.loads(text), Path("/etc/journeyguard") / key)
    assert settings.tasks and settings.outreach.actions
    assert settings.output_dir == Path("/data/out")
    database = make_url(settings.outreach.database or "")
    assert (database.drivername, database.password) == ("postgresql+psycopg", None)
    assert settings.serving.api_token is None  # the token comes from the Secret


def test_the_service_deployment_matches_the_service():
    from journeyguard.serving.service import CONFIG_VARIABLE, SERVICE_NAME, JourneyService

    deployment = resource("Deployment", "journeyguard-service")
    (container,) = pod_spec(deployment)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": SERVICE_PORT}
    paths = set(JourneyService.openapi_spec.paths)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert {"/readyz", "/livez"} <= paths
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    service = resource("Service", "journeyguard")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    options = env_value(container, "BENTOML_CONFIG_OPTIONS") or ""
    assert all(option.startswith(f"services.{SERVICE_NAME}.") for option in options.split())
    autoscaler = resource("HorizontalPodAutoscaler", "journeyguard-service")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert env_value(container, CONFIG_VARIABLE) == mounted_config_path(deployment, container)


def mounted_config_path(workload: dict[str, Any], container: dict[str, Any]) -> str:
    """Where the container sees the ConfigMap's file."""
    name, key, _ = config_map_file()
    (volume,) = [v for v in pod_spec(workload)["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == name
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    return f"{mount['mountPath']}/{key}"


def test_every_variable_is_one_the_code_reads_and_secrets_exist():
    from journeyguard.serving.guard import TOKEN_VARIABLE
    from journeyguard.serving.service import CONFIG_VARIABLE

    known = LIBRARY_VARIABLES | {CONFIG_VARIABLE, TOKEN_VARIABLE, URL_VARIABLE, SECRET_VARIABLE}
    secret = resource("Secret", "journeyguard-secrets")
    for container in containers():
        for variable in container.get("env", []):
            assert variable["name"] in known, f"{container['name']}: {variable['name']}"
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == secret["metadata"]["name"]
                assert reference["key"] in secret["stringData"]
    token = [c for c in containers() if env_value(c, TOKEN_VARIABLE) is None and any(
        e["name"] == TOKEN_VARIABLE for e in c.get("env", []))]  # fmt: skip
    assert [c["name"] for c in token] == ["service"]
    for name in ("journeyguard-scheduler", "journeyguard-dispatcher"):
        (container,) = pod_spec(resource("Deployment", name))["containers"]
        assert SECRET_VARIABLE in {e["name"] for e in container["env"]}, name


def journeyguard_commands() -> list[tuple[str, list[str]]]:
    """Each `journeyguard` command line a container runs: its args (for the CLI image's
    entrypoint) or the lines of its shell script, with shell variables of the loops filled in
    with each value the loop takes."""
    found = []
    for container in containers():
        if not container["image"].split("/")[-1].startswith(f"{CLI_IMAGE}:"):
            continue  # the service's image (its entrypoint is `bentoml serve`)
        if "command" not in container:  # the image's entrypoint: `journeyguard`
            found.append((container["name"], container["args"]))
        elif container["command"][0] == "sh":
            script = container["args"][0]
            loop = re.search(r"for task in ([\w ]+); do", script)
            tasks = loop.group(1).split() if loop else [""]
            for line in script.splitlines():
                if line.strip().startswith("journeyguard "):
                    for task in tasks:
                        words = shlex.split(line.replace("$task", task))
                        found.append((container["name"], words[1:]))
    return found


def test_every_command_exists_with_its_options_and_tasks():
    _, key, text = config_map_file()
    tasks = set(tomllib.loads(text)["tasks"])
    commands = journeyguard_commands()
    assert {tuple(args[:2]) for _, args in commands} >= {
        ("outreach", "schedule"),
        ("outreach", "dispatch"),
        ("score", "--config"),
        ("train", "--config"),
        ("monitor", "--config"),
    }
    for name, args in commands:
        config = args[args.index("--config") + 1]
        assert config in (f"/etc/journeyguard/{key}", "$JOURNEYGUARD_CONFIG"), name
        if "--task" in args:
            assert args[args.index("--task") + 1] in tasks, (name, args)
        # The options parse: the command with them and --help exits 0 without running.
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, (name, args, result.output)


def test_mlflow_runs_as_the_other_containers_reach_it():
    deployment = resource("Deployment", "mlflow")
    (container,) = pod_spec(deployment)["containers"]
    args = container["args"]
    assert container["command"] == ["mlflow"] and args[0] == "server"
    option = {args[i]: args[i + 1] for i in range(1, len(args) - 1, 2)}
    assert option["--workers"] == "1"
    assert env_value(container, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION") == "false"
    assert option["--backend-store-uri"].startswith("postgresql+psycopg://")
    service = resource("Service", "mlflow")
    (port,) = service["spec"]["ports"]
    url = f"http://{service['metadata']['name']}:{port['port']}"
    # The Service's name, and loopback for `kubectl port-forward` (the flag replaces the
    # default list, which had it).
    hosts = option["--allowed-hosts"].split(",")
    assert {service["metadata"]["name"], "127.0.0.1:*", "localhost:*"} <= set(hosts)
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert int(option["--port"]) == container["ports"][0]["containerPort"]
    users = [c for c in containers() if env_value(c, "MLFLOW_TRACKING_URI")]
    assert {env_value(c, "MLFLOW_TRACKING_URI") for c in users} == {url}
    assert {c["name"] for c in users} >= {"service", "scheduler", "nightly", "train"}


def test_the_scheduler_is_one_replica_never_two_during_a_rollout():
    scheduler = resource("Deployment", "journeyguard-scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"
