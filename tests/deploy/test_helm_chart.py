"""The Helm chart, rendered by Helm's own engine (its Go SDK, through helm-python-sdk) and every
manifest checked against the Kubernetes API schemas in strict mode: no cluster and no helm binary
needed. Then what matters for the gateway: probes, ports and protocols, which pod each Service
reaches, hooks, secrets, GPU resources and the security context."""

from __future__ import annotations

import base64
import copy
import functools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "vajracast"
# The oldest Kubernetes the chart supports (Chart.yaml's kubeVersion) and a recent one.
KUBE_VERSIONS = ["1.27.0", "1.34.0"]
RELEASE = "vajracast"
NAMESPACE = "live"

SECRETS = {
    "databaseUrl": "postgres://vajracast:pw@db.example.net:5432/vajracast",
    "brokerUrl": "redis://redis.example.net:6379/0",
    "redisUrl": "redis://redis.example.net:6379/1",
}

VALUE_SETS: dict[str, dict[str, Any]] = {
    # What an install needs at the least: where the database and Redis are.
    "default": {"secrets": SECRETS},
    "gpu": {
        "secrets": SECRETS,
        "gpu": {"enabled": True, "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        "worker": {"replicas": 1, "nodeSelector": {"pool": "encoders"}},
    },
    "loadbalancer": {
        "secrets": SECRETS,
        "publicHost": "gw.example.net",
        "worker": {"replicas": 3},
        "listeners": {
            "firstPort": 9000,
            "portsPerWorker": 5,
            "rtmp": {"port": 1935, "portStep": 0},
            "service": {"type": "LoadBalancer", "annotations": {"example.net/lb": "nlb"}},
        },
    },
    "hostnetwork-ingress": {
        "secrets": {"existingSecret": "vajracast-managed"},
        "listeners": {"hostNetwork": True, "firstPort": 9000, "rtmp": {"port": 1935, "portStep": 0}},
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "hosts": [{"host": "gw.example.net"}],
            "tls": [{"secretName": "gw-tls", "hosts": ["gw.example.net"]}],
        },
        "dataVolume": {"existingClaim": "vajracast-data"},
    },
}


@functools.cache
def _chart() -> helm.Chart:
    return helm.Chart.load(CHART)


def render_raw(values: dict[str, Any]) -> dict[str, str]:
    return _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


@functools.cache
def _render_cached(key: str) -> str:
    return json.dumps(render_raw(json.loads(key)))


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    files = json.loads(_render_cached(json.dumps(values, sort_keys=True)))
    docs: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".txt"):
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return only


def listener_services(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        doc
        for doc in of_kind(docs, "Service")
        if "statefulset.kubernetes.io/pod-name" in doc["spec"].get("selector", {})
    ]


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item for item in container(workload).get("env", [])}


# --- rendering and validation ----------------------------------------------------------------


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_manifest_is_valid_kubernetes(value_set: str, kube_version: str) -> None:
    docs = render(VALUE_SETS[value_set])
    assert len(docs) >= 8
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {kube_version}: {exc.message} at {exc.path}")


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_helm_lint_is_clean(value_set: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[value_set], strict=True, namespace=NAMESPACE, kube_version="v1.34.0")
    problems = [message for message in report["messages"] if message["severity"] >= 2]
    assert not problems, problems
    assert not report["errors"], report["errors"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_selectors_reach_the_pods_they_are_for(value_set: str) -> None:
    docs = render(VALUE_SETS[value_set])
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "StatefulSet")
    for workload in workloads:
        wanted = workload["spec"]["selector"]["matchLabels"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert wanted.items() <= labels.items(), workload["metadata"]["name"]
    statefulsets = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "StatefulSet")}
    for service in of_kind(docs, "Service"):
        selector = dict(service["spec"]["selector"])
        pod_name = selector.pop("statefulset.kubernetes.io/pod-name", None)
        matching = [w for w in workloads if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)} workloads"
        if pod_name is not None:
            # The label the StatefulSet controller puts on each pod: <statefulset>-<ordinal>.
            statefulset = statefulsets[matching[0]["metadata"]["name"]]
            base, _, ordinal = pod_name.rpartition("-")
            assert base == statefulset["metadata"]["name"]
            assert 0 <= int(ordinal) < statefulset["spec"]["replicas"]
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            backend = rule["http"]["paths"][0]["backend"]["service"]
            target = one(docs, "Service", backend["name"])
            assert backend["port"]["name"] in {port["name"] for port in target["spec"]["ports"]}


# --- web ----------------------------------------------------------------------------------------


def test_web_probes_and_service() -> None:
    docs = render(VALUE_SETS["default"])
    web = one(docs, "Deployment", "vajracast-web")
    main = container(web)
    assert main["args"] == ["web"]
    assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    probes = {kind: main[kind]["httpGet"] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"]["path"] == "/api/health"
    assert probes["startupProbe"]["path"] == "/api/health"
    # Readiness stays on /api/health by default: /api/ready fails while any enabled route waits
    # for a worker, which must not take the UI away (values.yaml, docs/deployment.md).
    assert probes["readinessProbe"]["path"] == "/api/health"
    for probe in probes.values():
        assert probe["port"] == "http"
        # Django refuses a Host it does not know; the kubelet would send the pod's IP.
        assert probe["httpHeaders"] == [{"name": "Host", "value": "localhost"}]
    config = one(docs, "ConfigMap", "vajracast-config")["data"]
    assert "localhost" in config["ALLOWED_HOSTS"].split(",")

    service = one(docs, "Service", "vajracast-web")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}]

    env = env_of(web)
    # The Job migrates; the image's web command would otherwise migrate too, in every pod at once.
    assert env["VAJRACAST_MIGRATE"]["value"] == "false"
    assert env["WEB_CONCURRENCY"]["value"] == "2"
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]["value"]
    mounts = {mount["mountPath"]: mount["name"] for mount in main["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in web["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mounts[multiproc]] == {"name": mounts[multiproc], "emptyDir": {}}
    assert "emptyDir" in volumes[mounts["/var/lib/vajracast"]]


def test_web_readiness_can_be_the_full_check() -> None:
    docs = render({"secrets": SECRETS, "web": {"readinessPath": "/api/ready"}})
    main = container(one(docs, "Deployment", "vajracast-web"))
    assert main["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert main["livenessProbe"]["httpGet"]["path"] == "/api/health"


def test_ingress_hosts_are_allowed_and_trusted() -> None:
    docs = render(VALUE_SETS["hostnetwork-ingress"])
    ingress = one(docs, "Ingress", "vajracast")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["rules"][0]["host"] == "gw.example.net"
    config = one(docs, "ConfigMap", "vajracast-config")["data"]
    assert config["ALLOWED_HOSTS"].split(",") == ["localhost", "gw.example.net"]
    assert config["CSRF_TRUSTED_ORIGINS"] == "https://gw.example.net"
    assert not of_kind(render(VALUE_SETS["default"]), "Ingress")


# --- workers and their listener ports ----------------------------------------------------------


def expected_ports(values: dict[str, Any], ordinal: int) -> tuple[list[int], int]:
    listeners = _chart().merge_values(values)["listeners"]
    first = listeners["firstPort"] + ordinal * listeners["portsPerWorker"]
    rtmp = listeners["rtmp"]["port"] + ordinal * listeners["rtmp"]["portStep"]
    return list(range(first, first + listeners["portsPerWorker"])), rtmp


@pytest.mark.parametrize("value_set", ["default", "loadbalancer", "gpu"])
def test_each_worker_gets_a_service_with_its_own_ports(value_set: str) -> None:
    values = VALUE_SETS[value_set]
    docs = render(values)
    merged = _chart().merge_values(values)
    replicas = merged["worker"]["replicas"]
    service_type = merged["listeners"]["service"]["type"]
    services = sorted(listener_services(docs), key=lambda doc: doc["metadata"]["name"])
    assert [doc["metadata"]["name"] for doc in services] == [f"vajracast-worker-{i}" for i in range(replicas)]
    port_files = one(docs, "ConfigMap", "vajracast-worker-ports")["data"]
    seen: set[tuple[str, int]] = set()
    for ordinal, service in enumerate(services):
        udp, rtmp = expected_ports(values, ordinal)
        spec = service["spec"]
        assert spec["type"] == service_type
        assert spec["selector"]["statefulset.kubernetes.io/pod-name"] == f"vajracast-worker-{ordinal}"
        assert [p["port"] for p in spec["ports"] if p["protocol"] == "UDP"] == udp
        assert [p["port"] for p in spec["ports"] if p["protocol"] == "TCP"] == [rtmp]
        for port in spec["ports"]:
            assert port["targetPort"] == port["port"]
            # Encoders are told the listener's own port: the outside port must be the same.
            if service_type == "NodePort":
                assert port["nodePort"] == port["port"]
            else:
                assert "nodePort" not in port
        # The worker reads its range from these files (VAJRACAST_PORT_MIN_FILE/_MAX_FILE).
        assert port_files[f"vajracast-worker-{ordinal}.min"] == str(udp[0])
        assert port_files[f"vajracast-worker-{ordinal}.max"] == str(udp[-1])
        if service_type == "NodePort":
            for port in spec["ports"]:
                key = (port["protocol"], port["nodePort"])
                assert key not in seen, f"node port {key} given twice"
                seen.add(key)
        else:
            assert spec["externalTrafficPolicy"] == "Local"
            assert service["metadata"]["annotations"] == {"example.net/lb": "nlb"}


def test_loadbalancer_set_exposes_rtmp_1935_on_every_worker() -> None:
    services = listener_services(render(VALUE_SETS["loadbalancer"]))
    assert len(services) == 3
    for service in services:
        (rtmp,) = [port for port in service["spec"]["ports"] if port["name"] == "rtmp"]
        assert (rtmp["protocol"], rtmp["port"]) == ("TCP", 1935)


def test_worker_is_its_own_node() -> None:
    docs = render(VALUE_SETS["default"])
    worker = one(docs, "StatefulSet", "vajracast-worker")
    assert worker["spec"]["replicas"] == 2
    assert worker["spec"]["podManagementPolicy"] == "Parallel"
    assert one(docs, "Service", worker["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    main = container(worker)
    assert main["args"] == ["worker"]
    env = env_of(worker)
    assert env["VAJRACAST_NODE_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["VAJRACAST_PORT_MIN_FILE"]["value"] == "/etc/vajracast/ports/$(VAJRACAST_NODE_NAME).min"
    assert env["VAJRACAST_PORT_MAX_FILE"]["value"] == "/etc/vajracast/ports/$(VAJRACAST_NODE_NAME).max"
    # A variable may only refer to one defined before it.
    names = [item["name"] for item in main["env"]]
    assert names.index("VAJRACAST_NODE_NAME") < names.index("VAJRACAST_PORT_MIN_FILE")
    mounts = {mount["name"]: mount["mountPath"] for mount in main["volumeMounts"]}
    assert mounts["ports"] == "/etc/vajracast/ports"
    config = one(docs, "ConfigMap", "vajracast-config")["data"]
    assert config["VAJRACAST_MAX_ROUTES"] == "64"
    # Both NAME and NAME_FILE set is refused by the settings reader.
    assert "VAJRACAST_PORT_MIN" not in config
    assert "hostNetwork" not in worker["spec"]["template"]["spec"]


def test_host_network_replaces_the_listener_services() -> None:
    docs = render(VALUE_SETS["hostnetwork-ingress"])
    assert not listener_services(docs)
    spec = one(docs, "StatefulSet", "vajracast-worker")["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "ClusterFirstWithHostNet"
    required = spec["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required[0]["topologyKey"] == "kubernetes.io/hostname"


def test_shared_data_volume_reaches_web_and_workers() -> None:
    docs = render(VALUE_SETS["hostnetwork-ingress"])
    for kind, name in (("Deployment", "vajracast-web"), ("StatefulSet", "vajracast-worker")):
        volumes = {v["name"]: v for v in one(docs, kind, name)["spec"]["template"]["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "vajracast-data"}


# --- GPU ----------------------------------------------------------------------------------------


def test_gpu_on_asks_for_the_device_and_lands_on_gpu_nodes() -> None:
    docs = render(VALUE_SETS["gpu"])
    worker = one(docs, "StatefulSet", "vajracast-worker")
    pod = worker["spec"]["template"]["spec"]
    main = container(worker)
    assert main["image"] == "vajracast:0.1.0-gpu"
    assert main["resources"]["limits"]["gpu.intel.com/i915"] == 1
    assert main["resources"]["limits"]["memory"] == "2Gi"
    assert pod["nodeSelector"] == {"pool": "encoders", "intel.feature.node.kubernetes.io/gpu": "true"}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["securityContext"]["supplementalGroups"] == [44, 993]
    # Only the workers encode: web, beat and migrations keep the default image and no device.
    for kind, name in (("Deployment", "vajracast-web"), ("Deployment", "vajracast-beat"), ("Job", "vajracast-migrate")):
        other = one(docs, kind, name)
        assert container(other)["image"] == "vajracast:0.1.0"
        assert "gpu.intel.com/i915" not in container(other)["resources"].get("limits", {})
        assert "supplementalGroups" not in other["spec"]["template"]["spec"]["securityContext"]


@pytest.mark.parametrize("value_set", ["default", "loadbalancer", "hostnetwork-ingress"])
def test_gpu_off_asks_for_nothing(value_set: str) -> None:
    for workload in [
        *of_kind(render(VALUE_SETS[value_set]), "Deployment"),
        *of_kind(render(VALUE_SETS[value_set]), "StatefulSet"),
    ]:
        pod = workload["spec"]["template"]["spec"]
        assert not any("gpu" in key for key in container(workload)["resources"].get("limits", {}))
        assert "nodeSelector" not in pod
        assert "tolerations" not in pod
        assert "supplementalGroups" not in pod["securityContext"]
        assert not container(workload)["image"].endswith("-gpu")


def test_gpu_image_can_be_named() -> None:
    values = copy.deepcopy(VALUE_SETS["gpu"])
    values["image"] = {"repository": "registry.example.net/vajracast", "tag": "1.2.3"}
    docs = render(values)
    assert (
        container(one(docs, "StatefulSet", "vajracast-worker"))["image"] == "registry.example.net/vajracast:1.2.3-gpu"
    )
    assert container(one(docs, "Deployment", "vajracast-web"))["image"] == "registry.example.net/vajracast:1.2.3"
    values["gpu"]["image"] = {"repository": "registry.example.net/vajracast-gpu", "tag": "1.2.3-vaapi"}
    worker = one(render(values), "StatefulSet", "vajracast-worker")
    assert container(worker)["image"] == "registry.example.net/vajracast-gpu:1.2.3-vaapi"


# --- beat, migrations, secrets, security ---------------------------------------------------------


def test_beat_is_a_single_replica_recreated() -> None:
    beat = one(render(VALUE_SETS["default"]), "Deployment", "vajracast-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert container(beat)["args"] == ["beat"]


def test_migrations_run_as_a_hook_before_install_and_upgrade() -> None:
    docs = render(VALUE_SETS["default"])
    job = one(docs, "Job", "vajracast-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert container(job)["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The release's own Secret does not exist yet at pre-install: the Job reads a hook Secret
    # created before it (a lower weight).
    ref = env_of(job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]
    hook_secret = one(docs, "Secret", ref["name"])
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert ref["key"] in hook_secret["data"]


def test_secret_holds_the_connection_strings() -> None:
    docs = render(VALUE_SETS["default"])
    data = {
        key: base64.b64decode(value).decode() for key, value in one(docs, "Secret", "vajracast-env")["data"].items()
    }
    assert data["DATABASE_URL"] == SECRETS["databaseUrl"]
    assert data["CELERY_BROKER_URL"] == SECRETS["brokerUrl"]
    assert data["REDIS_URL"] == SECRETS["redisUrl"]
    assert len(data["SECRET_KEY"]) == 50
    assert "VAJRACAST_METRICS_TOKEN" not in data
    for workload in [*of_kind(docs, "Deployment"), *of_kind(docs, "StatefulSet")]:
        refs = [source["secretRef"]["name"] for source in container(workload)["envFrom"] if "secretRef" in source]
        assert refs == ["vajracast-env"], workload["metadata"]["name"]


def test_existing_secret_replaces_the_charts_secrets() -> None:
    docs = render(VALUE_SETS["hostnetwork-ingress"])
    assert not of_kind(docs, "Secret")
    job = one(docs, "Job", "vajracast-migrate")
    assert env_of(job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "vajracast-managed"
    web = one(docs, "Deployment", "vajracast-web")
    assert {"secretRef": {"name": "vajracast-managed"}} in container(web)["envFrom"]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_pod_runs_unprivileged(value_set: str) -> None:
    docs = render(VALUE_SETS[value_set])
    workloads = [*of_kind(docs, "Deployment"), *of_kind(docs, "StatefulSet"), *of_kind(docs, "Job")]
    assert len(workloads) == 4
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001
        assert pod["automountServiceAccountToken"] is False
        context = container(workload)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        # Writable places are volumes: the data dir and /tmp.
        mounted = {mount["mountPath"] for mount in container(workload)["volumeMounts"]}
        assert {"/var/lib/vajracast", "/tmp"} <= mounted


def test_image_tag_defaults_to_the_app_version_and_can_be_pinned() -> None:
    docs = render(VALUE_SETS["default"])
    assert (
        container(one(docs, "Deployment", "vajracast-web"))["image"] == f"vajracast:{_chart().metadata['appVersion']}"
    )
    pinned = render({**VALUE_SETS["default"], "image": {"repository": "vajracast", "tag": "0.1.1"}})
    images = {
        container(w)["image"]
        for w in [*of_kind(pinned, "Deployment"), *of_kind(pinned, "StatefulSet"), *of_kind(pinned, "Job")]
    }
    assert images == {"vajracast:0.1.1"}


# --- values the chart refuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({}, "/secrets/databaseUrl"),
        ({"secrets": {**SECRETS, "databaseUrl": ""}}, "/secrets/databaseUrl"),
        ({"secrets": {**SECRETS, "databaseUrl": "mysql://x/y"}}, "/secrets/databaseUrl"),
        ({"secrets": SECRETS, "worker": {"replicas": "two"}}, "/worker/replicas"),
        ({"secrets": SECRETS, "listeners": {"service": {"type": "ClusterIP"}}}, "/listeners/service/type"),
        ({"secrets": SECRETS, "listeners": {"service": {"type": "ExternalName"}}}, "/listeners/service/type"),
        ({"secrets": SECRETS, "web": {"service": {"type": "Ingress"}}}, "/web/service/type"),
        ({"secrets": SECRETS, "listeners": {"firstPort": 70000}}, "/listeners/firstPort"),
        ({"secrets": SECRETS, "gpu": {"enabled": "yes"}}, "/gpu/enabled"),
        ({"secrets": SECRETS, "worker": {"replica": 3}}, "replica"),
        ({"secrets": SECRETS, "web": {"readinessPath": "/healthz"}}, "/web/readinessPath"),
        ({"secrets": {**SECRETS, "metricsToken": "short"}}, "/secrets/metricsToken"),
    ],
)
def test_bad_values_are_refused_by_the_schema(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=complaint):
        render_raw(values)


def test_existing_secret_makes_the_urls_optional() -> None:
    docs = render({"secrets": {"existingSecret": "mine"}})
    assert one(docs, "Deployment", "vajracast-web")


@pytest.mark.parametrize(
    ("listeners", "complaint"),
    [
        ({"firstPort": 9000}, "must lie within listeners.service.nodePortRange"),
        ({"rtmp": {"port": 1935}}, "listeners.rtmp.port"),
        ({"rtmp": {"portStep": 0}}, "listeners.rtmp.portStep"),
    ],
)
def test_node_ports_outside_the_cluster_range_are_refused(listeners: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=complaint):
        render_raw({"secrets": SECRETS, "listeners": listeners})


# --- YAML lint ---------------------------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    # The chart's templates are Go templates, not YAML (.yamllint leaves them out); they are
    # checked above by rendering and validating what they produce.
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "--format", "parsable", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "yamllint", "--list-files", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    linted = {Path(path).as_posix().removeprefix("./") for path in listed}
    assert {"helm/vajracast/values.yaml", "helm/vajracast/Chart.yaml", "monitoring/alerts.yaml"} <= linted
    assert not any("/templates/" in path for path in linted)
