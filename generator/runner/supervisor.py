"""Processes of a running system: each started in its own process group, its output sent to
the console with a coloured prefix (or to its own log file), restarted with backoff when it
dies, and all stopped together (SIGINT, then SIGKILL to the group after a grace period)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

COLOURS = (36, 32, 33, 35, 34, 91, 96, 92, 93, 95, 94)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_AFTER = 30.0
"""A process that ran this long before dying is restarted after the first backoff again."""
STOP_GRACE = 8.0


class Output:
    """Where the lines go: the console (prefixed, coloured on a terminal) or a file each."""

    def __init__(self, names: list[str], logs: Path | None, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.logs = logs
        self.width = max((len(n) for n in [*names, "run"]), default=3)
        colour = self.stream.isatty() and "NO_COLOR" not in os.environ
        self.colours = {
            name: COLOURS[index % len(COLOURS)] if colour else 0 for index, name in enumerate(names)
        }
        self.lock = threading.Lock()
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)

    def prefix(self, name: str) -> str:
        text = f"{name:<{self.width}} |"
        colour = self.colours.get(name, 0)
        return f"\x1b[{colour}m{text}\x1b[0m" if colour else text

    def line(self, name: str, text: str) -> None:
        """One line of `name` on the console."""
        with self.lock:
            self.stream.write(f"{self.prefix(name)} {text.rstrip()}\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of the runner itself."""
        for part in text.splitlines() or [""]:
            self.line("run", part)

    def log_file(self, name: str) -> Path | None:
        return None if self.logs is None else self.logs / f"{name}.log"


@dataclass
class ProcessSpec:
    """How to start one process; `env` is called at each (re)start (fresh tokens)."""

    name: str
    command: list[str]
    cwd: Path
    env: Callable[[], dict[str, str]]
    url: str | None = None
    ready_path: str = "/ready"


@dataclass
class Managed:
    """A supervised process: started, restarted with backoff when it dies, stopped on demand."""

    spec: ProcessSpec
    output: Output
    on_start: Callable[[Managed], None] = lambda managed: None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    _monitor: threading.Thread | None = None
    _tail: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process and its monitor (which restarts it when it dies)."""
        self._spawn()
        self._monitor = threading.Thread(target=self._watch, name=f"watch-{self.name}", daemon=True)
        self._monitor.start()

    def _spawn(self) -> None:
        log_path = self.output.log_file(self.name)
        target: Any = subprocess.PIPE
        handle = None
        if log_path is not None:
            handle = log_path.open("ab")
            target = handle
        try:
            self.process = subprocess.Popen(
                self.spec.command,
                cwd=self.spec.cwd,
                env=self.spec.env(),
                stdin=subprocess.DEVNULL,
                stdout=target,
                stderr=subprocess.STDOUT,
                process_group=0,  # Ctrl-C reaches the runner only; it stops each process
            )
        finally:
            if handle is not None:
                handle.close()
        if self.process.stdout is not None:
            threading.Thread(
                target=self._pump,
                args=(self.process.stdout,),
                name=f"pump-{self.name}",
                daemon=True,
            ).start()
        if self.stopping.is_set():  # stop_all ran while this one was starting
            self.signal(signal.SIGINT)
        self.on_start(self)

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in iter(stream.readline, b""):
            text = raw.decode(errors="replace").rstrip()
            self._tail = [*self._tail[-39:], text]
            self.output.line(self.name, text)
        stream.close()

    def tail(self) -> str:
        """The end of its output (the console case) or of its log file."""
        path = self.output.log_file(self.name)
        if path is not None:
            from ..run import tail

            return tail(path)
        return "\n".join(self._tail)

    def _watch(self) -> None:
        backoff = BACKOFF_FIRST
        started = time.monotonic()
        while True:
            process = self.process
            if process is not None:
                status = process.wait()
                if self.stopping.is_set():
                    return
                if time.monotonic() - started > STABLE_AFTER:
                    backoff = BACKOFF_FIRST
                self.output.say(
                    f"{self.name} exited (status {status}); restarting it in {backoff:.0f} s"
                )
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, BACKOFF_MAX)
            started = time.monotonic()
            self.restarts += 1
            try:
                self._spawn()
            except Exception as error:  # reported; the next round retries
                self.process = None
                self.output.say(f"{self.name} could not be restarted ({error}); trying again")
            else:
                self.output.say(f"{self.name} restarted (pid {self.pid})")

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)


def stop_all(processes: list[Managed], grace: float = STOP_GRACE) -> list[str]:
    """Stop every process: SIGINT to each group at once, SIGKILL after `grace` seconds to those
    still running. Returns the names of those that had to be killed."""
    for managed in processes:
        managed.stopping.set()
    for managed in processes:
        managed.signal(signal.SIGINT)
    deadline = time.monotonic() + grace
    killed: list[str] = []
    for managed in processes:
        process = managed.process
        if process is None:
            continue
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            killed.append(managed.name)
        managed.kill_group()  # whatever the process left in its group goes too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
    return killed
