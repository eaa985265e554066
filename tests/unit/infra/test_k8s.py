"""The Kubernetes manifests in infra/k8s/, checked against the code they run.

No cluster is needed: every manifest is parsed with PyYAML, and what could drift from
the application is compared with the application itself: the FRAUD_* names with
``streams.settings.Settings``, the container arguments with the real ``fraudstream``
command line (parsed by it, and for the scorer run up to ``run_scorer``), the ports with
the settings' defaults. ``kubectl kustomize`` renders the kustomization where kubectl is
installed; without it that one test skips.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import typer
import yaml
from typer.testing import CliRunner

import streams.cli._score
import streams.scorer
from streams.cli import app
from streams.scorer import cluster_addresses
from streams.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "infra" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"

KNOWN_KINDS = {
    ("v1", "Namespace"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
}
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_FRAUD_NAME = re.compile(r"\bFRAUD_[A-Z0-9_]+\b")
_K8S_VARIABLE = re.compile(r"\$\((\w+)\)")

Manifest = dict[str, Any]


# --- loading ----------------------------------------------------------------------------


def _manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION)


def _load() -> list[Manifest]:
    documents = []
    for path in _manifest_files():
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                assert isinstance(document, dict), path
                documents.append(cast("Manifest", document))
    return documents


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return _load()


def _one(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{len(found)} {kind} named {name}"
    return found[0]


@pytest.fixture(scope="module")
def scorer(manifests: list[Manifest]) -> Manifest:
    return _one(manifests, "StatefulSet")


@pytest.fixture(scope="module")
def feedback(manifests: list[Manifest]) -> Manifest:
    return _one(manifests, "Deployment")


@pytest.fixture(scope="module")
def config(manifests: list[Manifest]) -> dict[str, str]:
    return cast("dict[str, str]", _one(manifests, "ConfigMap")["data"])


@pytest.fixture(scope="module")
def secret(manifests: list[Manifest]) -> dict[str, str]:
    return cast("dict[str, str]", _one(manifests, "Secret")["stringData"])


def _container(workload: Manifest) -> Manifest:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return cast("Manifest", containers[0])


def _port(container: Manifest, name: str) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    return int(port)


def _option(args: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]
    return value


def _mounts(workload: Manifest) -> dict[str, str]:
    """Volume name -> mount path in the workload's container."""
    return {m["name"]: m["mountPath"] for m in _container(workload)["volumeMounts"]}


def _workloads(manifests: list[Manifest]) -> list[Manifest]:
    return [m for m in manifests if m["kind"] in ("StatefulSet", "Deployment", "Job")]


# --- the files --------------------------------------------------------------------------


def test_every_manifest_is_a_known_kind_named_for_kubernetes(manifests: list[Manifest]) -> None:
    assert manifests
    for manifest in manifests:
        assert (manifest["apiVersion"], manifest["kind"]) in KNOWN_KINDS
        name = manifest["metadata"]["name"]
        assert _DNS_LABEL.fullmatch(name), name
        assert len(name) <= 63
        # The namespace is the kustomization's to set, so overlays can move everything.
        assert "namespace" not in manifest["metadata"], name


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())

    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == [path.name for path in _manifest_files()]


def test_every_workload_runs_the_image_compose_builds(manifests: list[Manifest]) -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["x-app"]["image"]
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())

    assert [entry["name"] for entry in kustomization["images"]] == [image]
    assert {_container(w)["image"] for w in _workloads(manifests)} == {image}


# --- settings ---------------------------------------------------------------------------


def test_every_fraud_name_in_the_folder_is_a_setting() -> None:
    # Manifests, comments and the README alike: a renamed setting must not linger here.
    fields = set(Settings.model_fields)
    for path in sorted(K8S.iterdir()):
        for name in _FRAUD_NAME.findall(path.read_text()):
            field = name.removeprefix("FRAUD_").lower()
            if field.endswith("_"):  # FRAUD_KAFKA_SASL_*: a family of settings
                assert any(f.startswith(field) for f in fields), f"{path.name}: {name}"
            else:
                assert field in fields, f"{path.name}: {name}"


def test_config_and_secret_hold_only_fraud_settings(
    config: dict[str, str], secret: dict[str, str]
) -> None:
    for key in [*config, *secret]:
        assert key.startswith("FRAUD_"), key
        assert key.removeprefix("FRAUD_").lower() in Settings.model_fields, key


def test_secrets_are_in_the_secret_and_only_as_placeholders(
    config: dict[str, str], secret: dict[str, str]
) -> None:
    secret_fields = {
        name
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    assert secret_fields
    assert not secret_fields & {key.removeprefix("FRAUD_").lower() for key in config}
    assert secret
    assert all("CHANGE-ME" in value for value in secret.values())


def _settings_from(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, str], secret: dict[str, str]
) -> Settings:
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_the_config_is_valid_settings_for_external_servers(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, str], secret: dict[str, str]
) -> None:
    settings = _settings_from(monkeypatch, config, secret)

    assert not settings.kafka_is_local
    assert not settings.redis_is_local
    # Probes and Prometheus reach the endpoint from outside the container.
    assert settings.metrics_host == "0.0.0.0"  # noqa: S104


def test_ports_are_the_settings_defaults_everywhere(
    manifests: list[Manifest], config: dict[str, str], scorer: Manifest, feedback: Manifest
) -> None:
    defaults = {
        name: Settings.model_fields[name].default
        for name in ("metrics_port", "feedback_metrics_port")
    }
    assert int(config["FRAUD_METRICS_PORT"]) == defaults["metrics_port"]
    assert int(config["FRAUD_FEEDBACK_METRICS_PORT"]) == defaults["feedback_metrics_port"]

    for workload, port in [
        (scorer, defaults["metrics_port"]),
        (feedback, defaults["feedback_metrics_port"]),
    ]:
        template = workload["spec"]["template"]
        assert _port(_container(workload), "metrics") == port
        assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"

    service = _one(manifests, "Service", scorer["spec"]["serviceName"])
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert service_ports["metrics"] == defaults["metrics_port"]


def test_long_running_containers_probe_health_and_readiness(
    scorer: Manifest, feedback: Manifest
) -> None:
    for workload in (scorer, feedback):
        container = _container(workload)
        # Start-up (imports, state restore) is slow: liveness waits for the startup probe.
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_the_model_registry_is_one_shared_volume_at_the_registry_dir(
    monkeypatch: pytest.MonkeyPatch,
    manifests: list[Manifest],
    config: dict[str, str],
    secret: dict[str, str],
    scorer: Manifest,
    feedback: Manifest,
) -> None:
    settings = _settings_from(monkeypatch, config, secret)
    claim = _one(manifests, "PersistentVolumeClaim", "fraudstream-models")
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]

    for workload in (scorer, feedback):
        (volume,) = [
            v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "models"
        ]
        assert volume["persistentVolumeClaim"]["claimName"] == "fraudstream-models"
        # ModelUpdate messages name model folders by path: the same in every pod.
        assert _mounts(workload)["models"] == str(settings.resolved_registry_dir)


def test_feedback_state_lives_on_its_volume(
    monkeypatch: pytest.MonkeyPatch,
    manifests: list[Manifest],
    config: dict[str, str],
    secret: dict[str, str],
    feedback: Manifest,
) -> None:
    settings = _settings_from(monkeypatch, config, secret)
    state = Path(_mounts(feedback)["state"])

    assert settings.feedback_dir.is_relative_to(state)
    assert settings.resolved_offline_store_dir.is_relative_to(state)
    (volume,) = [v for v in feedback["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    _one(manifests, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])


def test_feedback_is_one_replica_never_two_at_once(feedback: Manifest) -> None:
    assert feedback["spec"]["replicas"] == 1
    assert feedback["spec"]["strategy"]["type"] == "Recreate"
    assert _container(feedback)["args"] == ["feedback"]


# --- the command line -------------------------------------------------------------------


def _expand(arg: str, variables: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args."""
    return _K8S_VARIABLE.sub(lambda m: variables[m.group(1)], arg)


def _parse(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """The subcommand path and the parsed options: the CLI refuses unknown or bad ones.

    Typer vendors its own click, so groups are told apart by what they can do.
    """
    command: Any = typer.main.get_command(app)
    context = command.context_class(command, info_name="fraudstream")
    path: list[str] = []
    rest = list(args)
    while hasattr(command, "resolve_command"):
        name, command, rest = command.resolve_command(context, rest)
        assert command is not None
        path.append(name)
        context = command.context_class(command, info_name=name, parent=context)
    parsed = command.make_context(path[-1], rest, parent=context.parent)
    return path, dict(parsed.params)


def test_every_container_runs_a_real_fraudstream_command(manifests: list[Manifest]) -> None:
    commands = {}
    for workload in _workloads(manifests):
        container = _container(workload)
        assert container["command"] == ["fraudstream"]
        args = [_expand(arg, {"POD_NAME": "fraudstream-scorer-0"}) for arg in container["args"]]
        path, _ = _parse(args)
        commands[workload["metadata"]["name"]] = path

    assert commands == {
        "fraudstream-scorer": ["score"],
        "fraudstream-feedback": ["feedback"],
        "fraudstream-topics": ["topics", "create"],
    }


def test_processes_follow_replicas_and_partitions_cover_the_workers(
    scorer: Manifest, config: dict[str, str]
) -> None:
    _, options = _parse(_container(scorer)["args"])
    kustomization = yaml.safe_load(KUSTOMIZATION.read_text())
    (replicas,) = [
        r["count"] for r in kustomization["replicas"] if r["name"] == "fraudstream-scorer"
    ]

    assert options["processes"] == scorer["spec"]["replicas"] == replicas
    # kustomization.yaml copies the replica count into this argument by its index.
    (replacement,) = kustomization["replacements"]
    assert replacement["targets"][0]["fieldPaths"] == [
        "spec.template.spec.containers.[name=scorer].args.1"
    ]
    assert _container(scorer)["args"][1].startswith("--processes=")
    # Workers beyond the partitions of `transactions` would have nothing to read.
    assert int(config["FRAUD_PARTITIONS"]) >= options["processes"] * options["workers"]


def test_the_headless_service_gives_each_scorer_pod_its_name(
    manifests: list[Manifest], scorer: Manifest
) -> None:
    service = _one(manifests, "Service", scorer["spec"]["serviceName"])
    labels = scorer["spec"]["template"]["metadata"]["labels"]

    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == scorer["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert scorer["spec"]["podManagementPolicy"] == "Parallel"
    pdb = _one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def test_only_scorer_pods_reach_the_cluster_port(
    manifests: list[Manifest], scorer: Manifest
) -> None:
    # Bytewax exchanges pickles on it: reaching it means running code in the scorer.
    policy = _one(manifests, "NetworkPolicy")
    selector = scorer["spec"]["selector"]["matchLabels"]
    ports_open_to = {
        port["port"]: [peer["podSelector"]["matchLabels"] for peer in rule.get("from", [])]
        for rule in policy["spec"]["ingress"]
        for port in rule["ports"]
    }

    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert ports_open_to == {"cluster": [selector], "metrics": []}
    assert {p["name"] for p in _container(scorer)["ports"]} == set(ports_open_to)


@pytest.fixture
def run_scorer_calls(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, str], secret: dict[str, str]
) -> Iterator[list[tuple[Settings, dict[str, Any]]]]:
    """Each pod's `fraudstream score`, run up to run_scorer with the pod's environment."""
    calls: list[tuple[Settings, dict[str, Any]]] = []

    def record(settings: Settings, **kwargs: Any) -> int:
        calls.append((settings, kwargs))
        return 0

    monkeypatch.setattr(streams.scorer, "run_scorer", record)
    # Recovery is checked in test_score_cli.py; /var/lib/fraudstream is not writable here.
    monkeypatch.setattr(streams.cli._score, "_prepare_member_recovery", lambda *_: None)
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield calls
    get_settings.cache_clear()


def test_every_scorer_pod_joins_the_same_cluster_as_its_ordinal(
    manifests: list[Manifest],
    scorer: Manifest,
    run_scorer_calls: list[tuple[Settings, dict[str, Any]]],
) -> None:
    name, replicas = scorer["metadata"]["name"], scorer["spec"]["replicas"]
    service = _one(manifests, "Service", scorer["spec"]["serviceName"])
    container = _container(scorer)
    (pod_name,) = [e for e in container["env"] if e["name"] == "POD_NAME"]
    assert pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

    for ordinal in range(replicas):
        args = [_expand(arg, {"POD_NAME": f"{name}-{ordinal}"}) for arg in container["args"]]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output

    cluster_port = _port(container, "cluster")
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    expected = [f"{name}-{i}.{service['metadata']['name']}:{cluster_port}" for i in range(replicas)]
    assert [kwargs["process_id"] for _, kwargs in run_scorer_calls] == list(range(replicas))
    assert all(kwargs["addresses"] == expected for _, kwargs in run_scorer_calls)
    assert service_ports["cluster"] == cluster_port
    # The port the local cluster of streams.scorer starts from: one port to open, anywhere.
    assert cluster_addresses(1) == [f"127.0.0.1:{cluster_port}"]
    # run_scorer binds metrics_port + process_id: in every pod, the probed port.
    bound = {settings.metrics_port + kwargs["process_id"] for settings, kwargs in run_scorer_calls}
    assert bound == {_port(container, "metrics")}


def test_the_recovery_volume_is_mounted_at_the_recovery_dir(scorer: Manifest) -> None:
    (template,) = scorer["spec"]["volumeClaimTemplates"]
    recovery_dir = _option(_container(scorer)["args"], "--recovery-dir")

    assert template["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _mounts(scorer)[template["metadata"]["name"]] == recovery_dir


# --- resources and security -------------------------------------------------------------


def _quantity(value: str | int) -> float:
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    text = str(value)
    for suffix, factor in units.items():
        if text.endswith(suffix):
            return float(text.removesuffix(suffix)) * factor
    return float(text)


def test_resources_are_sized_and_memory_is_guaranteed(manifests: list[Manifest]) -> None:
    for workload in _workloads(manifests):
        resources = _container(workload)["resources"]
        requests, limits = resources["requests"], resources["limits"]
        # Memory cannot be throttled, only killed: request what the limit allows.
        assert _quantity(requests["memory"]) == _quantity(limits["memory"])
        if "cpu" in limits:
            assert _quantity(limits["cpu"]) >= _quantity(requests["cpu"])

    scorer_resources = _container(_one(manifests, "StatefulSet"))["resources"]
    # Measured: one scorer process keeps one core busy (benchmarks/README.md).
    assert _quantity(scorer_resources["requests"]["cpu"]) == 1


def test_containers_run_as_the_image_user_on_a_read_only_root(manifests: list[Manifest]) -> None:
    uid = int(re.findall(r"--uid (\d+)", (ROOT / "Dockerfile").read_text())[0])
    for workload in _workloads(manifests):
        pod = workload["spec"]["template"]["spec"]
        container = _container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == uid
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        if workload["kind"] != "Job":
            assert _mounts(workload)["tmp"] == "/tmp"  # noqa: S108


# --- kustomize --------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="needs kubectl (kustomize)")
def test_kustomize_renders_one_namespace_and_agreeing_processes() -> None:
    result = subprocess.run(
        ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    rendered = [d for d in yaml.safe_load_all(result.stdout) if d]
    namespace = yaml.safe_load(KUSTOMIZATION.read_text())["namespace"]

    assert len(rendered) == len(_load())
    assert all(
        d["metadata"].get("namespace") == namespace for d in rendered if d["kind"] != "Namespace"
    )
    scorer = _one(rendered, "StatefulSet")
    args = _container(scorer)["args"]
    assert int(_option(args, "--processes")) == scorer["spec"]["replicas"]
    assert "fraudstream:local" not in {_container(w)["image"] for w in _workloads(rendered)}
