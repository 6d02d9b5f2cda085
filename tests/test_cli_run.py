"""`microforge run`: finding the service in a directory, refusing others, and (on a generated
service) the smoke test and a foreground run stopped by Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliInvoker, ProcessRunner

from microforge.run import STOP_TIMEOUT, RunError, find_service, free_port

TEMPLATE_READY = (
    Path(__file__).resolve().parents[1] / "template" / "pyproject.toml.jinja"
).exists()
needs_template = pytest.mark.skipif(
    not TEMPLATE_READY, reason="the service template has no pyproject.toml.jinja yet"
)


def fake_service(directory: Path, answers: str) -> Path:
    directory.mkdir()
    (directory / ".copier-answers.yml").write_text(answers, encoding="utf-8")
    (directory / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    return directory


def test_find_service_reads_the_spec_name(tmp_path: Path) -> None:
    directory = fake_service(tmp_path / "svc", "_src_path: /x\nspec:\n  name: order-lines\n")
    service = find_service(directory)
    assert service.name == "order-lines"
    assert service.package == "order_lines_service"


def test_find_service_accepts_a_spec_stored_as_text(tmp_path: Path) -> None:
    directory = fake_service(tmp_path / "svc", "spec: |\n  name: shop\n  entities: []\n")
    assert find_service(directory).package == "shop_service"


@pytest.mark.parametrize(
    "answers", ["spec: {}\n", "spec:\n  name: Bad Name\n", "just text\n", "a: [\n"]
)
def test_find_service_refuses_bad_answers(tmp_path: Path, answers: str) -> None:
    with pytest.raises(RunError):
        find_service(fake_service(tmp_path / "svc", answers))


def test_run_refuses_a_directory_that_is_not_a_service(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("run", tmp_path)
    assert result.exit_code == 2
    assert "is not a generated service" in result.stderr
    result = cli("run", tmp_path / "missing", "--smoke")
    assert result.exit_code == 2
    assert "is not a directory" in result.stderr


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example service, generated once for this module."""
    from typer.testing import CliRunner

    from microforge.cli import app

    dest = tmp_path_factory.mktemp("run") / "inventory"
    spec = Path(__file__).resolve().parents[1] / "tests/specs/inventory_example.yaml"
    result = CliRunner().invoke(app, ["new", str(dest), "--spec", str(spec), "--no-git"])
    assert result.exit_code == 0, result.output
    return dest


@needs_template
@pytest.mark.generated
def test_smoke_on_the_generated_inventory(
    microforge_process: ProcessRunner, inventory: Path
) -> None:
    result = microforge_process("run", inventory, "--smoke", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "/health 200, /openapi.json 200" in result.stdout
    assert not list(inventory.glob("*.db")), "the smoke test uses a scratch database"


def wait_for_health(
    port: int, process_alive: Callable[[], bool], output: Callable[[], str]
) -> None:
    deadline = time.monotonic() + 600
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                assert r.status == 200
                return
        except OSError:
            assert process_alive(), output()
            assert time.monotonic() < deadline, "the service never answered /health"
            time.sleep(0.3)


def interruptible() -> None:
    """Undo an inherited "ignore SIGINT" (what a shell gives a background job, e.g. a CI
    runner's), which Python keeps: a program started so does not see Ctrl-C at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_on_a_terminal_until_ctrl_c(inventory: Path, port: int) -> tuple[int, str, float]:
    """`microforge run` on a pseudo-terminal, stopped by typing Ctrl-C (the terminal driver
    signals the foreground process group): its exit status, output, and seconds to stop."""
    command = [sys.executable, "-m", "microforge.cli", "run", str(inventory), "--port", str(port)]
    pid, terminal = pty.fork()
    if pid == 0:  # the child: exec at once (nothing of pytest's may run here)
        interruptible()
        os.execv(sys.executable, command)
    chunks: list[bytes] = []

    def read_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if select.select([terminal], [], [], 0.1)[0]:
                try:
                    chunks.append(os.read(terminal, 65536))
                except OSError:  # the terminal closed: the process has exited
                    return

    def alive() -> bool:
        read_for(0.05)
        return os.waitpid(pid, os.WNOHANG) == (0, 0)

    def output() -> str:
        return b"".join(chunks).decode(errors="replace")

    try:
        wait_for_health(port, alive, output)
        started = time.monotonic()
        os.write(terminal, b"\x03")
        while True:
            read_for(0.2)
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status), output(), time.monotonic() - started
            assert time.monotonic() - started < 60, "no exit within 60 s of Ctrl-C:\n" + output()
    finally:
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(pid, os.WNOHANG) == (0, 0):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        os.close(terminal)


@needs_template
@pytest.mark.generated
@pytest.mark.parametrize("target", ["process", "terminal-group", "terminal"])
def test_run_serves_until_ctrl_c(inventory: Path, target: str) -> None:
    port = free_port()
    if target == "terminal":
        returncode, output, seconds = run_on_a_terminal_until_ctrl_c(inventory, port)
    else:
        process = subprocess.Popen(
            [sys.executable, "-m", "microforge.cli", "run", str(inventory), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
            preexec_fn=interruptible,
        )
        try:
            wait_for_health(port, lambda: process.poll() is None, lambda: process.communicate()[0])
            started = time.monotonic()
            if target == "process":
                process.send_signal(signal.SIGINT)
            else:  # a Ctrl-C's signal to every process of the foreground group, without a tty
                os.killpg(process.pid, signal.SIGINT)
            output, _ = process.communicate(timeout=60)
            seconds = time.monotonic() - started
            returncode = process.returncode
        finally:
            if process.poll() is None:
                process.kill()
    assert returncode == 130, output  # the shell's status for Ctrl-C
    assert "Finished server process" in output  # a graceful shutdown
    # ... on the first signal: stop() escalates to SIGTERM only after STOP_TIMEOUT seconds
    assert seconds < STOP_TIMEOUT, f"the server stopped only after {seconds:.1f} s:\n{output}"
    assert "Traceback" not in output
    assert "never awaited" not in output  # one SIGINT reached the server, not two
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
