"""Helpers for tests that generate projects from the template and run their own tools."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "tests" / "specs"
EXAMPLE_SPEC = REPO / "tests" / "specs" / "inventory_example.yaml"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def copier_copy(spec: dict[str, Any], dest: Path, **answers: Any) -> Path:
    """Render the template like a plain Copier user would: defaults, no --trust."""
    import copier

    copier.run_copy(
        str(REPO),
        str(dest),
        data={"spec": spec, **answers},
        defaults=True,
        unsafe=False,
        quiet=True,
        vcs_ref="HEAD",
    )
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a generated project's tools: not this repo's virtualenv."""
    inherited = {"VIRTUAL_ENV", "TEST_DATABASE_URL"}  # each leg says which database it wants
    env = {key: value for key, value in os.environ.items() if key not in inherited}
    env.update({"UV_NO_PROGRESS": "1", "PYTHONDONTWRITEBYTECODE": "1", **extra})
    # a generated suite's test that hangs prints every thread's stack (then the timeout below)
    env.setdefault("PYTEST_ADDOPTS", "-o faulthandler_timeout=240")
    return env


def execute(
    project: Path, command: tuple[str, ...], env: dict[str, str], timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run `command` in `project` with the project's clean environment, capturing its output;
    past `timeout` it is killed and reported as failed (exit -9) with what it printed."""
    try:
        return subprocess.run(
            command,
            cwd=project,
            env=clean_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        out, err = (
            part.decode(errors="replace") if isinstance(part, bytes) else part or ""
            for part in (expired.stdout, expired.stderr)
        )
        return subprocess.CompletedProcess(
            command, -9, out, f"{err}\n(killed: still running after {timeout:.0f} s)"
        )


def run(project: Path, *command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `command` in `project`; fail the test with its output when it fails."""
    result = execute(project, command, env)
    assert result.returncode == 0, (
        f"{' '.join(command)} failed in {project} ({result.returncode}):\n"
        f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
    )
    return result


def npm_tools(tools: Path, files: tuple[str, ...], name: str, ready: str, without: str) -> Path:
    """The npm packages pinned in the directory `tools` (its `files`: package.json,
    package-lock.json and any script run next to them) installed with `npm ci`, once per
    content of `files`, in `<user cache>/microforge/npm-<name>-<digest>` (a file lock serializes
    parallel test workers); that directory is returned once `ready` (a path in it) exists.
    Skips the test without node and npm (`without` says what is then not checked) or when the
    install fails (no registry)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip(f"node and npm are not on PATH: {without}")
    digest = hashlib.sha256(b"".join((tools / file).read_bytes() for file in files))
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "microforge"
    home = cache / f"npm-{name}-{digest.hexdigest()[:16]}"
    home.mkdir(parents=True, exist_ok=True)
    with (cache / f"{home.name}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not (home / ready).exists():
            for file in files:
                shutil.copyfile(tools / file, home / file)
            installed = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=home,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if installed.returncode != 0:
                pytest.skip(f"npm ci of the {name} tools failed: {installed.stderr[-500:]}")
    return home


def postgres_answers() -> bool:
    """Whether the local PostgreSQL server accepts connections."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


class Served:
    """A generated service run with `python -m <package> serve` on a free loopback port, as a
    user runs it: migrated first, its output in `<workdir>/<package>.log`; `kill` (SIGKILL) and
    `start` again simulate a crash and a restart. `env` adds to the development settings."""

    def __init__(self, project: Path, package: str, workdir: Path, **env: str) -> None:
        from microforge.run import free_port

        self.project = project
        self.package = package
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{package}.log"
        defaults = {
            "APP_ENV": "development",
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / (package + '.db')}",
            "AUTH_DEV_KEY_FILE": str(workdir / "dev-key.pem"),
            "RATE_LIMIT_DEFAULT": "off",
        }
        self.env = clean_env(**{**defaults, **env})
        # The project's own interpreter, not `uv run`: a SIGKILL must reach the server itself
        # (uv cannot pass that one on, and its orphaned child would keep serving the port).
        self.python = (str(project / ".venv" / "bin" / "python"), "-m", package)
        self._command("migrate")
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[str] | None = None
        self._tokens: dict[tuple[tuple[str, ...], str], str] = {}

    def _command(self, *args: str) -> str:
        result = subprocess.run(
            [*self.python, *args],
            cwd=self.project,
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return result.stdout.strip()

    def token(self, *scopes: str, subject: str = "developer") -> str:
        """A development token of this service (all its scopes unless some are named)."""
        if (scopes, subject) not in self._tokens:
            chosen = [arg for scope in scopes for arg in ("--scope", scope)] or ["--all-scopes"]
            self._tokens[scopes, subject] = self._command("dev-token", *chosen, "--sub", subject)
        return self._tokens[scopes, subject]

    def start(self, timeout: float = 60) -> Served:
        """Serve, and wait until `/ready` answers 200."""
        self.log = self.log_path.open("a")
        self.process = subprocess.Popen(
            [*self.python, "serve", "--port", str(self.port)],
            cwd=self.project,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        from microforge.run import http_get

        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the service exited: see {self.log_path}"
            try:
                if http_get(f"{self.url}/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.url} not ready after {timeout} s (see {self.log_path})")

    def kill(self) -> None:
        """SIGKILL: no shutdown, as a crash."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(20)
        self._close_log()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(20)
        self._close_log()

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None
