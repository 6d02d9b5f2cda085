"""`microforge run`: finding the service in a directory, refusing others, and (on a generated
service) the smoke test and a foreground run stopped by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import CliInvoker, ProcessRunner

from microforge.run import RunError, find_service, free_port

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
    spec = Path(__file__).resolve().parents[1] / "blueprints/ecommerce/specs/inventory.yaml"
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


@needs_template
@pytest.mark.generated
@pytest.mark.parametrize("target", ["process", "terminal-group"])
@pytest.mark.xfail(
    bool(os.environ.get("CI")),
    reason="known bug, open: on the loaded 2-core CI machine the events-enabled inventory service "
    "logged no 'Shutting down' within 60 s of Ctrl-C (passes on a quiet machine)",
    strict=False,
)
def test_run_serves_until_ctrl_c(inventory: Path, target: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "microforge.cli", "run", str(inventory), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert process.poll() is None, process.communicate()[0]
                assert time.monotonic() < deadline, "the service never answered /health"
                time.sleep(0.3)
        if target == "process":
            process.send_signal(signal.SIGINT)
        else:  # a terminal's Ctrl-C: every process of the foreground group gets it
            os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output  # the shell's status for Ctrl-C
    assert "Finished server process" in output  # a graceful shutdown
    assert "Traceback" not in output
    assert "never awaited" not in output  # one SIGINT reached the server, not two
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
