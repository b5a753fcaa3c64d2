"""What `kubectl apply -k` applies: valid objects, hardened pods, and settings that every
service parses and whose URLs its client libraries accept (the test that would have caught the
crash-loop on a comma-separated NATS_URL)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import redis
from nats.aio.client import Client as NatsClient

from switchboard_cli.embedded import nats_environment
from switchboard_cli.natsconf import authorization, password_env
from switchboard_cli.stack import SERVICES
from switchboard_common.bus import make_broker
from switchboard_common.settings import ServiceSettings
from tests.unit.deploy.kustomize import Obj, render
from tests.unit.deploy.support import (
    DEPLOY,
    build_settings,
    check_nats_config,
    check_nats_image,
    example_secrets,
    http_port,
)

K8S = DEPLOY / "k8s"
OVERLAYS = ["base", "overlays/dev", "overlays/prod"]
KUBERNETES_VERSION = "1.30"  # the oldest release the manifests are written for
SECRET = "switchboard-secrets"


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> list[Obj]:
    return render(K8S / request.param)


def _find(objects: list[Obj], kind: str, name: str) -> Obj:
    [found] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _pods(objects: list[Obj]) -> list[tuple[Obj, Obj]]:
    return [(o, o["spec"]["template"]["spec"]) for o in objects
            if o["kind"] in ("Deployment", "StatefulSet")]


def _container_env(objects: list[Obj], container: Obj, secret: dict[str, str]) -> dict[str, str]:
    """The environment the kubelet gives the container: envFrom first, then env in order, with
    $(VAR) references to variables defined before expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets are mounted key by key, never whole"
        env.update(_find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m[1], m[0]), var["value"])
            continue
        ref = var["valueFrom"]
        if "secretKeyRef" in ref:
            key = ref["secretKeyRef"]
            assert key["name"] == SECRET and (key["key"] in secret), key
            env[var["name"]] = secret[key["key"]]
        elif "configMapKeyRef" in ref:
            key = ref["configMapKeyRef"]
            env[var["name"]] = _find(objects, "ConfigMap", key["name"])["data"][key["key"]]
        elif "resourceFieldRef" in ref:  # CPU, divisor 1: the kubelet rounds up
            kind, resource = ref["resourceFieldRef"]["resource"].split(".")
            assert (resource, ref["resourceFieldRef"].get("divisor")) == ("cpu", "1"), var
            cpu = str(container["resources"][kind][resource])
            env[var["name"]] = str(math.ceil(int(cpu[:-1]) / 1000 if cpu.endswith("m")
                                             else float(cpu)))
        else:
            assert "fieldRef" in ref, var
            env[var["name"]] = "from-the-pod"
    return env


def test_every_object_is_valid_kubernetes(objects: list[Obj]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_secrets_are_referenced_never_applied(objects: list[Obj]) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"], \
        "a Secret in the kustomization is overwritten by every `kubectl apply -k`"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_parses_its_rendered_settings(
        objects: list[Obj], service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = _find(objects, "Deployment", service.replace("_", "-"))
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = _container_env(objects, container, example_secrets())
    settings = build_settings(env, service, monkeypatch)

    assert settings.environment == "production"
    if service == "gateway":  # trusting every proxy is safe only while the policy holds
        assert settings.forwarded_allow_ips == ["*"]
        ingress = _find(objects, "NetworkPolicy", "gateway-from-ingress")["spec"]["ingress"]
        assert [p["namespaceSelector"] for rule in ingress for p in rule["from"]] == \
            [{"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}]
    _check_nats(objects, settings, service, container)
    _check_valkey(objects, settings)
    # The probes and the Prometheus annotation reach the port the service really serves.
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert http_port(settings) == ports["http"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["http"])


def _check_nats(objects: list[Obj], settings: ServiceSettings, service: str,
                container: Obj) -> None:
    # Exactly what the service hands nats-py, through the same make_broker.
    broker = make_broker(settings.nats_url, service, user=settings.nats_user,
                         password=settings.nats_password)
    client = NatsClient()
    client._setup_server_pool(broker._connection_kwargs["servers"])  # raises where connect would
    nats = _find(objects, "StatefulSet", "nats")
    headless = _find(objects, "Service", nats["spec"]["serviceName"])
    client_port = next(p["port"] for p in headless["spec"]["ports"] if p["name"] == "client")
    pods = {f"nats-{i}.{headless['metadata']['name']}" for i in range(nats["spec"]["replicas"])}
    for server in client._server_pool:
        assert server.uri.hostname in pods and server.uri.port == client_port
    assert settings.stream_replicas <= nats["spec"]["replicas"]
    if nats["spec"]["replicas"] >= 3:
        assert settings.stream_replicas == 3, "a NATS cluster keeps every stream R3"
    # The service signs in as its own role, whose password the servers read from the same key.
    assert broker._connection_kwargs["user"] == settings.nats_user == service
    env = {v["name"]: v for v in container["env"]}
    password_key = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
    assert password_key == password_env(service)
    [server] = nats["spec"]["template"]["spec"]["containers"]
    server_env = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in server["env"]
                  if "secretKeyRef" in v.get("valueFrom", {})}
    assert server_env[password_key] == password_key


def test_nats_gets_one_go_processor_per_cpu_it_requests(objects: list[Obj]) -> None:
    """Not one per node core: idle Go processors spin after every message they wake for."""
    [server] = _find(objects, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"]
    env = _container_env(objects, server, example_secrets())
    assert int(env["GOMAXPROCS"]) == math.ceil(
        int(str(server["resources"]["requests"]["cpu"]).rstrip("m")) / 1000)
    assert nats_environment({})["GOMAXPROCS"] == "1"  # the embedded server's
    assert nats_environment({"GOMAXPROCS": "4"})["GOMAXPROCS"] == "4"


def test_nats_server_accepts_its_config(objects: list[Obj], tmp_path: Path) -> None:
    for name, text in _find(objects, "ConfigMap", "nats-config")["data"].items():
        (tmp_path / name).write_text(text)
    [server] = _find(objects, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"]
    check_nats_config(tmp_path, _container_env(objects, server, example_secrets()))
    check_nats_image(server["image"])


def test_nats_users_are_generated_from_the_bus_roles(objects: list[Obj]) -> None:
    users = _find(objects, "ConfigMap", "nats-config")["data"]["users.conf"]
    body = "".join(line for line in users.splitlines(keepends=True) if not line.startswith("#"))
    assert body == authorization(), \
        "regenerate: switchboard nats-config > deploy/k8s/base/nats-users.conf"
    [server] = _find(objects, "StatefulSet", "nats")["spec"]["template"]["spec"]["containers"]
    provided = {v["name"] for v in server["env"]}
    assert set(re.findall(r"\$(NATS_PASSWORD_\w+)", users)) <= provided
    assert "include ./users.conf" in _find(objects, "ConfigMap", "nats-config")["data"]["nats.conf"]


def _check_valkey(objects: list[Obj], settings: ServiceSettings) -> None:
    client = redis.Redis.from_url(settings.valkey_url)
    kwargs = client.connection_pool.connection_kwargs
    service = _find(objects, "Service", kwargs["host"])
    assert kwargs["port"] in [p["port"] for p in service["spec"]["ports"]]
    assert _find(objects, "StatefulSet", kwargs["host"])


def test_sign_in_links_point_at_the_ingress(objects: list[Obj]) -> None:
    public = _find(objects, "ConfigMap", "switchboard-config")["data"]["GATEWAY_PUBLIC_URL"]
    ingress = _find(objects, "Ingress", "gateway")["spec"]
    assert urlsplit(public).hostname == ingress["rules"][0]["host"]
    assert urlsplit(public).scheme == ("https" if ingress.get("tls") else "http")


def test_every_service_is_deployed_with_probes_autoscaling_and_a_budget(objects: list[Obj]
                                                                      ) -> None:
    for service in SERVICES:
        name = service.replace("_", "-")
        [container] = _find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        ports = {p["name"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert all(container[p]["httpGet"]["port"] in ports
                   for p in ("livenessProbe", "startupProbe", "readinessProbe"))
        hpa = _find(objects, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"]["name"] == name
        assert _find(objects, "PodDisruptionBudget", name)["spec"]["selector"] == \
            {"matchLabels": {"app": name}}


def test_every_pod_is_hardened_and_bounded(objects: list[Obj]) -> None:
    for workload, pod in _pods(objects):
        where = workload["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is False, where
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert "memory" in resources["limits"], where
            assert ":" in container["image"] and not container["image"].endswith(":latest")


def test_only_the_gateway_is_reachable_from_outside(objects: list[Obj]) -> None:
    for service in (o for o in objects if o["kind"] == "Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    backends = {path["backend"]["service"]["name"]
                for ingress in objects if ingress["kind"] == "Ingress"
                for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
    assert backends == {"gateway"}
    # The gateway's /metrics shares the API port: its path is claimed and closed at the edge.
    ingresses = [o for o in objects if o["kind"] == "Ingress"]
    metrics = [i for i in ingresses for rule in i["spec"]["rules"] for p in rule["http"]["paths"]
               if p["path"] == "/metrics" and p["pathType"] == "Exact"]
    assert [m["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
            for m in metrics] == ["127.0.0.1/32"]
    assert len({rule["host"] for i in ingresses for rule in i["spec"]["rules"]}) == 1
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    deny = _find(policies, "NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    scrape_ports = {8080, 8081, 8222}
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            outside = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                       for p in rule["from"] if "namespaceSelector" in p}
            ports = {p["port"] for p in rule["ports"]}
            if outside == {"ingress-nginx"}:
                assert policy["spec"]["podSelector"] == {"matchLabels": {"app": "gateway"}}
            elif outside:
                assert outside == {"monitoring"} and ports <= scrape_ports, policy
