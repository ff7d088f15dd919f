"""deploy/k8s against the real schemas and against the code.

No cluster is needed, and none is used: the base and the production overlay are rendered by
kustomize, every object is validated by kubeconform against the Kubernetes JSON schemas and
the CRDs of Strimzi, CloudNativePG and KEDA (strict: an unknown field is an error), and the
settings the manifests give each service are compared with the settings classes and with
docker-compose.yml. deploy/k8s/tools/ensure_validators.py installs the tools and schemas into
~/.cache/qianliyan/k8s: a few minutes the first time, about a second after that.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from qianliyan.shared import topics
from qianliyan.shared.settings import KafkaSettings
from qianliyan.stack.process import StackError
from tests.unit.settings_fields import PREFIX, ROOT, SETTINGS, environment, field_of

K8S = ROOT / "deploy" / "k8s"
RENDERS = {"base": "base", "production": "overlays/production"}

# A cold cache builds kustomize and kubeconform with Go and fetches the schemas.
pytestmark = pytest.mark.timeout(1200)

# The project's containers, as (workload kind, workload, container): compose service.
SERVICE_CONTAINERS = {
    ("Deployment", "ingest", "ingest"): "ingest",
    ("StatefulSet", "triage", "triage"): "triage",
    ("Deployment", "notify", "notify"): "notify",
    ("Job", "qianliyan-init", "init"): "init",
    ("Job", "qianliyan-init", "ingest-migrate"): "ingest-migrate",
}
# Containers of ours that the compose file has no twin of, and the service whose settings
# they read.
EXTRA_CONTAINERS = {("Job", "kafka-tiered-bucket", "kafka-tiered-bucket"): "notify"}
HTTP_SERVICES = {"ingest": "Deployment", "triage": "StatefulSet", "notify": "Deployment"}
# What the services consume, in one group each (the `subscribe` calls in triage/app.py and
# notify/app.py): what their autoscalers must watch.
KAFKA = KafkaSettings()
CONSUMED = {
    "triage": [KAFKA.reports_topic],
    "notify": [KAFKA.reports_topic, KAFKA.triage_topic, KAFKA.alerts_topic],
}
# Secrets the manifests name but do not make, and who makes them.
EXTERNAL_SECRETS = {
    "qianliyan-pg-app": "CloudNativePG, for the Cluster qianliyan-pg",
    "qianliyan-notify-channels": "the operator, optional: channel secrets of the routing file",
    "qianliyan-tls": "the operator or cert-manager: the Ingress certificate",
}
BASE_ONLY_EXTERNAL = {"qianliyan-minio": "the production overlay's secretGenerator"}

Manifest = dict[str, Any]


def load_tools() -> ModuleType:
    """deploy/k8s/tools/ensure_validators.py, which is a script, not a package."""
    path = K8S / "tools" / "ensure_validators.py"
    spec = importlib.util.spec_from_file_location("ensure_validators", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def validators() -> Any:
    try:
        return load_tools().ensure()
    except StackError as error:
        pytest.fail(f"could not install the manifest validators: {error}")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/k8s whose git-ignored secret files are their committed examples."""
    copy = tmp_path_factory.mktemp("deploy") / "k8s"

    def real_secrets(folder: str, names: list[str]) -> list[str]:
        # What a developer keeps in the checkout's secrets/ folders stays out of the copy.
        return [n for n in names if Path(folder).name == "secrets" and n.endswith(".env")]

    shutil.copytree(K8S, copy, ignore=real_secrets)
    for example in copy.rglob("secrets/*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return copy


@pytest.fixture(scope="module")
def rendered(validators: Any, tree: Path) -> dict[str, str]:
    """`kustomize build` of the base and of each overlay, as YAML streams."""
    out = {}
    for name, folder in RENDERS.items():
        built = subprocess.run(
            [validators.kustomize, "build", tree / folder],
            capture_output=True,
            text=True,
            check=False,
        )
        assert built.returncode == 0, f"kustomize build {folder} failed:\n{built.stderr}"
        out[name] = built.stdout
    return out


@pytest.fixture(scope="module")
def objects(rendered: dict[str, str]) -> dict[str, list[Manifest]]:
    return {name: [o for o in yaml.safe_load_all(text) if o] for name, text in rendered.items()}


@pytest.fixture(scope="module")
def production(objects: dict[str, list[Manifest]]) -> list[Manifest]:
    return objects["production"]


def kubeconform(validators: Any, manifests: str) -> list[dict[str, str]]:
    """Each object's verdict: strict, every schema from the local cache, none skipped."""
    locations = [arg for loc in validators.schema_locations() for arg in ("-schema-location", loc)]
    checked = subprocess.run(
        [validators.kubeconform, "-strict", "-output", "json", "-verbose", *locations, "-"],
        input=manifests,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return list(json.loads(checked.stdout)["resources"])
    except (json.JSONDecodeError, KeyError):
        pytest.fail(f"kubeconform gave no verdicts (status {checked.returncode}):\n{checked}")


# --- every object is valid ------------------------------------------------------------------


@pytest.mark.parametrize("render", RENDERS)
def test_every_object_is_valid_against_its_schema(
    render: str, validators: Any, rendered: dict[str, str], objects: dict[str, list[Manifest]]
) -> None:
    verdicts = kubeconform(validators, rendered[render])
    wrong = [
        f"{v['kind']}/{v['name']}: {v['status']} {v.get('msg', '')}"
        for v in verdicts
        if v["status"] != "statusValid"
    ]
    assert not wrong, f"{render}: invalid objects:\n" + "\n".join(wrong)
    assert len(verdicts) == len(objects[render]), "kubeconform did not check every object"


def test_the_validator_refuses_a_misspelt_field(validators: Any) -> None:
    """Strictness itself: a field no schema declares fails, in a core kind and in a CRD."""
    mistakes = """
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80, targetPrt: 8080}]}
---
apiVersion: kafka.strimzi.io/v1
kind: KafkaTopic
metadata: {name: t, labels: {strimzi.io/cluster: c}}
spec: {partitons: 12}
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: o}
spec: {scaleTargetRef: {name: d}, triggers: [{type: kafka, metadata: {}}], maxReplicas: 3}
---
apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata: {name: p}
spec: {instances: 3, storage: {sise: 1Gi}}
"""
    verdicts = kubeconform(validators, mistakes)
    assert [v["status"] for v in verdicts] == ["statusInvalid"] * 4, verdicts


# --- the manifests and the code agree on settings ----------------------------------------


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = find(objects, kind, name)
    assert len(found) == 1, f"{len(found)} objects {kind}/{name}"
    return found[0]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Manifest) -> Iterator[dict[str, Any]]:
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(objects: list[Manifest], kind: str, workload: str, name: str) -> dict[str, Any]:
    (found,) = [c for c in containers(one(objects, kind, workload)) if c["name"] == name]
    return found


def config_map_data(objects: list[Manifest], name: str) -> dict[str, str]:
    return dict(one(objects, "ConfigMap", name).get("data", {}))


def container_env(objects: list[Manifest], spec: dict[str, Any]) -> dict[str, str | None]:
    """Every variable the container gets, with its value (None when it comes from a Secret)."""
    env: dict[str, str | None] = {}
    for source in spec.get("envFrom", []):
        if "configMapRef" in source:
            env |= config_map_data(objects, source["configMapRef"]["name"])
        # An optional Secret of channel credentials: their names are the routing file's.
    for variable in spec.get("env", []):
        env[variable["name"]] = variable.get("value")
    return env


def ours(objects: list[Manifest]) -> dict[tuple[str, str, str], str]:
    """The project's containers in this render, each with the service whose settings it reads."""
    known = {**SERVICE_CONTAINERS, **EXTRA_CONTAINERS}
    present = {}
    for (kind, workload, name), service in known.items():
        if find(objects, kind, workload):
            present[(kind, workload, name)] = service
    return present


@pytest.mark.parametrize("render", RENDERS)
def test_every_variable_is_a_real_setting(render: str, objects: dict[str, list[Manifest]]) -> None:
    rendered = objects[render]
    assert set(SERVICE_CONTAINERS) <= set(ours(rendered)), "a service is missing"
    for (kind, workload, name), service in ours(rendered).items():
        env = container_env(rendered, container(rendered, kind, workload, name))
        prefix, settings = PREFIX[service], SETTINGS[service]
        foreign = [key for key in env if not key.startswith(prefix)]
        assert not foreign, (
            f"{workload}/{name} is given variables its settings never read: {foreign}"
        )
        unknown = [
            key for key in env if field_of(settings, key.removeprefix(prefix).lower()) is None
        ]
        assert not unknown, f"{workload}/{name}: no such field in {settings.__name__}: {unknown}"


@pytest.mark.parametrize("render", RENDERS)
def test_what_compose_sets_the_manifests_set(
    render: str, objects: dict[str, list[Manifest]]
) -> None:
    rendered = objects[render]
    for (kind, workload, name), service in SERVICE_CONTAINERS.items():
        env = container_env(rendered, container(rendered, kind, workload, name))
        missing = sorted(set(environment(service)) - set(env))
        assert not missing, f"compose gives {service} {missing}; {workload}/{name} does not"


@pytest.mark.parametrize("render", RENDERS)
def test_values_agree_with_compose(render: str, objects: dict[str, list[Manifest]]) -> None:
    """Names, ports and listening address are the same; only host names are the cluster's."""
    rendered = objects[render]
    for (kind, workload, name), service in SERVICE_CONTAINERS.items():
        env = container_env(rendered, container(rendered, kind, workload, name))
        for key, compose_value in environment(service).items():
            value = env.get(key)  # a missing one fails test_what_compose_sets_the_manifests_set
            setting = key.removeprefix(PREFIX[service]).lower()
            if setting.endswith(("bootstrap_servers", "storage__endpoint")):
                assert value is not None
                assert urlsplit(f"//{value}").port == urlsplit(f"//{compose_value}").port, key
            elif setting in ("http_host", "http_port", "storage__bucket") or setting.endswith(
                "_topic"
            ):
                assert value == compose_value, f"{workload}/{name}: {key}"


@pytest.mark.parametrize("render", RENDERS)
def test_services_are_probed_on_their_health_endpoints(
    render: str, objects: dict[str, list[Manifest]]
) -> None:
    rendered = objects[render]
    for service, kind in HTTP_SERVICES.items():
        spec = container(rendered, kind, service, service)
        port = container_env(rendered, spec)[f"{PREFIX[service]}HTTP_PORT"]
        default = SETTINGS[service].model_fields["http_port"].default
        assert port == str(default) == environment(service)[f"{PREFIX[service]}HTTP_PORT"]
        assert spec["ports"] == [{"name": "http", "containerPort": default}]
        probes = {
            "startupProbe": "/health/live",
            "livenessProbe": "/health/live",
            "readinessProbe": "/health/ready",
        }
        for probe, path in probes.items():
            assert spec[probe]["httpGet"] == {"path": path, "port": "http"}, (service, probe)
        (svc,) = find(rendered, "Service", service)
        assert svc["spec"]["ports"] == [{"name": "http", "port": default, "targetPort": "http"}]
        assert (
            svc["spec"]["selector"]
            == one(rendered, kind, service)["spec"]["selector"]["matchLabels"]
        )
        (budget,) = [
            pdb
            for pdb in find(rendered, "PodDisruptionBudget")
            if pdb["spec"]["selector"] == one(rendered, kind, service)["spec"]["selector"]
        ]
        assert budget["spec"]["maxUnavailable"] == 1


@pytest.mark.parametrize("render", RENDERS)
def test_containers_run_unprivileged_on_a_read_only_root(
    render: str, objects: dict[str, list[Manifest]]
) -> None:
    rendered = objects[render]
    for (kind, workload, name), _ in ours(rendered).items():
        pod = pod_spec(one(rendered, kind, workload))
        spec = container(rendered, kind, workload, name)
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert pod["automountServiceAccountToken"] is False, workload
        assert spec["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }, f"{workload}/{name}"
        assert {"cpu", "memory"} <= set(spec["resources"]["requests"]), f"{workload}/{name}"
        assert "memory" in spec["resources"]["limits"], f"{workload}/{name}"


def references(objects: list[Manifest]) -> Iterator[tuple[str, str, str | None, str]]:
    """(kind, name, key, where) of every ConfigMap and Secret a pod or Strimzi names."""
    for workload in objects:
        template = workload.get("spec", {}).get("template", {}).get("spec")
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        specs = [*template.get("initContainers", []), *template["containers"]] if template else []
        if workload["kind"] == "Kafka":
            specs = [workload["spec"]["kafka"]["template"]["kafkaContainer"]]
        for spec in specs:
            for source in spec.get("envFrom", []):
                for ref, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if ref in source:
                        yield kind, source[ref]["name"], None, where
            for variable in spec.get("env", []):
                for ref, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if ref in variable.get("valueFrom", {}):
                        found = variable["valueFrom"][ref]
                        yield kind, found["name"], found["key"], where
        for tls in workload.get("spec", {}).get("tls", []) if workload["kind"] == "Ingress" else []:
            yield "Secret", tls["secretName"], None, where


@pytest.mark.parametrize("render", RENDERS)
def test_every_config_map_and_secret_named_exists(
    render: str, objects: dict[str, list[Manifest]]
) -> None:
    """Generated names carry hashes: a reference kustomize did not rewrite would dangle."""
    rendered = objects[render]
    external = EXTERNAL_SECRETS | (BASE_ONLY_EXTERNAL if render == "base" else {})
    for kind, name, key, where in references(rendered):
        made = find(rendered, kind, name)
        if made:
            if key is not None:
                data = {**made[0].get("data", {}), **made[0].get("stringData", {})}
                assert key in data, f"{where}: {kind} {name} has no key {key}"
        else:
            assert kind == "Secret" and name in external, f"{where}: no {kind} named {name}"


# --- the production overlay -------------------------------------------------------------


def init_setting(production: list[Manifest], name: str) -> str | None:
    return container_env(production, container(production, "Job", "qianliyan-init", "init"))[
        f"NOTIFY_KAFKA__{name}"
    ]


def test_kafka_has_three_brokers_that_replicate_every_write(production: list[Manifest]) -> None:
    (kafka,) = find(production, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    pools = {
        pool["metadata"]["name"]: pool["spec"]
        for pool in find(production, "KafkaNodePool")
        if pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    }
    assert {name: (p["roles"], p["replicas"]) for name, p in pools.items()} == {
        "broker": (["broker"], 3),
        "controller": (["controller"], 3),
    }


def test_topics_keep_every_event_and_tier_their_history(production: list[Manifest]) -> None:
    (kafka,) = find(production, "Kafka")
    tiered = kafka["spec"]["kafka"]["tieredStorage"]
    assert tiered["type"] == "custom"
    rsm = tiered["remoteStorageManager"]
    assert rsm["className"] == "io.aiven.kafka.tieredstorage.RemoteStorageManager"
    assert rsm["config"]["storage.backend.class"].endswith(".s3.S3Storage")
    bucket = rsm["config"]["storage.s3.bucket.name"]
    bucket_job = container(production, "Job", "kafka-tiered-bucket", "kafka-tiered-bucket")
    assert container_env(production, bucket_job)["NOTIFY_STORAGE__BUCKET"] == bucket

    main = [KAFKA.reports_topic, KAFKA.triage_topic, KAFKA.alerts_topic]
    wanted = {*main, *(topics.dead_letter_topic(topic) for topic in main)}
    made = {
        topic.get("spec", {}).get("topicName", topic["metadata"]["name"]): topic
        for topic in find(production, "KafkaTopic")
    }
    assert set(made) == wanted
    for name, topic in made.items():
        spec = topic["spec"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        # What the init Job would create, should it come first, is the same topic.
        assert str(spec["partitions"]) == init_setting(production, "PARTITIONS"), name
        assert str(spec["replicas"]) == init_setting(production, "REPLICATION_FACTOR"), name
        config = spec["config"]
        assert config["retention.ms"] == -1, f"{name} would delete events by age"
        assert config["retention.bytes"] == -1, f"{name} would delete events by size"
        assert config["remote.storage.enable"] is True, name
        assert config["min.insync.replicas"] == 2, name
        assert config.get("cleanup.policy", "delete") == "delete", name


def test_services_reach_the_parts_the_overlay_brings(production: list[Manifest]) -> None:
    (kafka,) = find(production, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert (listener["type"], listener["tls"]) == ("internal", False)
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap:{listener['port']}"
    minio = one(production, "Service", "minio")
    s3_port = next(p["port"] for p in minio["spec"]["ports"] if p["name"] == "s3")
    (cluster,) = find(production, "Cluster")
    for (kind, workload, name), service in ours(production).items():
        spec = container(production, kind, workload, name)
        env = container_env(production, spec)
        prefix = PREFIX[service]
        if f"{prefix}KAFKA__BOOTSTRAP_SERVERS" in env:
            assert env[f"{prefix}KAFKA__BOOTSTRAP_SERVERS"] == bootstrap, workload
        if f"{prefix}STORAGE__ENDPOINT" in env:
            assert env[f"{prefix}STORAGE__ENDPOINT"] == f"minio:{s3_port}", workload
        for variable in spec.get("env", []):
            if variable["name"] == f"{prefix}POSTGRES__DSN":
                ref = variable["valueFrom"]["secretKeyRef"]
                assert ref == {"name": f"{cluster['metadata']['name']}-app", "key": "uri"}
    rsm = kafka["spec"]["kafka"]["tieredStorage"]["remoteStorageManager"]["config"]
    assert rsm["storage.s3.endpoint.url"] == f"http://minio:{s3_port}"
    assert cluster["spec"]["instances"] == 3


def keda_kafka_parameters(validators: Any) -> set[str]:
    """The trigger metadata keys KEDA's kafka scaler reads (its `keda:"name=..."` tags)."""
    source = validators.keda_kafka_scaler.read_text(encoding="utf-8")
    return set(re.findall(r'keda:"name=(\w+),order=[^"]*triggerMetadata', source))


@pytest.mark.parametrize("service", CONSUMED)
def test_consumers_scale_on_their_group_lag_up_to_the_partitions(
    service: str, production: list[Manifest], validators: Any
) -> None:
    scaled = one(production, "ScaledObject", service)["spec"]
    kind = HTTP_SERVICES[service]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind, "name": service}
    assert "replicas" not in one(production, kind, service)["spec"], "the autoscaler owns it"
    (kafka,) = find(production, "Kafka")
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    (namespace,) = {o["metadata"].get("namespace") for o in find(production, "ScaledObject")}
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap.{namespace}.svc:{listener['port']}"
    group = SETTINGS[service].model_fields["consumer_group"].default
    lag = [t for t in scaled["triggers"] if t["type"] == "kafka"]
    assert sorted(t["metadata"]["topic"] for t in lag) == sorted(CONSUMED[service])
    partitions = {
        t.get("spec", {}).get("topicName", t["metadata"]["name"]): t["spec"]["partitions"]
        for t in find(production, "KafkaTopic")
    }
    known = keda_kafka_parameters(validators)
    assert {"bootstrapServers", "consumerGroup", "lagThreshold"} <= known
    for trigger in lag:
        metadata = trigger["metadata"]
        assert not set(metadata) - known, f"KEDA's kafka scaler reads no {set(metadata) - known}"
        assert metadata["consumerGroup"] == group
        assert metadata["bootstrapServers"] == bootstrap
        assert int(metadata["lagThreshold"]) > 0
        # A member beyond the partition count would sit idle.
        assert scaled["maxReplicaCount"] <= partitions[metadata["topic"]]
    assert 2 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]


def test_ingest_scales_by_replicas_behind_the_ingress(production: list[Manifest]) -> None:
    hpa = one(production, "HorizontalPodAutoscaler", "ingest")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "ingest",
    }
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert "replicas" not in one(production, "Deployment", "ingest")["spec"]
    backends = {
        path["backend"]["service"]["name"]: path["backend"]["service"]["port"]
        for ingress in find(production, "Ingress")
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends["ingest"] == {"name": "http"}
    assert backends["notify"] == {"name": "http"}
    assert backends["minio"] == {"name": "s3"}
    public = container_env(production, container(production, "Deployment", "notify", "notify"))
    hosts = {rule["host"] for i in find(production, "Ingress") for rule in i["spec"]["rules"]}
    assert urlsplit(public["NOTIFY_PUBLIC_URL"]).hostname in hosts
    assert public["NOTIFY_STORAGE__PUBLIC_ENDPOINT"] in hosts


def test_minio_runs_distributed_on_four_servers(production: list[Manifest]) -> None:
    minio = one(production, "StatefulSet", "minio")["spec"]
    assert minio["replicas"] == 4
    assert minio["podManagementPolicy"] == "Parallel"
    drives = [claim["metadata"]["name"] for claim in minio["volumeClaimTemplates"]]
    assert drives == ["data0", "data1", "data2", "data3"]
    (server,) = minio["template"]["spec"]["containers"]
    endpoints = [arg for arg in server["args"] if arg.startswith("http://")]
    assert endpoints == [
        f"http://minio-{{0...3}}.{minio['serviceName']}.$(POD_NAMESPACE).svc.cluster.local"
        "/data{0...3}"
    ]
    headless = one(production, "Service", minio["serviceName"])["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
