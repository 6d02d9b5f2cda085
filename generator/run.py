"""The run layer: run a generated service locally (migrate, then serve), or smoke-test it.

A generated service is a directory with `.copier-answers.yml` and `pyproject.toml`; its commands
run through `uv run` in that directory, outside microforge's own virtual environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .render import project_env

ANSWERS_FILE = ".copier-answers.yml"
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
SETUP_TIMEOUT = 900.0  # the first `uv run` installs the service's dependencies
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
INTERRUPTED = 130


class RunError(Exception):
    """The directory is not a runnable service, or a tool is missing (a one-line message)."""


@dataclass(frozen=True)
class Service:
    """A generated service on disk."""

    directory: Path
    name: str
    package: str


@dataclass(frozen=True)
class SmokeResult:
    """The outcome of a smoke test: `ok`, what was checked or what failed, and the log's end."""

    ok: bool
    port: int
    detail: str
    log_tail: str = ""


def find_service(directory: Path) -> Service:
    """The service generated in `directory` (its name comes from the answers' spec)."""
    answers_path = directory / ANSWERS_FILE
    if not directory.is_dir():
        raise RunError(f"{directory} is not a directory")
    if not answers_path.is_file() or not (directory / "pyproject.toml").is_file():
        raise RunError(
            f"{directory} is not a generated service (expected {ANSWERS_FILE} and pyproject.toml)"
        )
    import yaml

    try:
        answers = yaml.safe_load(answers_path.read_text(encoding="utf-8"))
        spec = answers.get("spec") if isinstance(answers, dict) else None
        if isinstance(spec, str):
            spec = yaml.safe_load(spec)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise RunError(f"cannot read {answers_path}: {error}") from None
    name = spec.get("name") if isinstance(spec, dict) else None
    if not isinstance(name, str) or not SERVICE_NAME.fullmatch(name):
        raise RunError(f"{answers_path} has no valid spec name (spec.name)")
    return Service(directory, name, f"{name.replace('-', '_')}_service")


def service_python(service: Service, env: dict[str, str], *, log: IO[bytes] | None = None) -> str:
    """The service's own Python, once `uv run` has synced its environment (the first call
    installs the dependencies; uv reports to `log`, else to our stderr).

    The service's commands then run with it directly, not under `uv run`: the server must be
    signalled directly, as whether `uv run` forwards a SIGINT depends on uv's version and on
    whether it runs on a terminal (it assumes the terminal signalled the child too, which is
    false for a child in its own process group).
    """
    uv = shutil.which("uv")
    if uv is None:
        raise RunError("uv was not found on PATH (install it: python3 -m pip install uv)")
    try:
        found = subprocess.run(
            [uv, "run", "python", "-c", "import sys; print(sys.executable)"],
            cwd=service.directory,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            timeout=SETUP_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        message = f"`uv run` took over {SETUP_TIMEOUT:.0f} s to set up the service"
        raise RunError(message) from None
    lines = found.stdout.decode(errors="replace").strip().splitlines()
    if found.returncode != 0 or not lines:
        raise RunError(f"`uv run` could not set up the service (exit status {found.returncode})")
    return lines[-1]


def module_command(python: str, service: Service, *args: str) -> list[str]:
    """`<python> -m <package> <args>`: one of the service's commands (migrate, serve, ...)."""
    return [python, "-m", service.package, *args]


def run_service(service: Service, *, port: int = 8000, host: str = "127.0.0.1") -> int:
    """Migrate the database, then serve in the foreground until Ctrl-C (or SIGTERM).

    Returns the server's exit status, or 130 (the shell's status for Ctrl-C) once an interrupt
    has stopped it: the server gets one SIGINT and shuts down gracefully.
    """
    env = project_env()
    python = service_python(service, env)
    migrate = subprocess.run(
        module_command(python, service, "migrate"), cwd=service.directory, env=env, check=False
    )
    if migrate.returncode != 0:
        return migrate.returncode
    server = subprocess.Popen(
        module_command(python, service, "serve", "--host", host, "--port", str(port)),
        cwd=service.directory,
        env=env,
        process_group=0,  # Ctrl-C reaches only us; we forward exactly one SIGINT
    )
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C may reach us twice (directly, and forwarded by a `uv run` above
        # us): once stopping has begun, further interrupts must not cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            stop(server)
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop(process: subprocess.Popen[Any]) -> None:
    """Stop a server started in its own process group: SIGINT (uvicorn's graceful shutdown),
    then SIGTERM, then SIGKILL to the whole group, each after STOP_TIMEOUT seconds."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=STOP_TIMEOUT)
            return
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (any status; connection errors raise OSError)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def smoke(service: Service, *, start_timeout: float = START_TIMEOUT) -> SmokeResult:
    """Migrate a scratch SQLite database, serve on a free port, check /health and /openapi.json."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="microforge-smoke-") as scratch:
        env = project_env(DATABASE_URL=f"sqlite+aiosqlite:///{scratch}/smoke.db")
        log_path = Path(scratch) / "service.log"
        with log_path.open("w+b") as log:
            try:
                python = service_python(service, env, log=log)
            except RunError as error:
                return SmokeResult(False, port, str(error), tail(log_path))
            migrate = subprocess.run(
                module_command(python, service, "migrate"),
                cwd=service.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
            if migrate.returncode != 0:
                detail = f"migrate failed (exit status {migrate.returncode})"
                return SmokeResult(False, port, detail, tail(log_path))
            server = subprocess.Popen(
                module_command(python, service, "serve", "--port", str(port)),
                cwd=service.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,
            )
            try:
                ok, detail = _probe(server, f"http://127.0.0.1:{port}", start_timeout)
            finally:
                stop(server)
        return SmokeResult(ok, port, detail, "" if ok else tail(log_path))


def _probe(server: subprocess.Popen[Any], base: str, start_timeout: float) -> tuple[bool, str]:
    deadline = time.monotonic() + start_timeout
    while True:
        if server.poll() is not None:
            return False, f"the server exited (status {server.returncode}) before /health answered"
        try:
            status, _ = http_get(f"{base}/health", timeout=2.0)
            if status == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False, f"/health did not answer 200 within {start_timeout:.0f} s"
        time.sleep(0.2)
    try:
        status, body = http_get(f"{base}/openapi.json")
    except OSError as error:
        return False, f"GET /openapi.json failed: {error}"
    if status != 200:
        return False, f"GET /openapi.json answered {status}"
    try:
        paths = json.loads(body).get("paths", {})
    except (ValueError, AttributeError):
        return False, "GET /openapi.json did not answer a JSON object"
    return True, f"/health 200, /openapi.json 200 ({len(paths)} paths)"


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a text file."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines))
    except OSError:
        return ""
