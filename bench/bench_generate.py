"""Generation speed: `microforge new` against the floor of a plain `copier copy`.

Run: ``python bench/bench_generate.py [--runs 5] [--json]``. Every timing is a fresh process
(imports count, as for a user's command); the best of N runs is reported, plus one first run on
an empty Jinja bytecode cache ("cold"). Targets: one service in under 1.5 s, and within 3x the
floor (a plain Copier copy of a one-file template). It is a report: the exit status is always 0.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from microforge.render import count_files

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "tests" / "specs" / "inventory_example.yaml"
SERVICE_TARGET_SECONDS = 1.5
FLOOR_RATIO_TARGET = 3.0


@dataclass
class Case:
    """One benchmark row."""

    name: str
    best: float
    cold: float | None
    files: int
    runs: list[float]
    cpu: float
    ratio: float = 0.0
    checks: dict[str, bool] | None = None

    @property
    def files_per_second(self) -> float:
        return self.files / self.best if self.best else 0.0


def timed(command: list[str], dest: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one fresh process writing `dest` (removed first).

    The CPU time, children included (git, ...), is what contention on a busy machine changes least.
    """
    shutil.rmtree(dest, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def measure(name: str, command: list[str], dest: Path, runs: int, *, cold: bool) -> Case:
    env = {**os.environ}
    cold_time = None
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as cache:
        env["XDG_CACHE_HOME"] = cache  # a cache of this benchmark's own: the cold run is cold
        if cold:
            cold_time = timed(command, dest, env)[0]
        measured = [timed(command, dest, env) for _ in range(runs)]
    times = [wall for wall, _ in measured]
    cpu = min(cpu for _, cpu in measured)
    return Case(name, min(times), cold_time, count_files(dest), times, cpu)


def floor_template(root: Path) -> Path:
    """A trivial one-file template in a plain (non-git) folder."""
    root.mkdir(parents=True)
    (root / "copier.yml").write_text("name:\n  type: str\n  default: world\n", encoding="utf-8")
    (root / "hello.txt.jinja").write_text("Hello {{ name }}!\n", encoding="utf-8")
    return root


TYPES_CYCLE = ["text", "integer", "decimal", "boolean", "date", "datetime", "email", "uuid", "url"]


def large_spec(entities: int = 20) -> dict[str, Any]:
    """A spec with `entities` entities of ~8 fields of varied types, a few refs, a state machine."""
    result: list[dict[str, Any]] = []
    for index in range(entities):
        fields: list[dict[str, Any]] = [
            {"name": "code", "type": "string", "max_length": 40, "required": True, "unique": True}
        ]
        for offset in range(5):
            kind = TYPES_CYCLE[(index + offset) % len(TYPES_CYCLE)]
            field: dict[str, Any] = {"name": f"{kind}_value", "type": kind}
            if kind == "integer":
                field.update(min=0, max=1_000_000)
            elif kind == "decimal":
                field.update(precision=12, scale=2, min=0)
            fields.append(field)
        fields.append(
            {
                "name": "status",
                "type": "enum",
                "values": ["DRAFT", "ACTIVE", "ARCHIVED"],
                "default": "DRAFT",
            }
        )
        if index % 5 == 4:
            fields.append({"name": "parent_id", "type": "ref", "to": f"Thing{index - 1:02d}"})
        else:
            fields.append({"name": "note", "type": "string", "max_length": 200})
        entity: dict[str, Any] = {"name": f"Thing{index:02d}", "fields": fields}
        if index == 0:
            entity["states"] = {
                "field": "status",
                "transitions": [
                    {"name": "activate", "from": ["DRAFT"], "to": "ACTIVE"},
                    {"name": "archive", "from": ["DRAFT", "ACTIVE"], "to": "ARCHIVED"},
                ],
            }
            entity["events"] = ["created", "updated", "activate"]
        result.append(entity)
    return {"name": "warehouse", "description": "A 20-entity benchmark service", "entities": result}


def run(runs: int) -> dict[str, Any]:
    microforge = [sys.executable, "-m", "microforge.cli"]
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as scratch:
        work = Path(scratch)
        template = floor_template(work / "floor-template")
        spec20 = work / "warehouse.yaml"
        spec20.write_text(yaml.safe_dump(large_spec(), sort_keys=False), encoding="utf-8")
        check = subprocess.run(
            [*microforge, "validate", str(spec20)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise SystemExit(f"the generated 20-entity spec is invalid:\n{check.stderr}")
        floor = measure(
            "floor: copier copy, 1-file template",
            [
                sys.executable,
                "-m",
                "copier",
                "copy",
                "--quiet",
                "--defaults",
                str(template),
                str(work / "floor"),
            ],
            work / "floor",
            runs,
            cold=False,
        )
        cases = [floor]
        for name, spec in (
            ("microforge new: inventory", INVENTORY),
            ("microforge new: 20 entities", spec20),
        ):
            dest = work / spec.stem
            # the render alone: no git commit, no `uv lock` (it resolves against the index)
            command = [*microforge, "new", str(dest), "--spec", str(spec), "--no-git", "--no-lock"]
            cases.append(measure(name, command, dest, runs, cold=True))
    for case in cases:
        case.ratio = case.best / floor.best
    cases[1].checks = {
        f"< {SERVICE_TARGET_SECONDS} s": cases[1].best < SERVICE_TARGET_SECONDS,
        f"<= {FLOOR_RATIO_TARGET:g}x floor": cases[1].ratio <= FLOOR_RATIO_TARGET,
    }
    cases[2].checks = {f"<= {FLOOR_RATIO_TARGET:g}x floor": cases[2].ratio <= FLOOR_RATIO_TARGET}
    return {
        "runs": runs,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cases": [
            {**asdict(case), "files_per_second": round(case.files_per_second, 1)} for case in cases
        ],
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"generation benchmark: best of {report['runs']} fresh processes "
        f"(Python {report['python']}, {report['cpus']} CPUs)\n"
    )
    columns = ("best s", "cpu s", "cold s", "files", "files/s", "x floor")
    widths = (7, 6, 7, 6, 8, 8)
    header = f"{'case':<38} " + " ".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    header += "  targets"
    print(header)
    print("-" * len(header))
    for case in report["cases"]:
        cold = f"{case['cold']:.3f}" if case["cold"] is not None else "-"
        checks = case["checks"] or {}
        verdict = ", ".join(f"{'PASS' if ok else 'FAIL'} {what}" for what, ok in checks.items())
        print(
            f"{case['name']:<38} {case['best']:>7.3f} {case['cpu']:>6.3f} {cold:>7} "
            f"{case['files']:>6} {case['files_per_second']:>8.1f} {case['ratio']:>8.2f}  "
            f"{verdict or '-'}"
        )
    print(
        "\ncpu = least user+system CPU seconds of a run (children included); cold = first run on"
        "\nan empty Jinja bytecode cache (a user's very first `new`). Load average at the end: "
        + ", ".join(f"{load:.2f}" for load in report["load_average"])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per case (best is kept)")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    report = run(max(1, args.runs))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
