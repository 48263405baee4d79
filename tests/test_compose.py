"""docker-compose.yml checked without a Docker engine: schema, commands, settings, wiring; cpu profile end to end."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from dotenv import dotenv_values

from reward_service.cli import build_parser
from reward_service.config import Settings
from tests._server import rbr_exe, rbr_server

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV = dotenv_values(ROOT / ".env")
_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def interpolate(value):
    """Compose's ${VAR} / ${VAR:-default} with the .env defaults (what `docker compose config` would do)."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: ENV.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    return value


SPEC = interpolate(yaml.safe_load(COMPOSE.read_text()))
SERVICES = SPEC["services"]
RBR_SERVICES = {name: s for name, s in SERVICES.items() if s.get("image", "").startswith("rbr:")}


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_file_validates_against_the_compose_spec(tmp_path):
    ok = subprocess.run(
        [Path(sys.executable).parent / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"  # the validator must reject what Compose rejects
    broken.write_text("services:\n  web:\n    image: x\n    restart_policy: always\n")
    bad = subprocess.run(
        [Path(sys.executable).parent / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "restart_policy" in bad.stdout + bad.stderr


def test_profiles_gpu_and_cpu():
    gpu = {n for n, s in SERVICES.items() if "gpu" in s.get("profiles", [])}
    cpu = {n for n, s in SERVICES.items() if "cpu" in s.get("profiles", [])}
    assert gpu == {"grader", "rm", "reward-service", "trainer"} and cpu == {"reward-service-cpu", "trainer-cpu"}
    assert all("profiles" in s for s in SERVICES.values()), "a service without a profile starts in both stacks"
    for name in cpu:
        assert "deploy" not in SERVICES[name], f"{name}: the cpu profile must not reserve a GPU"
    for name in ("grader", "rm", "trainer"):
        assert SERVICES[name]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert ENV["COMPOSE_PROFILES"] == "gpu"


@pytest.mark.parametrize("name", sorted(RBR_SERVICES))
def test_every_command_is_a_real_rbr_subcommand(name):
    command = RBR_SERVICES[name]["command"]
    assert command[0] == "rbr"
    build_parser().parse_args(command[1:])  # SystemExit (exit 2) on an unknown subcommand or flag
    r = subprocess.run([rbr_exe(), command[1], "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if command[1] == "train":
        assert (ROOT / flag(command, "--config")).exists(), "the trainer's config is not in the image (/app)"


@pytest.mark.parametrize("name", sorted(RBR_SERVICES))
def test_every_rbr_variable_is_a_setting_the_service_reads(name):
    env = RBR_SERVICES[name].get("environment", {})
    for key in env:
        if key.startswith("RBR_"):
            assert key[4:].lower() in Settings.model_fields, f"{name}: {key} is not read by the service's settings"
        else:
            assert key in ("HF_TOKEN",), f"{name}: unexpected variable {key}"
    Settings(**{k[4:].lower(): v for k, v in env.items() if k.startswith("RBR_") and v != ""})  # values validate


def test_ports_and_urls_between_services_agree():
    def port_of(service: dict) -> int:
        return int(flag(service["command"], "--port"))

    svc = SERVICES["reward-service"]
    env = svc["environment"]
    for var, target in (("RBR_GRADER_URL", "grader"), ("RBR_RM_URL", "rm")):
        url = urlparse(env[var])
        assert url.hostname == target and url.port == port_of(SERVICES[target]), var
        assert svc["depends_on"][target]["condition"] == "service_healthy" and "healthcheck" in SERVICES[target]
    assert env["RBR_GRADER_SERVED_NAME"] == flag(SERVICES["grader"]["command"], "--served-model-name")
    assert env["RBR_RM_MODEL"] == flag(SERVICES["rm"]["command"], "--served-model-name")
    assert (
        env["RBR_GRADER_MODEL"] == SERVICES["grader"]["command"][0]
        and env["RBR_RM_TOKENIZER"] == (SERVICES["rm"]["command"][0])
    )
    assert "--runner" in SERVICES["rm"]["command"] and flag(SERVICES["rm"]["command"], "--runner") == "pooling"
    assert "--enable-prefix-caching" in SERVICES["grader"]["command"]
    for service, trainer in (("reward-service", "trainer"), ("reward-service-cpu", "trainer-cpu")):
        s, t = SERVICES[service], SERVICES[trainer]
        url = urlparse(flag(t["command"], "--service-url"))
        assert url.hostname == service and url.port == port_of(s)
        assert t["depends_on"][service]["condition"] == "service_healthy"
        published = s["ports"][0].split(":")
        assert int(published[-1]) == port_of(s) and published[0] == ENV["RBR_PORT"]
        health = " ".join(s["healthcheck"]["test"])
        assert f":{port_of(s)}/readyz" in health


@pytest.mark.model
@pytest.mark.e2e
def test_cpu_profile_services_run_end_to_end_by_hand(tmp_path):
    """reward-service-cpu then trainer-cpu, started as the compose file says, on this machine."""
    service = SERVICES["reward-service-cpu"]
    env = {k: v for k, v in service["environment"].items() if v != ""}
    with rbr_server(env) as (url, _, _):
        command = SERVICES["trainer-cpu"]["command"]
        args = list(command[1:])
        args[args.index("--service-url") + 1] = url
        args[args.index("--output-dir") + 1] = str(tmp_path / "run")
        small = ["--total-steps", "1", "--batch-size", "2", "--response-length", "8"]  # one small step
        r = subprocess.run([rbr_exe(), *args, *small], capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert r.returncode == 0, shlex.join(args) + "\n" + r.stderr[-3000:]
    policy = tmp_path / "run" / "checkpoints" / "step-000001" / "policy"
    assert (policy / "config.json").exists() and not (policy / "adapter_config.json").exists(), "full fine-tuning"
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2


def test_build_targets_are_dockerfile_stages_and_copied_paths_exist():
    text = (ROOT / "Dockerfile").read_text()
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", text, re.M))
    for name, s in SERVICES.items():
        if "build" in s:
            assert s["build"]["target"] in stages, f"{name}: no Dockerfile stage {s['build']['target']!r}"
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for path in line.split():
            assert (ROOT / path).exists(), f"Dockerfile copies {path}, which the repository does not have"
    assert "torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in text  # no CUDA torch in cpu
