"""The KubeRay manifest `clusters/kuberay/raycluster.yaml` and the image it runs (`clusters/kuberay/Dockerfile`).

The RayCluster is validated against KubeRay's own CRD schema, vendored in
`tests/data/kuberay_raycluster_schema.json`: the part of `ray.io_rayclusters.yaml`'s `openAPIV3Schema`
(version v1) on the paths the manifest uses, with every `required` list, type, enum and pattern kept as
they are there, and objects closed to fields the CRD does not have (as `kubectl apply` refuses unknown
fields). After a change to the manifest that uses a new field, re-vendor from KubeRay's CRD:

    python tests/test_kuberay_manifest.py CRD.yaml COMMIT TAG > tests/data/kuberay_raycluster_schema.json

(CRD.yaml: `git show v1.7.0:ray-operator/config/crd/bases/ray.io_rayclusters.yaml` in ray-project/kuberay;
COMMIT: `git rev-parse v1.7.0^{commit}`.)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "clusters" / "kuberay" / "raycluster.yaml"
DOCKERFILE = ROOT / "clusters" / "kuberay" / "Dockerfile"
SCHEMA = Path(__file__).parent / "data" / "kuberay_raycluster_schema.json"
#: Schema keywords kept when vendoring (what decides validity of a value; descriptions dropped).
KEEP = ("type", "required", "enum", "pattern", "format", "anyOf", "x-kubernetes-int-or-string",
        "x-kubernetes-preserve-unknown-fields")


def _documents() -> dict[str, dict]:
    docs = [d for d in yaml.safe_load_all(MANIFEST.read_text()) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one document of each kind"
    return by_kind


def prune(schema: dict[str, Any], instances: list[Any], path: str = "") -> dict[str, Any]:
    """The part of ``schema`` that decides the validity of ``instances`` (values at ``path``): the kept
    keywords; the properties the instances use or the schema requires, pruned the same way; objects with
    listed properties closed (``additionalProperties: false``). Raises ValueError for a field the schema
    does not have."""
    out = {k: schema[k] for k in KEEP if k in schema}
    objects = [i for i in instances if isinstance(i, dict)]
    if "properties" in schema:
        props = schema["properties"]
        used = sorted({k for o in objects for k in o} | set(schema.get("required", [])))
        unknown = [k for k in used if k not in props]
        if unknown and not schema.get("x-kubernetes-preserve-unknown-fields"):
            raise ValueError(f"{path or '.'}: fields {unknown} are not in the CRD (allowed: {sorted(props)})")
        out["properties"] = {
            k: prune(props[k], [o[k] for o in objects if k in o], f"{path}.{k}") for k in used if k in props
        }
        if not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    if isinstance(schema.get("additionalProperties"), dict):  # a map: every value has this schema
        values = [v for o in objects for v in o.values()]
        out["additionalProperties"] = prune(schema["additionalProperties"], values, f"{path}.*")
    if "items" in schema:
        elements = [e for i in instances if isinstance(i, list) for e in i]
        out["items"] = prune(schema["items"], elements, f"{path}[]")
    return out


def vendor(crd_path: str, commit: str, tag: str) -> dict[str, Any]:
    """The vendored schema file's content for the manifest's RayCluster, from KubeRay's CRD file."""
    crd = yaml.safe_load(Path(crd_path).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return {
        "_source": {
            "repository": "https://github.com/ray-project/kuberay",
            "file": "ray-operator/config/crd/bases/ray.io_rayclusters.yaml",
            "commit": commit,
            "tag": tag,
            "part": "spec.versions[name=v1].schema.openAPIV3Schema, pruned to the fields "
                    "clusters/kuberay/raycluster.yaml uses (tests/test_kuberay_manifest.py, prune)",
        },
        "schema": prune(version["schema"]["openAPIV3Schema"], [_documents()["RayCluster"]]),
    }


# --------------------------------------------------------------------------------------------------
# the tests


def test_the_raycluster_satisfies_kuberays_crd_schema():
    import jsonschema

    vendored = json.loads(SCHEMA.read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", vendored["_source"]["commit"])
    cluster = _documents()["RayCluster"]
    jsonschema.Draft7Validator(vendored["schema"]).validate(cluster)
    assert cluster["apiVersion"] == "ray.io/v1" and cluster["metadata"]["name"]


def test_the_validation_catches_what_kubernetes_would_refuse():
    import jsonschema

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())["schema"])

    def errors(edit) -> list[str]:
        doc = _documents()["RayCluster"]
        edit(doc["spec"])
        return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]

    assert errors(lambda d: None) == []
    assert any("'groupName' is a required property" in e for e in errors(lambda d: d["workerGroupSpecs"][0].pop("groupName")))
    assert any("'containers' is a required property" in e
               for e in errors(lambda d: d["headGroupSpec"]["template"]["spec"].pop("containers")))
    assert any(e.startswith("spec.workerGroupSpecs.0.maxReplicas:") and "not of type 'integer'" in e
               for e in errors(lambda d: d["workerGroupSpecs"][0].update(maxReplicas="8")))
    assert any(e.startswith("spec.headGroupSpec.rayStartParams.num-cpus:") and "not of type 'string'" in e
               for e in errors(lambda d: d["headGroupSpec"]["rayStartParams"].update({"num-cpus": 0})))
    assert any("'tokn' is not one of" in e for e in errors(lambda d: d["authOptions"].update(mode="tokn")))
    assert any("Additional properties" in e and "rayStartParam'" in e
               for e in errors(lambda d: d["headGroupSpec"].update(rayStartParam={})))
    # and re-vendoring refuses a field the CRD does not have
    with pytest.raises(ValueError, match=r"^\.spec: fields \['rayStartParam'\] are not in the CRD"):
        prune({"type": "object", "properties": {"rayVersion": {"type": "string"}}},
              [{"rayVersion": "2.60.0", "rayStartParam": {}}], ".spec")


def test_token_auth_gpu_workers_and_shared_storage():
    docs = _documents()
    spec = docs["RayCluster"]["spec"]
    # token authentication from a Secret the README creates from the user's own token
    assert spec["authOptions"] == {"mode": "token", "secretName": "svconv-ray-token"}
    readme = (ROOT / "README.md").read_text()
    assert "kubectl create secret generic svconv-ray-token --from-file=auth_token=" in readme
    # a CPU head that runs no trial, autoscaling single-GPU workers
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert spec["enableInTreeAutoscaling"] is True
    (workers,) = spec["workerGroupSpecs"]
    assert workers["minReplicas"] < workers["maxReplicas"]
    (worker,) = workers["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    # the shared volume claim (ReadWriteMany), mounted at the same path in every pod, the sweeps' root
    claim = docs["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for group in (spec["headGroupSpec"], workers):
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/mnt/svconv"]
        assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        assert {"name": "SVCONV_SWEEPS", "value": "/mnt/svconv/sweeps"} in container["env"]


def test_the_image_has_the_ray_python_and_torch_that_pyproject_pins():
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    pyproject = (ROOT / "pyproject.toml").read_text()
    ray_pin = Requirement(re.search(r'"(ray\[default,tune\][^"]+)"', pyproject).group(1))
    torch_pin = re.search(r'"(torch==[^"]+)"', pyproject).group(1)
    python_pin = SpecifierSet(re.search(r'requires-python = "([^"]+)"', pyproject).group(1))

    dockerfile = DOCKERFILE.read_text()
    base = re.search(r"^FROM rayproject/ray:(\d+\.\d+\.\d+)-py(\d)(\d+)(?:-\S+)?$", dockerfile, re.M)
    assert base, "the image is built on Ray's own image, rayproject/ray:VERSION-pyXY-..."
    ray_version, python = base.group(1), Version(f"{base.group(2)}.{base.group(3)}")
    assert ray_pin.specifier.contains(ray_version), (str(ray_pin), ray_version)
    assert python in python_pin, (str(python_pin), python)
    assert torch_pin in dockerfile and "pip install --no-cache-dir -e ." in dockerfile

    spec = _documents()["RayCluster"]["spec"]
    assert spec["rayVersion"] == ray_version
    assert Version(ray_version) >= Version("2.52")  # token authentication
    pods = [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert len(images) == 1, "one image for every node"
    assert images.pop().endswith(f":ray{ray_version}")


def test_the_image_leaves_out_what_a_job_upload_leaves_out():
    from sweeps.submit import EXCLUDES

    ignored = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = {line.removeprefix("**/") for line in ignored if line and not line.startswith("#")}
    # Ray's gitignore-style patterns match at any depth unless anchored by "/"; a .dockerignore pattern is
    # anchored at the context root, "**/" makes it match at any depth
    wanted = {p.removeprefix("**/").removeprefix("/") for p in EXCLUDES}
    assert wanted <= patterns, wanted - patterns  # above all, no *auth_token* in an image


if __name__ == "__main__":  # re-vendor (see the module's docstring)
    json.dump(vendor(*sys.argv[1:4]), sys.stdout, indent=1, sort_keys=True)
    print()
