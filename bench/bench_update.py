"""Update speed: `copier update` and `microforge update` after a template change, against a fresh
`copier copy` of the same project measured in the same run.

Run: ``python bench/bench_update.py [--runs 1] [--json]``. The template is snapshotted into a git
repository of its own (Copier renders a project's recorded commit again on update), the system
is generated from it (the e-commerce blueprint's specs, completed with the test specs up to
three services), then the template moves on (one commit touching a module of every service)
and each update starts from a fresh clone of the generated system. Every timing is a fresh
process; the best of N runs is reported with its CPU time (user + system, children included).

Rows: `copy` (baseline: a fresh `copier copy` of one service), `copier update` of one service,
`microforge update` of one service (temporary clone, copier update, conflict scan, then the
service's `makemigrations` in a fresh uv environment) and of the whole system. The ratio is
against `copy` (for the system, against one copy per service). It is a report: exit status 0.
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

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_PARTS = ("copier.yml", "includes", "template")
FILLERS = (REPO / "tests" / "specs" / "orders.yaml", REPO / "tests" / "specs" / "all_types.yaml")
CHANGED_FILE = Path("template") / "src" / "{{ model.package }}" / "health.py.jinja"
IDENTITY = ("-c", "user.name=bench", "-c", "user.email=bench@localhost")


@dataclass
class Row:
    """One benchmark row: best wall time, its CPU time, and the ratio to the baseline."""

    name: str
    best: float
    cpu: float
    runs: list[float]
    ratio: float = 0.0
    cpu_ratio: float = 0.0


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *IDENTITY, *args], cwd=repo, check=True, capture_output=True)


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh process (and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def specs() -> list[Path]:
    """The e-commerce specs, completed with test specs up to three services."""
    found = sorted((REPO / "blueprints" / "ecommerce" / "specs").glob("*.yaml"))
    names = {yaml.safe_load(path.read_text())["name"] for path in found}
    for filler in FILLERS:
        if len(found) >= 3:
            break
        if yaml.safe_load(filler.read_text())["name"] not in names:
            found.append(filler)
    return found


def data_file(spec: Path, dest: Path) -> Path:
    dest.write_text(yaml.safe_dump({"spec": yaml.safe_load(spec.read_text())}), encoding="utf-8")
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per row (best is reported)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["UV_NO_PROGRESS"] = "1"
    copier = [sys.executable, "-m", "copier"]
    microforge = [sys.executable, "-m", "microforge.cli"]
    services = specs()
    with tempfile.TemporaryDirectory(prefix="bench-update-") as scratch:
        work = Path(scratch)
        template = work / "template"
        template.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name in TEMPLATE_PARTS:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, template / name, ignore=ignore)
            else:
                shutil.copy2(source, template / name)
        git(template, "init", "-q")
        commit_all(template, "template")
        system = work / "system"
        system.mkdir()
        git(system, "init", "-q")
        data = [data_file(spec, work / f"{spec.stem}.data.yml") for spec in services]
        names = [yaml.safe_load(spec.read_text())["name"] for spec in services]
        for name, answers in zip(names, data, strict=True):
            copy = [*copier, "copy", "--defaults", "--vcs-ref", "HEAD", "--data-file", str(answers)]
            timed([*copy, str(template), str(system / name)], work, env)
        commit_all(system, "system")
        changed = template / CHANGED_FILE
        changed.write_text(changed.read_text() + "\n# A template change for bench_update.\n")
        commit_all(template, "template change")

        def measure(name: str, command: list[str], service: str | None, per: int) -> Row:
            """Best of N runs of `command` (its target appended) on fresh clones of the system."""
            times, cpus = [], []
            for run in range(args.runs):
                clone = work / f"clone-{len(rows)}-{run}"
                git(work, "clone", "-q", str(system), str(clone))
                target = clone / service if service else clone
                wall, cpu = timed([*command, str(target)], target, env)
                times.append(wall)
                cpus.append(cpu)
                shutil.rmtree(clone, ignore_errors=True)
            best = min(range(len(times)), key=times.__getitem__)
            row = Row(name, times[best], cpus[best], times, times[best] / (baseline.best * per))
            row.cpu_ratio = cpus[best] / (baseline.cpu * per) if baseline.cpu else 0.0
            rows.append(row)
            return row

        first = names[0]
        copies: list[tuple[float, float]] = []
        for run in range(args.runs):
            dest = work / f"copy-{run}"
            copy = [*copier, "copy", "--defaults", "--vcs-ref", "HEAD", "--data-file", str(data[0])]
            copies.append(timed([*copy, str(template), str(dest)], work, env))
            shutil.rmtree(dest, ignore_errors=True)
        wall, cpu = min(copies)
        baseline = Row(
            f"copier copy ({first}, baseline)", wall, cpu, [w for w, _ in copies], 1.0, 1.0
        )
        rows: list[Row] = [baseline]
        update = [*copier, "update", "--defaults", "--vcs-ref", "HEAD", "--conflict", "inline"]
        measure(f"copier update ({first})", update, first, 1)
        measure(f"microforge update ({first})", [*microforge, "update"], first, 1)
        measure(
            f"microforge update (system of {len(names)})", [*microforge, "update"], None, len(names)
        )
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=2))
        return
    print(f"services: {', '.join(names)}; template change: {CHANGED_FILE}")
    print(f"{'case':48} {'best s':>8} {'cpu s':>8} {'ratio':>7} {'cpu ratio':>10}")
    for row in rows:
        print(
            f"{row.name:48} {row.best:8.2f} {row.cpu:8.2f} {row.ratio:6.2f}x {row.cpu_ratio:9.2f}x"
        )
    print("ratios: against the baseline copy (the system row: against one copy per service);")
    print("the CPU ratio is the steadier one on a busy machine")


if __name__ == "__main__":
    main()
