"""Install what renders and validates deploy/k8s, from the registries this project uses.

    uv run python deploy/k8s/tools/ensure_validators.py     # prints where everything is

- kustomize and kubeconform: `go install` from the Go module proxy;
- the Kubernetes JSON schemas: the ones the PyPI package kubernetes-validate bundles;
- the CRDs of the operators the production overlay needs: Strimzi's generated from its API
  classes on Maven Central (with Strimzi's own generator), CloudNativePG's and KEDA's taken
  from their Go modules; each turned into the JSON schema files kubeconform reads.

Versions are pinned in versions.toml beside this file. Everything lands under
`~/.cache/qianliyan/k8s` (the stack's cache folder, so QLY_STACK_CACHE_DIR moves it too),
one folder per version, each built in a staging folder and moved into place whole: a warm
cache answers at once, a cold one takes a few minutes (two Go builds on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qianliyan.stack.config import StackConfig
from qianliyan.stack.process import (
    StackError,
    log_tail,
    provision_once,
    require_program,
    run_logged,
)

HERE = Path(__file__).resolve().parent
VERSIONS: dict[str, dict[str, str]] = tomllib.loads((HERE / "versions.toml").read_text())

# The custom resources deploy/k8s uses. Strimzi's: the API class to generate each CRD from,
# and its file name; the Go modules': the files to take from each module.
STRIMZI_KINDS = {
    "io.strimzi.api.kafka.model.kafka.Kafka": "kafka.strimzi.io_kafkas.yaml",
    "io.strimzi.api.kafka.model.nodepool.KafkaNodePool": "kafka.strimzi.io_kafkanodepools.yaml",
    "io.strimzi.api.kafka.model.topic.KafkaTopic": "kafka.strimzi.io_kafkatopics.yaml",
}
GO_MODULE_FILES = {
    "cloudnative-pg": (
        "github.com/cloudnative-pg/cloudnative-pg",
        ["config/crd/bases/postgresql.cnpg.io_clusters.yaml"],
    ),
    "keda": (
        "github.com/kedacore/keda/v2",
        [
            "config/crd/bases/keda.sh_scaledobjects.yaml",
            # The kafka trigger's metadata is a free-form map in the CRD; the scaler's source
            # names the keys it reads, so the test can check ours against it.
            "pkg/scalers/kafka_scaler.go",
        ],
    ),
}
# Bumped whenever `strict` or `file_relative` changes, so schemas an older one made are not
# reused from the cache.
CONVERTER = "strict2"


@dataclass(frozen=True)
class Validators:
    """Where the tools and schemas are, once installed."""

    kustomize: Path
    kubeconform: Path
    kubernetes_schemas: Path
    crd_schemas: tuple[Path, ...]
    crds: tuple[Path, ...]
    keda_kafka_scaler: Path

    def schema_locations(self) -> list[str]:
        """kubeconform `-schema-location` templates: the core schemas, then each CRD set."""
        core = f"{self.kubernetes_schemas}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json"
        crds = [
            f"{folder}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}_{{{{ .ResourceAPIVersion }}}}.json"
            for folder in self.crd_schemas
        ]
        return [core, *crds]


def cache_root() -> Path:
    """`~/.cache/qianliyan/k8s`, or under QLY_STACK_CACHE_DIR / XDG_CACHE_HOME when set."""
    return StackConfig().cache_dir / "k8s"


def ensure() -> Validators:
    """Install whatever of the pinned tools and schemas is missing; say where all of it is."""
    root = cache_root()
    tools, schemas = VERSIONS["tools"], VERSIONS["schemas"]
    kustomize = _go_binary(
        root, "kustomize", f"sigs.k8s.io/kustomize/kustomize/v5@{tools['kustomize']}"
    )
    kubeconform = _go_binary(
        root, "kubeconform", f"github.com/yannh/kubeconform/cmd/kubeconform@{tools['kubeconform']}"
    )
    kubernetes = _kubernetes_schemas(root, schemas["kubernetes-validate"], schemas["kubernetes"])
    strimzi = _strimzi_crds(root, schemas["strimzi"])
    modules = {
        name: _go_module_files(root, name, f"{module}@{schemas[name]}", files)
        for name, (module, files) in GO_MODULE_FILES.items()
    }
    crd_folders = (strimzi, modules["cloudnative-pg"], modules["keda"])
    return Validators(
        kustomize=kustomize,
        kubeconform=kubeconform,
        kubernetes_schemas=kubernetes,
        crd_schemas=tuple(_crd_schemas(root, folder) for folder in crd_folders),
        crds=crd_folders,
        keda_kafka_scaler=modules["keda"] / "kafka_scaler.go",
    )


def _go_binary(root: Path, name: str, module: str) -> Path:
    version = module.rsplit("@", 1)[1]
    home = root / "bin"
    binary = home / f"{name}-{version}"

    def build(staging: Path) -> str:
        go = require_program("go", f"the Go toolchain is needed to build {name}")
        env = {**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"}
        # From a folder outside any Go module, so `go install` resolves only the tool's own.
        _run_in(staging, [go, "install", module], home / f"{name}-{version}.log", env)
        (staging / name).replace(binary)
        return f"{name} {version}: built {binary}"

    provision_once(
        home,
        is_done=binary.is_file,
        announce=f"{name} {version}: go install (first time only, about a minute)...",
        build=build,
    )
    return binary


def _kubernetes_schemas(root: Path, package_version: str, kubernetes: str) -> Path:
    home = root / "schemas"
    target = home / f"kubernetes-v{kubernetes}-strict-kv{package_version}-{CONVERTER}"
    inside = f"kubernetes_validate/kubernetes-json-schema/v{kubernetes}-local-strict"

    def fetch(staging: Path) -> str:
        spec = f"kubernetes-validate=={package_version}"
        log = home / "kubernetes-validate.log"
        uv = os.environ.get("UV") or shutil.which("uv")
        if uv:
            # `uv run` names its uv in UV: install the wheel's files into the staging folder.
            run_logged(
                [uv, "pip", "install", "--quiet", "--no-deps", "--target", staging, spec], log
            )
            found = staging / inside
        else:
            pip = require_program("pip", "pip (or uv) is needed to fetch kubernetes-validate")
            download: list[str | Path] = [
                pip,
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                staging,
                spec,
            ]
            run_logged(download, log)
            (wheel,) = staging.glob("kubernetes_validate-*.whl")
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(staging / "wheel")
            found = staging / "wheel" / inside
        if not (found / "deployment-apps-v1.json").is_file():
            raise StackError(f"{spec} has no schemas for Kubernetes {kubernetes} ({inside})")
        for schema in found.glob("*.json"):
            schema.write_text(file_relative(schema.read_text(encoding="utf-8")), encoding="utf-8")
        found.replace(target)
        return f"Kubernetes {kubernetes} schemas: {target}"

    provision_once(
        home,
        is_done=target.is_dir,
        announce=f"Kubernetes {kubernetes} JSON schemas from kubernetes-validate...",
        build=fetch,
    )
    return target


def file_relative(schema_text: str) -> str:
    """A kubernetes-validate schema that kubeconform can load from its folder.

    Their `$id` is https://kubernetes.io/api/<kind>/<version> and their references point at
    /api/_definitions.json under it, which a file loader cannot fetch: without the `$id` the
    file's own path is the base, and the references name the `_definitions.json` beside it.
    """
    schema = json.loads(schema_text)
    schema.pop("$id", None)
    return json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')


def _strimzi_crds(root: Path, version: str) -> Path:
    home = root / "crds"
    target = home / f"strimzi-{version}"

    def generate(staging: Path) -> str:
        maven = require_program("mvn", "Maven is needed to fetch Strimzi's API classes")
        java = _java(minimum=21)
        jars, crds = staging / "jars", staging / "crds"
        crds.mkdir()
        log = home / f"strimzi-{version}.log"
        shutil.copy(HERE / "strimzi-crds.pom.xml", staging / "pom.xml")
        _run_in(
            staging,
            [
                maven,
                "-q",
                "-B",
                "-f",
                staging / "pom.xml",
                f"-Dstrimzi.version={version}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={jars}",
            ],
            log,
        )
        # The arguments Strimzi's api/pom.xml gives its generator for the v1-only API.
        outputs = [f"{cls}={crds / name}" for cls, name in STRIMZI_KINDS.items()]
        _run_in(
            staging,
            [
                java,
                "-cp",
                f"{jars}/*",
                "io.strimzi.crdgenerator.CrdGenerator",
                "--crd-api-version",
                "v1",
                "--api-versions",
                "v1",
                "--storage-version",
                "v1",
                "--yaml",
                *outputs,
            ],
            log,
        )
        crds.replace(target)
        return f"Strimzi {version} CRDs: {target}"

    provision_once(
        home,
        is_done=target.is_dir,
        announce=f"Strimzi {version}: generating its CRDs from Maven Central's jars...",
        build=generate,
    )
    return target


def _go_module_files(root: Path, name: str, module: str, files: list[str]) -> Path:
    home = root / "crds"
    target = home / f"{name}-{module.rsplit('@', 1)[1]}"

    def copy(staging: Path) -> str:
        go = require_program("go", f"the Go toolchain is needed to fetch {module}")
        answer = subprocess.run(
            [go, "mod", "download", "-json", module],
            cwd=staging,
            capture_output=True,
            text=True,
            check=False,
        )
        info = json.loads(answer.stdout or "{}")
        if answer.returncode != 0 or "Dir" not in info:
            why = info.get("Error") or answer.stderr
            raise StackError(f"go mod download {module} failed: {why}")
        folder = staging / "out"
        folder.mkdir()
        for file in files:
            shutil.copy(Path(info["Dir"]) / file, folder / Path(file).name)
        folder.replace(target)
        return f"{module}: {', '.join(Path(file).name for file in files)} in {target}"

    provision_once(
        home, is_done=target.is_dir, announce=f"{module}: go mod download...", build=copy
    )
    return target


def _crd_schemas(root: Path, crds: Path) -> Path:
    home = root / "schemas"
    target = home / f"crds-{crds.name}-{CONVERTER}"

    def convert(staging: Path) -> str:
        out = staging / "schemas"
        count = 0
        for path in sorted(crds.glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                for relative, schema in crd_json_schemas(document).items():
                    (out / relative).parent.mkdir(parents=True, exist_ok=True)
                    (out / relative).write_text(json.dumps(schema, indent=1), encoding="utf-8")
                    count += 1
        if not count:
            raise StackError(f"no CRD found in {crds}")
        out.replace(target)
        return f"{count} JSON schemas from {crds.name}: {target}"

    provision_once(
        home, is_done=target.is_dir, announce=f"JSON schemas of {crds.name}...", build=convert
    )
    return target


def crd_json_schemas(crd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each served version's openAPIV3Schema as a strict JSON schema, at kubeconform's path.

    The path is `{group}/{kind}_{version}.json` with the kind in lower case, as in
    kubeconform's `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json`.
    """
    if not crd or crd.get("kind") != "CustomResourceDefinition":
        return {}
    spec = crd["spec"]
    kind = spec["names"]["kind"].lower()
    return {
        f"{spec['group']}/{kind}_{version['name']}.json": strict(
            version["schema"]["openAPIV3Schema"]
        )
        for version in spec["versions"]
        if version.get("served", True)
    }


def strict(schema: dict[str, Any], *, structural: bool = True) -> dict[str, Any]:
    """An OpenAPI v3 schema node as JSON Schema, refusing fields it does not declare.

    What the API server prunes or rejects (a misspelt field) becomes an error here: every
    object with declared properties gets `additionalProperties: false`, unless the CRD says
    it keeps unknown fields. The branches of allOf/anyOf/oneOf/not only add constraints to
    the structural schema around them (Kubernetes' rule for CRDs), so they are left open.
    OpenAPI's `nullable` and `x-kubernetes-int-or-string` become JSON Schema types, as
    kubeconform's own openapi2jsonschema does.
    """
    node = dict(schema)
    if "properties" in node:
        node["properties"] = {
            name: strict(sub, structural=structural) for name, sub in node["properties"].items()
        }
        keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields") is True
        if structural and "additionalProperties" not in node and not keeps_unknown:
            node["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = strict(node["additionalProperties"], structural=structural)
    if isinstance(node.get("items"), dict):
        node["items"] = strict(node["items"], structural=structural)
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            node[combinator] = [strict(sub, structural=False) for sub in node[combinator]]
    if "not" in node:
        node["not"] = strict(node["not"], structural=False)
    if node.get("x-kubernetes-int-or-string") is True:
        node["type"] = ["integer", "string"]
    if node.pop("nullable", False) and isinstance(node.get("type"), str):
        node["type"] = [node["type"], "null"]
    return node


def _java(minimum: int) -> str:
    """A `java` of at least this major version: JAVA_HOME, PATH, then /usr/lib/jvm."""
    for home in _java_homes():
        release = home / "release"
        if not release.is_file() or not (home / "bin" / "java").is_file():
            continue
        fields = dict(
            line.split("=", 1) for line in release.read_text().splitlines() if "=" in line
        )
        major = fields.get("JAVA_VERSION", '"0"').strip('"').split(".")[0]
        if major.isdigit() and int(major) >= minimum:
            return str(home / "bin" / "java")
    raise StackError(
        f"Strimzi's CRD generator needs Java {minimum} or newer; none found in JAVA_HOME, "
        "on PATH or under /usr/lib/jvm (this machine image keeps a Temurin JDK there)"
    )


def _java_homes() -> Iterator[Path]:
    if os.environ.get("JAVA_HOME"):
        yield Path(os.environ["JAVA_HOME"])
    on_path = shutil.which("java")
    if on_path:
        yield Path(on_path).resolve().parent.parent
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        yield from sorted(jvm.iterdir(), reverse=True)


def _run_in(
    folder: Path, command: list[str | Path], log: Path, env: dict[str, str] | None = None
) -> None:
    """Run a command in `folder`, its output appended to `log`; raise with the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        try:
            status = subprocess.run(
                [str(part) for part in command],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        except OSError as error:
            raise StackError(f"cannot run {command[0]}: {error}") from error
    if status != 0:
        raise StackError(
            f"{Path(command[0]).name} exited with status {status}; "
            f"last lines of {log}:\n{log_tail(log)}"
        )


def main() -> None:
    """Install what is missing and print where each part is."""
    try:
        found = ensure()
    except StackError as error:
        sys.exit(f"ensure_validators: {error}")
    for name, value in vars(found).items():
        shown = [str(path) for path in value] if isinstance(value, tuple) else str(value)
        print(f"{name}: {shown}")


if __name__ == "__main__":
    main()
