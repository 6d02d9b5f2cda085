"""The CLI's read-only commands: --help everywhere, validate, schema, usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CliInvoker, ProcessRunner

BAD_SPEC = """\
name: shop
entities:
  - name: Product
    fields:
      - {name: sku, type: strin}
      - {name: Bad-Name, type: integer}
"""


@pytest.mark.parametrize("command", [[], ["new"], ["validate"], ["schema"], ["run"]])
def test_every_command_has_help(cli: CliInvoker, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_version(cli: CliInvoker) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("microforge ")


def test_validate_accepts_the_example(cli: CliInvoker, example_spec: Path) -> None:
    result = cli("validate", example_spec)
    assert result.exit_code == 0, result.output
    assert "service inventory" in result.stdout
    assert "2 entities, 9 fields, 2 transitions" in result.stdout
    assert "/v1/categories" in result.stdout
    assert result.stderr == ""


def test_validate_reports_every_issue_with_its_position(
    microforge_process: ProcessRunner, tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SPEC, encoding="utf-8")
    result = microforge_process("validate", "bad.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("bad.yaml:5:27: entities[0].fields[0].type: unknown field type")
    assert lines[1].startswith("bad.yaml:6:16: entities[0].fields[1].name: ")
    assert "2 problems" in lines[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: [unclosed\n", "invalid YAML"),
        ("", "the spec is empty"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_validate_refuses_broken_files_cleanly(
    cli: CliInvoker, tmp_path: Path, content: str | bytes, expected: str
) -> None:
    spec = tmp_path / "spec.yaml"
    if isinstance(content, bytes):
        spec.write_bytes(content)
    else:
        spec.write_text(content, encoding="utf-8")
    result = cli("validate", spec)
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_validate_a_missing_file(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "cannot read the spec" in result.stderr


def test_schema_is_printed_as_json(cli: CliInvoker) -> None:
    result = cli("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "entities" in schema["properties"]


def test_schema_is_written_to_a_file(cli: CliInvoker, tmp_path: Path) -> None:
    target = tmp_path / "spec.schema.json"
    result = cli("schema", "-o", target)
    assert result.exit_code == 0
    assert json.loads(target.read_text(encoding="utf-8"))["title"] == "microforge service spec"


def test_schema_to_an_unwritable_place(cli: CliInvoker, tmp_path: Path) -> None:
    result = cli("schema", "--output", tmp_path / "missing" / "dir" / "schema.json")
    assert result.exit_code == 2
    assert "cannot write" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["new"],
        ["validate"],
        ["new", "out", "--database", "oracle"],
        ["run", "x", "--port", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(microforge_process: ProcessRunner, args: list[str]) -> None:
    result = microforge_process(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
