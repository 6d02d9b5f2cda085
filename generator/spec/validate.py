"""The entry points: load, parse or validate a spec; every problem found is raised at once as a
`SpecError`, and nothing else is ever raised for bad input."""

from __future__ import annotations

from pathlib import Path as FsPath

from .errors import Finding, Path, PathElement, SpecError, SpecIssue, format_path
from .loader import DataError, Loaded, Locator, load_yaml, to_plain
from .model import ServiceSpec
from .rules import check_rules
from .structure import check_structure

EMPTY_MESSAGE = "the spec is empty; expected a mapping with at least 'name' and 'entities'"
WRAPPER_KEY = "spec"


def load_spec(path: str | FsPath) -> ServiceSpec:
    """Read and validate the spec file at `path`."""
    filename = str(path)
    try:
        raw = FsPath(path).read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        issue = SpecIssue(filename, None, None, "", f"cannot read the spec: {reason}")
        raise SpecError([issue]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        before = raw[: error.start]
        line = before.count(b"\n") + 1
        column = error.start - (before.rfind(b"\n") + 1) + 1
        message = f"the spec is not UTF-8 text (invalid byte 0x{raw[error.start]:02x})"
        raise SpecError([SpecIssue(filename, line, column, "", message)]) from None
    return parse_spec(text, filename)


def parse_spec(text: str, filename: str = "<spec>") -> ServiceSpec:
    """Parse and validate spec YAML `text`; `filename` is used in the issues."""
    if not isinstance(text, str):
        got = type(text).__name__
        raise SpecError([SpecIssue(filename, None, None, "", f"expected YAML text, got {got}")])
    return parse_loaded(load_yaml(text), filename)


def parse_loaded(loaded: Loaded, filename: str = "<spec>") -> ServiceSpec:
    """Validate the outcome of `load_yaml` (for callers that use its data and locator too)."""
    if loaded.fatal:
        raise SpecError(_resolve(loaded.findings, filename, None))
    if loaded.data is None and not loaded.findings:
        raise SpecError([SpecIssue(filename, 1, 1, "", EMPTY_MESSAGE)])
    return _validate(loaded.data, filename, loaded.locator, loaded.findings)


def validate_spec_data(data: object, filename: str = "<spec>") -> ServiceSpec:
    """Validate already-loaded spec data (no positions are known: line and column are None)."""
    try:
        plain = to_plain(data)
    except DataError as problem:
        raise SpecError([SpecIssue(filename, None, None, "", str(problem))]) from None
    except RecursionError:
        message = "the spec is nested too deeply"
        raise SpecError([SpecIssue(filename, None, None, "", message)]) from None
    return _validate(plain, filename, None, [])


def _validate(
    data: object, filename: str, locator: Locator | None, early: list[Finding]
) -> ServiceSpec:
    prefix: Path = ()
    if (
        isinstance(data, dict)
        and list(data) == [WRAPPER_KEY]
        and isinstance(data[WRAPPER_KEY], dict)
    ):
        data, prefix = data[WRAPPER_KEY], (WRAPPER_KEY,)
        if locator is not None:
            locator.prefix = prefix
    findings = [_relative(finding, prefix) for finding in early]
    if data is None:
        findings.append(Finding((), EMPTY_MESSAGE))
        raise SpecError(_resolve(findings, filename, locator))
    if not isinstance(data, dict):
        message = (
            f"the spec must be a mapping with at least 'name' and 'entities', got {_kind(data)}"
        )
        findings.append(Finding((), message))
        raise SpecError(_resolve(findings, filename, locator))
    try:
        spec, structural = check_structure(data)
        semantic = check_rules(data)
    except Exception as error:  # a bug here must still never escape as a traceback
        message = f"internal error in the spec validator (please report it): {error!r}"
        findings.append(Finding((), message))
        raise SpecError(_resolve(findings, filename, locator)) from error
    taken = {finding.path for finding in structural}
    findings += structural
    findings += [finding for finding in semantic if finding.path not in taken]
    if findings or spec is None:
        raise SpecError(_resolve(findings, filename, locator))
    return spec


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return f"a value of type {type(value).__name__}"


def _relative(finding: Finding, prefix: Path) -> Finding:
    if prefix and finding.path[: len(prefix)] == prefix:
        return Finding(
            finding.path[len(prefix) :], finding.message, finding.at, finding.line, finding.column
        )
    return finding


def _sort_key(issue: tuple[SpecIssue, Path]) -> tuple[object, ...]:
    found, path = issue
    elements: list[tuple[int, PathElement]] = [
        (0, element) if isinstance(element, int) else (1, element) for element in path
    ]
    return (
        found.line is None,
        found.line or 0,
        found.column or 0,
        elements,
        found.message,
    )


def _resolve(findings: list[Finding], filename: str, locator: Locator | None) -> list[SpecIssue]:
    """Findings as issues with positions, without duplicates, sorted by position."""
    placed: dict[tuple[str, str], tuple[SpecIssue, Path]] = {}
    for finding in findings:
        line, column = finding.line, finding.column
        if line is None and locator is not None:
            position = locator.position(finding.path, finding.at)
            if position is not None:
                line, column = position
        issue = SpecIssue(filename, line, column, format_path(finding.path), finding.message)
        placed.setdefault((issue.path, issue.message), (issue, finding.path))
    ordered = sorted(placed.values(), key=_sort_key)
    return [issue for issue, _ in ordered]
