"""`microforge run SYSTEM --smoke`: the blueprint's journey replayed once through the gateway.

A step (see the blueprint format): ``{name, call: "<METHOD> <path>", token, body, expect, save,
until, within}``. ``{var}`` in the call and in the body's strings is replaced by a variable:
saved by an earlier step (`save: {var: dotted.path}`) or built in: ``email``, ``password``
(fresh per replay), ``admin_email``, ``admin_password``, ``run`` (a unique suffix).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..spec.naming import duration_seconds

VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
DEFAULT_WITHIN = 30.0
REQUEST_TIMEOUT = 30.0
POLL_SECONDS = 0.5
BODY_SHOWN = 800
MISSING = object()


class StepFailedError(Exception):
    """A step of the journey failed: `step` names it, the message says how."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def shown(self) -> str:
        text = self.body.decode(errors="replace").strip()
        return text if len(text) <= BODY_SHOWN else text[:BODY_SHOWN] + " ..."


def builtins(system: str, admin_email: str, admin_password: str) -> dict[str, Any]:
    """The built-in variables of one replay."""
    run = secrets.token_hex(4)
    return {
        "run": run,
        "email": f"smoke-{run}@{system}.example.com",
        "password": f"Smoke-{secrets.token_urlsafe(12)}-9",
        "admin_email": admin_email,
        "admin_password": admin_password,
    }


def substitute(text: str, variables: Mapping[str, Any], step: str, *, quote: bool = False) -> str:
    """`text` with each `{var}` replaced (URL-quoted in a call's path when `quote`)."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            known = ", ".join(sorted(variables))
            raise StepFailedError(step, f"unknown variable {{{name}}} (known: {known})")
        value = str(variables[name])
        return urllib.parse.quote(value, safe="@") if quote else value

    return VARIABLE.sub(replace, text)


def fill(value: Any, variables: Mapping[str, Any], step: str) -> Any:
    """A body with its strings substituted; a string that is only `{var}` takes the value."""
    if isinstance(value, str):
        whole = VARIABLE.fullmatch(value)
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return substitute(value, variables, step)
    if isinstance(value, dict):
        return {key: fill(item, variables, step) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, variables, step) for item in value]
    return value


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (`items.0.id`), or MISSING."""
    current = document
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def request(method: str, url: str, token: str | None, body: Any) -> Answer:
    """One HTTP call (any status); connection errors raise OSError."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    call = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=REQUEST_TIMEOUT) as response:
            return Answer(int(response.status), bytes(response.read()))
    except urllib.error.HTTPError as error:
        return Answer(int(error.code), error.read())


def _expected(step: Mapping[str, Any]) -> Callable[[int], bool]:
    expect = step.get("expect")
    if expect is None:
        return lambda status: 200 <= status < 300
    allowed = set(expect) if isinstance(expect, list) else {expect}
    return lambda status: status in allowed


def _unmet(
    answer: Answer, until: Mapping[str, Any], variables: Mapping[str, Any], step: str
) -> str:
    document = answer.json()
    for path, wanted in until.items():
        wanted = fill(wanted, variables, step)
        found = lookup(document, path)
        if found is MISSING or found != wanted:
            shown = "nothing" if found is MISSING else json.dumps(found)
            return f"{path} is {shown}, not {json.dumps(wanted)}"
    return ""


def run_step(base: str, step: Mapping[str, Any], variables: dict[str, Any]) -> str:
    """Replay one step (saving its variables); a line saying what it did, or StepFailedError."""
    name = str(step.get("name"))
    method, _, path = str(step.get("call", "")).partition(" ")
    path = substitute(path, variables, name, quote=True)
    token = None
    if step.get("token"):
        holder = str(step["token"])
        if holder not in variables:
            raise StepFailedError(name, f"no variable {holder!r} holds a token (save it first)")
        token = str(variables[holder])
    body = fill(step.get("body"), variables, name)
    ok = _expected(step)
    until = step.get("until") or {}
    within = duration_seconds(str(step["within"])) if step.get("within") else DEFAULT_WITHIN
    deadline = time.monotonic() + within
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            answer = request(method, base + path, token, body)
        except OSError as error:
            raise StepFailedError(name, f"{method} {path} failed: {error}") from None
        problem = ""
        if not ok(answer.status):
            wanted = step.get("expect", "2xx")
            problem = (
                f"{method} {path} answered {answer.status} (expected {wanted}): {answer.shown()}"
            )
        elif until:
            unmet = _unmet(answer, until, variables, name)
            if unmet:
                problem = f"{method} {path}: {unmet} after {within:.0f} s: {answer.shown()}"
        if not problem:
            break
        if not until or time.monotonic() > deadline:
            raise StepFailedError(name, problem)
        time.sleep(POLL_SECONDS)
    document = answer.json()
    for variable, dotted in (step.get("save") or {}).items():
        value = lookup(document, str(dotted))
        if value is MISSING:
            raise StepFailedError(
                name, f"{method} {path}: the answer has no {dotted!r} to save: {answer.shown()}"
            )
        variables[str(variable)] = value
    seconds = time.monotonic() - started
    tries = f", {attempts} tries" if attempts > 1 else ""
    return f"{name}: {method} {path} -> {answer.status} ({seconds * 1000:.0f} ms{tries})"


def replay(
    base: str,
    journey: list[Mapping[str, Any]] | tuple[Mapping[str, Any], ...],
    variables: dict[str, Any],
    report: Callable[[str], None],
) -> None:
    """Replay every step in order through `base` (the gateway's URL); StepFailedError on the first
    that fails."""
    for step in journey:
        report("✓ " + run_step(base, step, variables))
