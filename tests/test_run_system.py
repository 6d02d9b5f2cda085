"""`microforge run SYSTEM`: a whole generated system run locally (tests/blueprints/kiosk: shelf,
which also stands in for the token issuer, desk calling shelf with a service token and consuming
its events, and the gateway), supervised, stopped by SIGINT, and its journey replayed (`--smoke`).
The pure parts (scopes, journey replay, secrets) are tested without generating anything."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from microforge.runner.credentials import load_secrets
from microforge.runner.journey import StepFailedError, builtins, replay
from microforge.system import call_scopes, client_scopes, read_blueprint

REPO = Path(__file__).resolve().parents[1]
KIOSK = REPO / "tests" / "blueprints" / "kiosk"
NO_BOOK = "00000000-0000-4000-8000-000000000000"


# Pure parts ------------------------------------------------------------------------------------


def test_scopes_of_each_caller_come_from_the_providers_permissions() -> None:
    specs = [service.spec for service in read_blueprint(KIOSK).services]
    # desk reads (public) and reserves (shelf:reserve) shelf's books
    assert call_scopes(specs) == {"desk": {"shelf": ["shelf:reserve"]}}
    assert client_scopes(specs) == {"desk": ["shelf:reserve"]}
    library = [s.spec for s in read_blueprint(REPO / "tests/blueprints/library").services]
    # the members' default read scope (member:read); books' reads are public
    assert call_scopes(library) == {"loans": {"books": [], "members": ["member:read"]}}


def test_secrets_are_made_once_and_kept(tmp_path: Path) -> None:
    first = load_secrets(tmp_path, "kiosk", ["desk"])
    assert first["admin_email"] == "admin@kiosk.local"
    assert len(first["admin_password"]) >= 20
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600
    again = load_secrets(tmp_path, "kiosk", ["desk", "cart"])
    assert again["admin_password"] == first["admin_password"]
    assert again["clients"]["desk"] == first["clients"]["desk"]
    assert again["clients"]["cart"]


class _Shop(BaseHTTPRequestHandler):
    """A loopback stand-in for a gateway: a login, a created item, an item seen only on the
    third read (as after an event), and 404 for the rest."""

    reads = 0

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/api/login":
            ok = body == {"username": "admin@x.local", "password": "pw"}
            self._answer(200 if ok else 401, {"access_token": "T0K"} if ok else {})
        elif self.path == "/api/items":
            ok = self.headers.get("Authorization") == "Bearer T0K"
            self._answer(201 if ok else 401, {"id": "i-1", "name": body.get("name")})
        else:
            self._answer(404, {"detail": "no such route"})

    def do_GET(self) -> None:
        if self.path == "/api/items/i-1":
            _Shop.reads += 1
            self._answer(200, {"id": "i-1", "stock": 5 if _Shop.reads >= 3 else 0})
        else:
            self._answer(404, {"detail": f"{self.path} is not here"})


@pytest.fixture
def shop() -> Iterator[str]:
    _Shop.reads = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


JOURNEY: list[dict[str, Any]] = [
    {
        "name": "login",
        "call": "POST /api/login",
        "body": {"username": "{admin_email}", "password": "{admin_password}"},
        "save": {"admin": "access_token"},
    },
    {
        "name": "add",
        "call": "POST /api/items",
        "token": "admin",
        "body": {"name": "item {run}"},
        "expect": 201,
        "save": {"item": "id"},
    },
    {"name": "stocked", "call": "GET /api/items/{item}", "until": {"stock": 5}, "within": "5s"},
]


def test_a_journey_replays_with_variables_tokens_and_until(shop: str) -> None:
    variables = builtins("x", "admin@x.local", "pw")
    lines: list[str] = []
    replay(shop, JOURNEY, variables, lines.append)
    assert variables["admin"] == "T0K"
    assert variables["item"] == "i-1"
    assert lines[1].startswith("✓ add: POST /api/items -> 201")
    assert "3 tries" in lines[2]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"name": "lost", "call": "GET /api/nothing"}, "GET /api/nothing answered 404"),
        ({"name": "teapot", "call": "GET /api/items/i-1", "expect": [418]}, "expected [418]"),
        ({"name": "anon", "call": "GET /x", "token": "nobody"}, "no variable 'nobody'"),
        ({"name": "typo", "call": "GET /api/items/{iten}"}, "unknown variable {iten}"),
        (
            {"name": "never", "call": "GET /api/items/i-1", "until": {"stock": 9}, "within": "1s"},
            "stock is 5, not 9",
        ),
    ],
)
def test_a_failing_step_is_named_with_its_status_and_body(
    shop: str, step: dict[str, Any], message: str
) -> None:
    _Shop.reads = 5
    with pytest.raises(StepFailedError) as failure:
        replay(shop, [step], builtins("x", "a", "b"), lambda line: None)
    assert failure.value.step == step["name"]
    assert message in str(failure.value)


# The whole system ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kiosk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The kiosk system, generated once for this module (no uv.lock: `uv run` resolves)."""
    from typer.testing import CliRunner

    from microforge.cli import app

    dest = tmp_path_factory.mktemp("run-system") / "kiosk"
    result = CliRunner().invoke(app, ["blueprint", str(KIOSK), "-o", str(dest), "--no-lock"])
    assert result.exit_code == 0, result.output
    return dest


def interruptible() -> None:
    """Undo an inherited "ignore SIGINT" (what a shell gives a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def microforge(*args: str | Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "microforge.cli", *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=interruptible,
        )


def get(url: str, token: str | None = None, body: object = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(
    what: str, check: Any, process: subprocess.Popen[bytes], log: Path, seconds: float
) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError, ValueError, KeyError):
            found = check()
            if found:
                return found
        assert process.poll() is None, (
            f"microforge run exited ({process.returncode}):\n"
            + (log.read_text(errors="replace")[-6000:])
        )
        assert time.monotonic() < deadline, (
            f"{what} within {seconds} s:\n" + (log.read_text(errors="replace")[-6000:])
        )
        time.sleep(0.3)


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


@pytest.mark.generated
def test_run_a_system_restarts_a_dead_service_and_stops_on_sigint(
    kiosk: Path, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    state_file = kiosk / ".microforge" / "run" / "state.json"
    process = microforge("run", kiosk, "--gateway-port", "0", log=log)
    pids: set[int] = set()
    try:
        wait_for("up", lambda: "is running" in log.read_text(), process, log, 600)
        state = json.loads(state_file.read_text())["processes"]
        pids = {int(entry["pid"]) for entry in state.values()}
        gateway, shelf, desk = (state[name]["url"] for name in ("gateway", "shelf", "desk"))
        assert get(f"{gateway}/api/shelf/v1/books")[0] == 200
        secrets = json.loads((kiosk / ".microforge/run/secrets.json").read_text())
        status, login = get(
            f"{gateway}/api/shelf/v1/tokens",
            body={
                "grant_type": "password",
                "username": secrets["admin_email"],
                "password": secrets["admin_password"],
            },
        )
        assert status == 200, login
        admin = login["access_token"]
        assert get(f"{gateway}/api/desk/v1/loans", admin) == (
            200,
            {"items": [], "next_cursor": None},
        )
        assert get(f"{gateway}/api/desk/v1/loans")[0] == 401  # the gateway wants a token there
        # desk got shelf's URL and its client credentials at the issuer: the token they give
        # (as desk's clients ask for it: HTTP Basic) carries the scope of desk's calls
        environ = Path(f"/proc/{state['desk']['pid']}/environ").read_bytes().split(b"\0")
        env = dict(item.decode().split("=", 1) for item in environ if b"=" in item)
        assert env["SHELF_SERVICE_URL"] == shelf
        assert env["BROKER_URL"] == json.loads(state_file.read_text())["broker"]
        assert env["DATABASE_URL"].endswith("/.microforge/run/desk.db")
        assert env["SERVICE_AUTH_URL"] == f"{shelf}/v1/tokens"
        assert env["SERVICE_CLIENT_ID"] == "desk"
        assert "SHELF_SERVICE_TOKEN" not in env
        basic = base64.b64encode(f"desk:{env['SERVICE_CLIENT_SECRET']}".encode()).decode()
        request = urllib.request.Request(
            env["SERVICE_AUTH_URL"],
            data=b"grant_type=client_credentials",
            headers={"Authorization": f"Basic {basic}"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            service_token = json.loads(answer.read())["access_token"]
        assert claims(service_token)["scope"] == "shelf:reserve"
        status, book = get(f"{shelf}/v1/books", admin, {"title": "Dune"})
        assert status == 201, book
        reserved = get(f"{shelf}/v1/books/{book['id']}/reserve", service_token, {})
        assert reserved[0] == 200, reserved

        os.kill(int(state["desk"]["pid"]), signal.SIGKILL)

        def restarted() -> bool:
            entry = json.loads(state_file.read_text())["processes"]["desk"]
            pids.add(int(entry["pid"]))
            return entry["restarts"] == 1 and get(f"{desk}/ready")[0] == 200

        wait_for("desk restarted", restarted, process, log, 120)
        assert "desk exited (status -9); restarting it" in log.read_text()

        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        assert process.wait(timeout=30) == 130, log.read_text()[-4000:]
        assert time.monotonic() - started < 15
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for pid in pids:  # nothing left behind, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    output = log.read_text()
    assert "stopped in" in output
    assert "Traceback" not in output
    left = [pid for pid in pids if alive(pid)]
    assert not left, f"processes left running: {left}"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{gateway}/health", timeout=2)


@pytest.mark.generated
def test_smoke_replays_the_journey(kiosk: Path, tmp_path: Path) -> None:
    log = tmp_path / "smoke.log"
    process = microforge("run", kiosk, "--smoke", "--gateway-port", "0", log=log)
    try:
        assert process.wait(timeout=600) == 0, log.read_text()[-6000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert "✓ see_book: GET /api/shelf/v1/books/" in output
    assert "the journey passed (5 steps)" in output


@pytest.mark.generated
def test_smoke_names_the_failing_step(kiosk: Path, tmp_path: Path) -> None:
    answers_path = kiosk / ".copier-answers.yml"
    original = answers_path.read_text()
    answers = yaml.safe_load(original)
    answers["system"]["journey"][2:] = [
        {"name": "lost_book", "call": f"GET /api/shelf/v1/books/{NO_BOOK}", "expect": 200}
    ]
    answers_path.write_text(yaml.safe_dump(answers))
    log = tmp_path / "smoke.log"
    try:
        logs = tmp_path / "logs"
        process = microforge(
            "run", kiosk, "--smoke", "--gateway-port", "0", "--logs", logs, log=log
        )
        try:
            assert process.wait(timeout=600) == 1, log.read_text()[-6000:]
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    finally:
        answers_path.write_text(original)
    output = log.read_text()
    assert "✓ login: POST /api/shelf/v1/tokens -> 200" in output
    assert "✗ journey step 'lost_book' failed: GET /api/shelf/v1/books/" in output
    assert f"GET /api/shelf/v1/books/{NO_BOOK} answered 404 (expected 200): {{" in output
    assert '"status":404' in output  # the service's problem+json
    # --logs: each process's output in its own file, JSON lines; only the runner's on the console
    assert sorted(path.name for path in logs.iterdir()) == [
        "desk.log",
        "gateway.log",
        "nats.log",
        "shelf.log",
    ]
    assert f"/v1/books/{NO_BOOK}" in (logs / "shelf.log").read_text()
    assert not re.search(r"^shelf +\|", output, re.MULTILINE)
    assert (kiosk / ".microforge" / "smoke" / "state.json").exists() is False


def run_at_once(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "microforge.cli", "run", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.generated
def test_bad_requests_are_refused_before_anything_starts(kiosk: Path) -> None:
    result = run_at_once(kiosk, "--database", "postgres")
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "shelf, desk were generated with database sqlite" in message
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_at_once(kiosk, "--gateway-port", str(port))
    assert result.returncode == 2
    assert f"port {port} (the gateway's) is in use" in " ".join(result.stderr.split())
    assert not (kiosk / ".microforge" / "run" / "state.json").exists()
