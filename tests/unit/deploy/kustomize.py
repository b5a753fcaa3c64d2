"""A renderer for the subset of kustomize that deploy/k8s uses, so the tests can check what
`kubectl apply -k` would apply without a kustomize binary (none installs from PyPI).

Supported kustomization fields, with kustomize's meaning:
- `resources`: YAML files (several documents each) and directories holding a kustomization;
- `configMapGenerator`: `{name, files: [file or key=file], options: {disableNameSuffixHash:
  true}}` (with the hash, kustomize renames the ConfigMap and every reference to it);
- `namespace`: set on every namespaced object;
- `replicas`: `{name, count}` sets `spec.replicas` of the workload of that name;
- `images`: `{name, newName, newTag, digest}` rewrites matching container images;
- `patches`: inline JSON 6902 patches (`patch: |- [ops]`) with a `target` of kind and name,
  applied with the `jsonpatch` library.
Anything else raises, so a manifest change that needs more fails loudly here instead of being
silently ignored; kustomize itself remains what operators run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonpatch
import yaml

Obj = dict[str, Any]

SUPPORTED = {"apiVersion", "kind", "resources", "configMapGenerator", "namespace", "replicas",
             "images", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "PriorityClass", "CustomResourceDefinition"}
WORKLOADS = {"Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"}


def render(directory: Path) -> list[Obj]:
    spec: Obj = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unsupported = set(spec) - SUPPORTED
    if unsupported:
        raise ValueError(f"{directory}: kustomization fields not rendered by the tests' "
                         f"renderer: {sorted(unsupported)}")
    objects: list[Obj] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    objects += [_config_map(directory, gen) for gen in spec.get("configMapGenerator", [])]
    for patch in spec.get("patches", []):
        _patch(objects, patch)
    for replicas in spec.get("replicas", []):
        _one(objects, WORKLOADS, replicas["name"])["spec"]["replicas"] = replicas["count"]
    for image in spec.get("images", []):
        _set_image(objects, image)
    if namespace := spec.get("namespace"):
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def _config_map(directory: Path, generator: Obj) -> Obj:
    if set(generator) != {"name", "files", "options"} or \
            generator["options"] != {"disableNameSuffixHash": True}:
        raise ValueError(f"only file generators without a name hash are rendered: {generator}")
    data = {}
    for entry in generator["files"]:
        key, _, file = entry.rpartition("=")
        data[key or file] = (directory / file).read_text()
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
            "data": data}


def _one(objects: list[Obj], kinds: set[str], name: str) -> Obj:
    found = [o for o in objects if o["kind"] in kinds and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise ValueError(f"expected one {sorted(kinds)} named {name!r}, found {len(found)}")
    return found[0]


def _patch(objects: list[Obj], patch: Obj) -> None:
    target = patch["target"]
    if set(patch) != {"target", "patch"} or set(target) - {"kind", "name"}:
        raise ValueError(f"only inline JSON 6902 patches by kind and name are rendered: {patch}")
    ops = yaml.safe_load(patch["patch"])
    if not isinstance(ops, list):
        raise ValueError(f"not a JSON 6902 patch (strategic merge is not rendered): {patch}")
    obj = _one(objects, {target["kind"]}, target["name"])
    patched = jsonpatch.apply_patch(obj, ops)
    obj.clear()
    obj.update(patched)


def _set_image(objects: list[Obj], image: Obj) -> None:
    matched = False
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            name = container["image"].split("@")[0].rsplit(":", 1)[0]
            if name != image["name"]:
                continue
            matched = True
            new = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{new}@{image['digest']}"
            else:
                tag = image.get("newTag", container["image"].rsplit(":", 1)[-1])
                container["image"] = f"{new}:{tag}"
    if not matched:
        raise ValueError(f"image {image['name']!r} is used by no container")
