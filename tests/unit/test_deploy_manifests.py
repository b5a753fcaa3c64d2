"""The deployment manifests are valid Kubernetes objects and cover every service."""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from switchboard_cli.stack import SERVICES

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(p for p in (ROOT / "deploy" / "k8s").glob("*.yaml")
                   if p.name != "kustomization.yaml")


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, "1.30", strict=True)


def test_every_service_is_deployed_in_k8s_and_compose() -> None:
    kinds = [doc for p in MANIFESTS for doc in yaml.safe_load_all(p.read_text())]
    deployed = {d["metadata"]["name"].replace("-", "_") for d in kinds
                if d["kind"] == "Deployment"}
    assert set(SERVICES) <= deployed
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert set(SERVICES) <= set(compose["services"])
    listed = yaml.safe_load((ROOT / "deploy" / "k8s" / "kustomization.yaml").read_text())
    assert {p.name for p in MANIFESTS} == set(listed["resources"])
