"""Interactive `microforge new` (no --spec): the prompts through prompt_toolkit's pipe input, and
the whole command on a pseudo-terminal."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from microforge.interactive import Prompter, ask_spec, enum_values, matches, positive_int
from microforge.plan import spec_from_data
from microforge.spec.naming import IDENTIFIER_PATTERN, SERVICE_NAME_PATTERN

DOWN = "\x1b[B"


def answer(*keys: str) -> dict[str, object]:
    """Run `ask_spec` with the keystrokes given (typed ahead; each prompt takes its own)."""
    with create_pipe_input() as pipe:
        pipe.send_text("".join(keys))
        return ask_spec(Prompter(input=pipe, output=DummyOutput()))


def test_prompts_build_a_valid_spec() -> None:
    spec = answer(
        "shop\r",
        "Things we sell\r",
        "Product\r",
        "sku\r",
        "\r",  # type: string (the default)
        "64\r",  # max length
        "y",  # required
        "status\r",
        DOWN * 12 + "\r",  # enum
        "ACTIVE, RETIRED\r",
        "n",
        "\r",  # no more fields
        DOWN * 4 + " \r",  # operations: all but delete
        "Line\r",
        "product_id\r",
        DOWN * 13 + "\r",  # ref
        "\r",  # to Product (the first entity)
        "y",
        "quantity\r",
        DOWN * 2 + "\r",  # integer
        "n",
        "\r",
        "\r",  # all operations
        "\r",  # no more entities
    )
    assert spec == {
        "name": "shop",
        "description": "Things we sell",
        "entities": [
            {
                "name": "Product",
                "fields": [
                    {"name": "sku", "type": "string", "max_length": 64, "required": True},
                    {"name": "status", "type": "enum", "values": ["ACTIVE", "RETIRED"]},
                ],
                "operations": ["create", "read", "list", "update"],
            },
            {
                "name": "Line",
                "fields": [
                    {"name": "product_id", "type": "ref", "to": "Product", "required": True},
                    {"name": "quantity", "type": "integer"},
                ],
            },
        ],
    }
    assert spec_from_data(spec).spec.package == "shop_service"


def test_invalid_answers_are_asked_again() -> None:
    spec = answer(
        "Shop\r",  # not a service name: refused, the text stays in the buffer
        "\x7f" * 4 + "shop\r",  # fixed
        "\r",  # no description
        "item\r",  # not PascalCase
        "\x7f" * 4 + "Item\r",
        "id\r",  # reserved
        "\x7f\x7fcode\r",
        "\r",
        "\r",
        "n",
        "\r",
        "\r",
        "\r",
    )
    assert spec["name"] == "shop"
    assert "description" not in spec
    assert spec["entities"] == [{"name": "Item", "fields": [{"name": "code", "type": "string"}]}]


def test_validators() -> None:
    check = matches(r"^[a-z]+$", "a name", ["taken"], optional=True)
    assert check("") is True
    assert check("fine") is True
    assert check("taken") == "'taken' is already used"
    assert isinstance(check("Nope"), str)
    field = matches(IDENTIFIER_PATTERN, "a field name")
    assert field("x" * 48) is True
    assert field("x" * 49).startswith(
        "a field name is too long: 49 characters, at most 48 are allowed"
    )
    assert field("Bad").startswith("a field name must match")
    assert matches(SERVICE_NAME_PATTERN, "the service name")("s" * 32).startswith(
        "the service name is too long: 32 characters, at most 31 are allowed"
    )
    assert positive_int("") is True
    assert positive_int("12") is True
    assert isinstance(positive_int("0"), str)
    assert enum_values("A, B") is True
    assert enum_values("A, A") == "the values must be distinct"
    assert isinstance(enum_values("1x"), str)
    assert isinstance(enum_values(" , "), str)


ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal:
    """A minimal `expect` over a pseudo-terminal (stdlib only)."""

    def __init__(self, *args: str) -> None:
        import pty

        self.master, slave = pty.openpty()
        env = {**os.environ, "TERM": "xterm", "COLUMNS": "100", "LINES": "40"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "microforge.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
        )
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.encode() in ANSI.sub(b"", self.seen):
                self.seen = b""
                return
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                self.seen += data
                if b"\x1b[6n" in data:  # prompt_toolkit asks where the cursor is
                    os.write(self.master, b"\x1b[1;1R")
        raise AssertionError(
            f"never saw {text!r}; last output: {ANSI.sub(b'', self.seen)[-800:]!r}"
        )

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> int:
        try:
            return self.process.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs POSIX pseudo-terminals")
def test_new_asks_on_a_terminal_and_saves_the_spec(tmp_path: Path) -> None:
    dest = tmp_path / "shop"
    term = Terminal("new", str(dest))
    try:
        for prompt, keys in [
            ("Service name", "shop\r"),
            ("Description", "A shop\r"),
            ("Entity name", "Item\r"),
            ("field name", "title\r"),
            ("type", "\r"),
            ("max length", "80\r"),
            ("required", "y"),
            ("field name", "\r"),
            ("operations", "\r"),
            ("Entity name", "\r"),
        ]:
            term.expect(prompt)
            term.send(keys)
        term.expect("Next steps", timeout=90)
    finally:
        status = term.close()
    assert status == 0
    saved = yaml.safe_load((dest / "spec.yaml").read_text(encoding="utf-8"))
    assert saved == {
        "name": "shop",
        "description": "A shop",
        "entities": [
            {
                "name": "Item",
                "fields": [{"name": "title", "type": "string", "max_length": 80, "required": True}],
            }
        ],
    }
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert answers["spec"] == saved
    tracked = subprocess.run(
        ["git", "ls-files", "spec.yaml"], cwd=dest, capture_output=True, text=True, check=True
    )
    assert tracked.stdout.strip() == "spec.yaml"
