"""Loading a blueprint: the file, every spec it names and every code overlay, validated together;
all problems are raised at once as a `SpecError` (file, line, column, path, message)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from ..spec import ServiceSpec, SpecError, SpecIssue
from ..spec.errors import Finding
from ..spec.loader import Locator, load_yaml
from ..spec.naming import service_snake
from ..spec.validate import _resolve, parse_loaded
from .model import Blueprint
from .rules import Located, check_system
from .structure import check_structure

BLUEPRINT_FILE = "blueprint.yaml"
EMPTY_MESSAGE = "the blueprint is empty; expected a mapping with at least 'name' and 'services'"


@dataclass(frozen=True)
class BlueprintService:
    """One service of a loaded blueprint: its validated spec and the mapping as written, its
    effective database and its code overlay (files relative to the overlay directory)."""

    index: int
    spec: ServiceSpec
    data: dict[str, Any]
    spec_path: FsPath
    database: str
    code: FsPath | None
    overlay: tuple[str, ...]


@dataclass(frozen=True)
class LoadedBlueprint:
    """A validated blueprint, its file and its services in order."""

    path: FsPath
    blueprint: Blueprint
    services: tuple[BlueprintService, ...]

    def service(self, name: str) -> BlueprintService | None:
        """The service called `name`, if any."""
        return next((s for s in self.services if s.spec.name == name), None)


def blueprint_file(path: str | FsPath) -> FsPath:
    """`path` itself, or the `blueprint.yaml` inside it when it is a directory."""
    candidate = FsPath(path)
    return candidate / BLUEPRINT_FILE if candidate.is_dir() else candidate


def _read(path: FsPath, what: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as error:
        reason = error.strerror or str(error)
        issue = SpecIssue(str(path), None, None, "", f"cannot read the {what}: {reason}")
        raise SpecError([issue]) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"the {what} is not UTF-8 text (invalid byte 0x{raw[error.start]:02x})"
        raise SpecError([SpecIssue(str(path), None, None, "", message)]) from None


def _parse_spec(text: str, filename: str) -> tuple[ServiceSpec, dict[str, Any], Locator | None]:
    """A validated spec, its mapping as written and its locator (the YAML read once)."""
    loaded = load_yaml(text)
    spec = parse_loaded(loaded, filename)  # sets the locator's prefix of a `spec:` wrapper
    data = loaded.data
    if isinstance(data, dict) and list(data) == ["spec"] and isinstance(data["spec"], dict):
        data = data["spec"]
    assert isinstance(data, dict)  # the spec validated
    return spec, {str(key): value for key, value in data.items()}, loaded.locator


def load_blueprint(path: str | FsPath, user_owned: Sequence[str] = ()) -> LoadedBlueprint:
    """Read and validate the blueprint at `path` (a file, or a directory holding
    `blueprint.yaml`), every spec it names and, given the template's `user_owned` patterns
    (`_skip_if_exists`), every file of its code overlays."""
    file = blueprint_file(path)
    filename = str(file)
    text = _read(file, "blueprint")
    loaded = load_yaml(text)
    if loaded.fatal:
        raise SpecError(_resolve(loaded.findings, filename, None))
    data = loaded.data
    findings = list(loaded.findings)
    if data is None:
        raise SpecError([SpecIssue(filename, 1, 1, "", EMPTY_MESSAGE)])
    if not isinstance(data, dict):
        findings.append(Finding((), "the blueprint must be a mapping with 'name' and 'services'"))
        raise SpecError(_resolve(findings, filename, loaded.locator))
    blueprint, structural = check_structure(data)
    findings += structural
    if findings or blueprint is None:
        raise SpecError(_resolve(findings, filename, loaded.locator))
    base = file.parent
    issues: list[SpecIssue] = []
    specs: list[tuple[ServiceSpec, dict[str, Any], FsPath, Locator | None]] = []
    for index, entry in enumerate(blueprint.services):
        spec_path = base / entry.spec
        if not spec_path.is_file():
            problem = "no such file" if not spec_path.exists() else "not a file"
            findings.append(
                Finding(("services", index, "spec"), f"cannot read the spec {spec_path}: {problem}")
            )
            continue
        try:
            spec_text = _read(spec_path, "spec")
            spec, mapping, locator = _parse_spec(spec_text, str(spec_path))
        except SpecError as error:
            issues += error.issues
            continue
        specs.append((spec, mapping, spec_path, locator))
    if findings or issues:
        raise SpecError(_resolve(findings, filename, loaded.locator) + issues)
    located = check_system(blueprint, [spec for spec, _, _, _ in specs])
    services: list[BlueprintService] = []
    for index, (entry, (spec, mapping, spec_path, _)) in enumerate(
        zip(blueprint.services, specs, strict=True)
    ):
        code = base / entry.code if entry.code is not None else None
        overlay: tuple[str, ...] = ()
        if code is not None:
            overlay, problems = _overlay(code, spec, user_owned)
            located += [Located(None, Finding(("services", index, "code"), p)) for p in problems]
        database = entry.database or blueprint.database
        services.append(BlueprintService(index, spec, mapping, spec_path, database, code, overlay))
    if located:
        raise SpecError(_issues(located, filename, loaded.locator, specs))
    return LoadedBlueprint(file, blueprint, tuple(services))


def _issues(
    located: list[Located],
    filename: str,
    locator: Locator | None,
    specs: list[tuple[ServiceSpec, dict[str, Any], FsPath, Locator | None]],
) -> list[SpecIssue]:
    out = _resolve([item.finding for item in located if item.where is None], filename, locator)
    for index, (_, _, spec_path, spec_locator) in enumerate(specs):
        mine = [item.finding for item in located if item.where == index]
        if mine:
            out += _resolve(mine, str(spec_path), spec_locator)
    return out


def _overlay(
    code: FsPath, spec: ServiceSpec, user_owned: Sequence[str]
) -> tuple[tuple[str, ...], list[str]]:
    """The overlay's files (relative, sorted) and the problems: each file must be one the
    service's owner owns (a `_skip_if_exists` pattern) and, under src/, be in its package."""
    if not code.is_dir():
        return (), [f"the code overlay {code} is not a directory"]
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(code):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            files.append((FsPath(dirpath) / name).relative_to(code).as_posix())
    if not user_owned:
        return tuple(files), []
    from pathspec import PathSpec

    matcher: PathSpec[Any] = PathSpec.from_lines("gitignore", user_owned)
    package = f"{service_snake(spec.name)}_service"
    problems: list[str] = []
    for relative in files:
        parts = relative.split("/")
        if not matcher.match_file(relative):
            problems.append(
                f"{code / relative}: not a file the service's owner owns; an overlay may only "
                f"hold: {', '.join(user_owned)}"
            )
        elif parts[0] == "src" and len(parts) > 1 and parts[1] != package:
            problems.append(
                f"{code / relative}: the service's package is {package}, not {parts[1]} "
                f"(write src/{package}/{'/'.join(parts[2:])})"
            )
    return tuple(files), problems
