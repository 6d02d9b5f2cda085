"""System generation speed: `microforge blueprint` of the e-commerce blueprint against the floor
of a plain `copier copy` of as many one-file templates, in the same run.

Run: ``python bench/bench_blueprint.py [--runs 3] [--json]``. Every timing is a fresh process
(imports count, as for a user's command); the best of N runs is reported (the locked case runs
once per run as well: `uv lock` resolves against the package index, warm cache). Cases:

- floor: one process doing `copier.run_copy` of a one-file template once per subproject the
  blueprint has (services, gateway, system files): Copier's own cost, nothing rendered;
- the render alone: ``microforge blueprint ... --no-lock`` (every subproject rendered, code
  overlays copied, git init + one commit);
- with locks: the same plus each Python project's ``uv lock``.

Targets (issue 11): the render under 8 s on this 2-core machine (JHipster: 12.7 s without
Prettier for a gateway and three apps), with locks under 20 s. A report: the exit status is
always 0.
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
from pathlib import Path
from typing import Any

from microforge.render import count_files

REPO = Path(__file__).resolve().parents[1]
BLUEPRINT = REPO / "blueprints" / "ecommerce" / "blueprint.yaml"
RENDER_TARGET_SECONDS = 8.0
LOCKED_TARGET_SECONDS = 20.0

FLOOR = """
import sys
import copier

template, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for index in range(count):
    copier.run_copy(template, f"{out}/part{index}", defaults=True, quiet=True)
"""


def timed(command: list[str], dest: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system, children included) seconds of one fresh process."""
    shutil.rmtree(dest, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{result.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(
    name: str, command: list[str], dest: Path, runs: int, env: dict[str, str]
) -> dict[str, Any]:
    measured = [timed(command, dest, env) for _ in range(runs)]
    walls = [wall for wall, _ in measured]
    return {
        "name": name,
        "best": min(walls),
        "runs": walls,
        "cpu": min(cpu for _, cpu in measured),
        "files": count_files(dest),
    }


def subprojects() -> int:
    """Services + gateway + system files of the blueprint (validated by microforge)."""
    sys.path.insert(0, str(REPO))
    from microforge.system import plan_system, read_blueprint

    plan = plan_system(read_blueprint(BLUEPRINT))
    return len(plan.projects()) + 1


def run(runs: int, *, locked: bool) -> dict[str, Any]:
    parts = subprojects()
    microforge = [sys.executable, "-m", "microforge.cli", "blueprint", str(BLUEPRINT), "-o"]
    with tempfile.TemporaryDirectory(prefix="bench-blueprint-") as scratch:
        work = Path(scratch)
        env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache")}
        template = work / "floor-template"
        template.mkdir()
        (template / "copier.yml").write_text("name:\n  type: str\n  default: world\n")
        (template / "hello.txt.jinja").write_text("Hello {{ name }}!\n")
        # one untimed run warms the Jinja bytecode cache, as a user's second generation is
        timed([*microforge, str(work / "warm"), "--no-lock"], work / "warm", env)
        floor = measure(
            f"floor: {parts} x copier copy, 1-file template",
            [sys.executable, "-c", FLOOR, str(template), str(work / "floor"), str(parts)],
            work / "floor",
            runs,
            env,
        )
        cases = [floor]
        dest = work / "shop"
        cases.append(
            measure(
                "microforge blueprint --no-lock",
                [*microforge, str(dest), "--no-lock"],
                dest,
                runs,
                env,
            )
        )
        cases[-1]["target"] = RENDER_TARGET_SECONDS
        if locked:
            cases.append(
                measure(
                    "microforge blueprint (uv lock each)", [*microforge, str(dest)], dest, runs, env
                )
            )
            cases[-1]["target"] = LOCKED_TARGET_SECONDS
    for case in cases:
        case["ratio"] = case["best"] / floor["best"]
    return {
        "runs": runs,
        "subprojects": parts,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
        "cases": cases,
    }


def print_table(report: dict[str, Any]) -> None:
    print(
        f"blueprint benchmark: e-commerce ({report['subprojects']} subprojects), best of "
        f"{report['runs']} fresh processes (Python {report['python']}, {report['cpus']} CPUs)\n"
    )
    header = f"{'case':<42} {'best s':>7} {'cpu s':>6} {'files':>6} {'x floor':>8}  target"
    print(header)
    print("-" * len(header))
    for case in report["cases"]:
        target = case.get("target")
        verdict = f"{'PASS' if case['best'] < target else 'FAIL'} < {target:g} s" if target else "-"
        print(
            f"{case['name']:<42} {case['best']:>7.2f} {case['cpu']:>6.2f} {case['files']:>6} "
            f"{case['ratio']:>8.2f}  {verdict}"
        )
    print(
        "\ncpu = least user+system CPU seconds of a run (children included). Load average at "
        "the end: " + ", ".join(f"{load:.2f}" for load in report["load_average"])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per case (best is kept)")
    parser.add_argument("--no-lock", action="store_true", help="skip the case with uv lock")
    parser.add_argument("--json", action="store_true", help="print machine-readable results")
    args = parser.parse_args(argv)
    report = run(max(1, args.runs), locked=not args.no_lock)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
