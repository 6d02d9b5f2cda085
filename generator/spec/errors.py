"""Errors of the spec layer: one `SpecIssue` per problem, all raised together in `SpecError`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PathElement = str | int
"""A step in a spec path: a mapping key (str) or a list index (int)."""

Path = tuple[PathElement, ...]

At = Literal["value", "key", "parent"]
"""What an issue points at: the value at its path, the key at its path, or the enclosing mapping."""

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def format_path(path: Iterable[PathElement]) -> str:
    """Render a path like ``entities[1].fields[3].type`` ("" for the document itself)."""
    out: list[str] = []
    for element in path:
        if isinstance(element, int):
            out.append(f"[{element}]")
        elif _IDENT.fullmatch(element):
            out.append(f".{element}" if out else element)
        else:
            out.append(f"[{json.dumps(element, ensure_ascii=False)}]")
    return "".join(out)


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where (file, 1-based line and column, path) and what is wrong."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def format(self) -> str:
        """``file:line:col: path: message``; the position and the path are left out when unknown."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        if self.path:
            return f"{where}: {self.path}: {self.message}"
        return f"{where}: {self.message}"


class SpecError(Exception):
    """A spec was refused; `issues` holds every problem found, sorted by position."""

    def __init__(self, issues: list[SpecIssue]) -> None:
        self.issues: list[SpecIssue] = list(issues)
        super().__init__("\n".join(issue.format() for issue in self.issues))

    def __str__(self) -> str:
        return "\n".join(issue.format() for issue in self.issues)


@dataclass(frozen=True)
class Finding:
    """An issue before its position is known (internal): a path, a message and what it points at.

    `line`/`column` (1-based) are set directly for problems found while reading the YAML itself.
    """

    path: Path
    message: str
    at: At = "value"
    line: int | None = None
    column: int | None = None
