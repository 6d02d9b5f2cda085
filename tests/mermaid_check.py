"""Mermaid diagrams parsed by Mermaid's own parser (`mermaid.parse` of the npm package
`mermaid`, in Node under jsdom: its parser sanitizes labels with DOMPurify, which needs a DOM).

The `@mermaid-js/mermaid-cli` renderer would need a headless Chromium, which cannot be had
offline; the parser is what decides whether a diagram is valid Mermaid. The npm packages are
pinned by mermaid_tools/package-lock.json and installed with `npm ci` once per lock into the
user's cache directory (a file lock serializes parallel test workers); without node and npm, or
when the install fails (no registry), the test that asks for them is skipped."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from generation import npm_tools

TOOLS = Path(__file__).parent / "mermaid_tools"


def mermaid_blocks(markdown: str) -> list[str]:
    """The ```mermaid fenced blocks of a Markdown text."""
    return re.findall(r"^```mermaid\n(.*?)^```", markdown, re.DOTALL | re.MULTILINE)


def parser_home() -> Path:
    """The directory whose node_modules holds the locked mermaid and jsdom (installed once)."""
    files = ("package.json", "package-lock.json", "parse.mjs")
    ready = "node_modules/mermaid/package.json"
    return npm_tools(TOOLS, files, "mermaid", ready, "Mermaid's parser cannot run")


def parse_diagrams(directory: Path, diagrams: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Parse each diagram (name -> Mermaid text) with Mermaid's parser; name -> its verdict:
    `{"ok": true, "type": <diagram type>}` or `{"ok": false, "error": <parser message>}`."""
    home = parser_home()
    files = {}
    for name, text in diagrams.items():
        files[name] = directory / f"{name}.mmd"
        files[name].write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["node", str(home / "parse.mjs"), *map(str, files.values())],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    verdicts = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            verdict = json.loads(line)
            verdicts[verdict.pop("file")] = verdict
    assert set(verdicts) == {str(path) for path in files.values()}, result.stderr[-3000:]
    return {name: verdicts[str(path)] for name, path in files.items()}
