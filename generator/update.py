"""The update layer: `copier update` of a service or a whole system, then its new migration.

A *service* is a Copier project (a directory holding `.copier-answers.yml`) inside a git
repository. A *system* is a directory whose subdirectories are services; the Copier projects
at its root (`.copier-answers*.yml` there: system-level files) are updated after them.

Everything happens in a temporary clone of the git repository (of each one involved: a service
made by `microforge new` inside a system has a repository of its own), so Copier always sees the
clean tree it needs (each project's result is committed in the clone before the next one) and
the user's directories are untouched until every step succeeded: for each project `copier update`
(the answers are kept; `spec` is replaced when a new spec is given), a check for conflicts
(inline markers, `.rej` files), then for a service `python -m <package> makemigrations` (a new
Alembic revision for what the models changed, refused when it would lose data). Finally the
combined diff is applied to the user's working trees as uncommitted changes, or only shown
(dry run). The first conflict or refusal stops the run, and nothing is applied.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .render import FALLBACK_IDENTITY, project_env

ANSWERS_FILE = ".copier-answers.yml"
ROOT_ANSWERS_GLOB = ".copier-answers*.yml"
MARKER = re.compile(rb"^<{7}( |$)", re.MULTILINE)
REFUSED = 3  # exit status of the generated `makemigrations` when a change loses data
MIGRATION_TIMEOUT = 900.0


class UpdateError(Exception):
    """The update could not be made; the directory was left as it was (a user message)."""


class ConflictError(UpdateError):
    """Copier could not merge the template's changes with the user's in `project`."""

    def __init__(self, project: str, files: Sequence[str]) -> None:
        self.project = project
        self.files = tuple(files)
        listing = "\n".join(f"  {name}" for name in self.files)
        super().__init__(
            f"{project}: the update conflicts with your changes in:\n{listing}\n"
            "Nothing was changed. Resolve it by hand: run `copier update --conflict inline` in "
            f"{project}, fix the marked files, commit, then run `microforge update` again."
        )


class RefusedError(UpdateError):
    """The new migration of `project` would lose data and was not allowed."""

    def __init__(self, project: str, losses: Sequence[str]) -> None:
        self.project = project
        self.losses = tuple(losses)
        listing = "\n".join(f"  - {loss}" for loss in self.losses)
        super().__init__(
            f"{project}: refused, the schema change loses data:\n{listing}\n"
            "Nothing was changed. Run again with --allow-destructive to accept the loss."
        )


@dataclass(frozen=True)
class ProjectUpdate:
    """What the update did to one Copier project (`path` relative to the repository root)."""

    path: str
    kind: str  # "service" or "system files"
    changed: tuple[str, ...]
    migration: str | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpdateResult:
    """The projects updated, the combined diff, whether it was applied, and the time taken."""

    root: Path
    projects: tuple[ProjectUpdate, ...]
    diff: str
    stat: str
    applied: bool
    seconds: float
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Project:
    """A Copier project to update: its directory (relative to the repository root, "." for the
    root itself) and answers file; `service` when it has a `src/<package>/migrations`."""

    path: str
    answers_file: str
    package: str | None


def find_projects(target: Path) -> tuple[list[Project], bool]:
    """The Copier projects of `target` (a service or a system), and whether it is a system.

    Services are `target` itself or, for a system, its subdirectories holding an answers file
    (sorted by name); a system's own answers files come last.
    """
    children = sorted(
        child
        for child in target.iterdir()
        if child.is_dir() and not child.name.startswith(".") and (child / ANSWERS_FILE).is_file()
    )
    own = sorted(path.name for path in target.glob(ROOT_ANSWERS_GLOB) if path.is_file())
    if not children:
        if ANSWERS_FILE not in own:
            raise UpdateError(
                f"{target} is neither a Copier project (no {ANSWERS_FILE}) nor a system "
                f"(no subdirectory holding one)"
            )
        return [Project(".", ANSWERS_FILE, service_package(target))], False
    projects = [Project(child.name, ANSWERS_FILE, service_package(child)) for child in children]
    projects += [Project(".", name, None) for name in own]
    return projects, True


def subprojects(target: Path) -> list[str]:
    """The names of a system's subdirectories that are Copier projects (services, gateway)."""
    if not target.is_dir():
        return []
    return sorted(
        child.name
        for child in target.iterdir()
        if child.is_dir() and not child.name.startswith(".") and (child / ANSWERS_FILE).is_file()
    )


def service_package(project: Path) -> str | None:
    """The Python package of a generated service (`src/<pkg>/migrations/env.py`), if any."""
    found = sorted((project / "src").glob("*/migrations/env.py"))
    return found[0].parent.parent.name if found else None


def update(
    target: Path,
    *,
    spec: Mapping[str, Any] | None = None,
    dry_run: bool = False,
    allow_destructive: bool = False,
    vcs_ref: str | None = "HEAD",
    answers: Mapping[str, Mapping[str, Any]] | None = None,
    create: Mapping[str, Callable[[Path], list[str]]] | None = None,
) -> UpdateResult:
    """Update the service or system at `target`; see the module docstring.

    `spec` (a spec mapping) replaces the `spec` answer of a single service. `vcs_ref` is the
    template version to update to (None: Copier's default, the newest tag). For a system
    (`microforge update --blueprint`): `answers` maps a project's path ("." for the system
    files, else its directory name) to answers that replace its own, and `create` maps the
    directory of a project to add to the function rendering it there (in the clone). Raises
    `UpdateError` (and its `ConflictError`, `RefusedError`) with `target` left as it was.
    """
    started = time.perf_counter()
    target = Path(os.path.abspath(target))
    if not target.is_dir():
        raise UpdateError(f"{target} is not a directory")
    target = target.resolve()
    projects, system = find_projects(target)
    create = dict(create or {})
    for name in create:
        if (target / name).exists():
            raise UpdateError(f"{target / name} already exists: cannot add the project {name}")
    if (create or answers) and not system:
        raise UpdateError(f"{target} is not a system: --blueprint updates a whole system")
    if spec is not None and system:
        raise UpdateError("--spec updates one service: give a service directory, not a system")
    if spec is not None:
        check_same_service(target / ANSWERS_FILE, spec)
    # each project's git repository: usually one for all, but a service made by `microforge
    # new` inside a system directory has its own
    display = repo_root(target) or target
    located: list[tuple[Project, Path, Path]] = []  # project, its repository, its directory
    bases: dict[Path, str] = {}
    for project in projects:
        directory = target if project.path == "." else target / project.path
        root = git_root(directory)
        if root not in bases:
            if status(root, untracked=False):
                raise UpdateError(
                    f"{root} has uncommitted changes: commit or stash them first (Copier "
                    "updates from a clean git tree, and you will want to review its diff alone)"
                )
            bases[root] = git(root, "rev-parse", "HEAD").strip()
        located.append((project, root, directory))
    updated: list[ProjectUpdate] = []
    notes: list[str] = []
    patches: dict[Path, str] = {}
    shown: list[str] = []
    stats: list[str] = []
    with tempfile.TemporaryDirectory(prefix="microforge-update-") as scratch:
        clones: dict[Path, Path] = {}
        for index, root in enumerate(bases):
            clones[root] = Path(scratch) / f"{index}-{root.name}"
            git(Path(scratch), "clone", "-q", "--no-hardlinks", str(root), str(clones[root]))
        if create:
            root = git_root(target)
            for name, render in create.items():
                workdir = clones[root] / target.relative_to(root) / name
                relative = label_of(target / name, display)
                notes += render(workdir)
                git(clones[root], "add", "-A")
                added = status(clones[root])
                updated.append(ProjectUpdate(relative, "new project", tuple(added), None, ()))
                git(
                    clones[root],
                    *identity(clones[root]),
                    "commit",
                    "-q",
                    "--no-verify",
                    "-m",
                    f"add {relative}",
                )
        for project, root, directory in located:
            clone = clones[root]
            label = label_of(root, display)
            relative = label_of(directory, display)
            workdir = clone / directory.relative_to(root)
            data = (answers or {}).get(project.path)
            notes += copier_update(workdir, project, spec=spec, vcs_ref=vcs_ref, data=data)
            changed = status(clone)
            check_conflicts(clone, relative, changed, label)
            migration: str | None = None
            migration_notes: list[str] = []
            if project.package is not None:
                migration, migration_notes = make_migration(
                    workdir, project.package, relative, allow_destructive=allow_destructive
                )
                changed = status(clone)
            updated.append(
                ProjectUpdate(
                    relative,
                    "service" if project.package else "system files",
                    tuple(join(label, name) for name in changed),
                    migration,
                    tuple(migration_notes),
                )
            )
            if changed:
                git(clone, "add", "-A")
                git(clone, *identity(clone), "commit", "-q", "--no-verify", "-m", relative)
        for root, clone in clones.items():
            base, label = bases[root], label_of(root, display)
            patches[root] = git(clone, "diff", "--binary", base, "HEAD")
            prefixes = (
                [] if label == "." else [f"--src-prefix=a/{label}/", f"--dst-prefix=b/{label}/"]
            )
            shown.append(git(clone, "diff", "--binary", *prefixes, base, "HEAD"))
            stat = git(clone, "diff", "--stat", base, "HEAD")
            stats.append(stat if len(clones) == 1 or not stat else f"{label}:\n{stat}")
    applied = False
    if not dry_run:
        for root, patch in patches.items():
            if patch:
                apply_diff(root, patch)
                applied = True
    seconds = time.perf_counter() - started
    return UpdateResult(
        target, tuple(updated), "".join(shown), "".join(stats), applied, seconds, tuple(notes)
    )


def label_of(path: Path, display: Path) -> str:
    """`path` relative to `display` ("." for itself), as the reports show it."""
    return path.relative_to(display).as_posix() if path != display else "."


def join(label: str, name: str) -> str:
    return name if label == "." else f"{label}/{name}"


def check_same_service(answers_file: Path, spec: Mapping[str, Any]) -> None:
    """Refuse a new spec naming another service (its package, tables and URLs would change)."""
    import yaml

    try:
        answers = yaml.safe_load(answers_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise UpdateError(f"cannot read {answers_file}: {error}") from None
    old = answers.get("spec") if isinstance(answers, dict) else None
    old_name = old.get("name") if isinstance(old, dict) else None
    if old_name is not None and old_name != spec.get("name"):
        raise UpdateError(
            f"the new spec names service {spec.get('name')!r}, this one is {old_name!r}: "
            "renaming a service is not an update (generate the new one with microforge new)"
        )


def copier_update(
    workdir: Path,
    project: Project,
    *,
    spec: Mapping[str, Any] | None,
    vcs_ref: str | None,
    data: Mapping[str, Any] | None = None,
) -> list[str]:
    """`copier update` in `workdir` (answers kept, `spec` replaced if given, and any answer of
    `data`); Copier's warnings come back as notes."""
    import copier

    data = {**(data or {}), **({} if spec is None else {"spec": dict(spec)})}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", copier.errors.CopierWarning)
        try:
            copier.run_update(
                str(workdir),
                data=data,
                answers_file=project.answers_file,
                defaults=True,
                overwrite=True,
                unsafe=False,
                quiet=True,
                vcs_ref=vcs_ref,
                conflict="inline",
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # Copier raises many types; all mean "not updated"
            raise UpdateError(f"{project.path}: copier update failed: {_message(error)}") from None
    return [
        f"{project.path}: {w.message}"
        for w in caught
        if issubclass(w.category, copier.errors.CopierWarning)
    ]


def _message(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if "Unknown revision" in text:
        text += (
            " (the project was generated from uncommitted template changes, so Copier cannot "
            "render its old version: regenerate it from a committed template)"
        )
    return text if len(text) < 2000 else text[:2000] + " ..."


def check_conflicts(clone: Path, project: str, changed: Sequence[str], label: str = ".") -> None:
    """Raise `ConflictError` if Copier left conflict markers or `.rej` files behind (paths
    shown under `label`, the repository's place in the report)."""
    conflicted: list[str] = []
    for name in changed:
        path = clone / name
        if name.endswith(".rej"):
            conflicted.append(join(label, name))
        elif path.is_file():
            with path.open("rb") as handle:
                if MARKER.search(handle.read()):
                    conflicted.append(join(label, name))
    if conflicted:
        raise ConflictError(project, conflicted)


def make_migration(
    workdir: Path, package: str, project: str, *, allow_destructive: bool
) -> tuple[str | None, list[str]]:
    """Run the service's `makemigrations`; return the new revision (relative path) and notes."""
    uv = shutil.which("uv")
    if uv is None:
        raise UpdateError(
            f"{project}: uv was not found on PATH: it runs the service's makemigrations"
        )
    before = set(migration_files(workdir, package))
    lock = workdir / "uv.lock"
    had_lock = lock.exists()
    command = [uv, "run", "--quiet", "python", "-m", package, "makemigrations"]
    command += ["-m", "microforge update"]
    if allow_destructive:
        command.append("--allow-destructive")
    try:
        done = subprocess.run(
            command,
            cwd=workdir,
            env=project_env("DATABASE_URL"),
            capture_output=True,
            text=True,
            timeout=MIGRATION_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UpdateError(
            f"{project}: makemigrations took over {MIGRATION_TIMEOUT:.0f} s"
        ) from None
    finally:
        if not had_lock:  # uv resolved the project to run it: not part of the update
            lock.unlink(missing_ok=True)
    lines = done.stderr.strip().splitlines()
    if done.returncode == REFUSED:
        raise RefusedError(
            project, [line.strip()[2:] for line in lines if line.strip()[:2] == "- "]
        )
    if done.returncode != 0:
        tail = "\n".join(lines[-15:]) or done.stdout.strip()
        raise UpdateError(f"{project}: makemigrations failed ({done.returncode}):\n{tail}")
    notes = [line.split("note: ", 1)[1] for line in lines if "makemigrations: note: " in line]
    new = sorted(set(migration_files(workdir, package)) - before)
    return (new[0] if new else None), notes


def migration_files(workdir: Path, package: str) -> Iterator[str]:
    versions = workdir / "src" / package / "migrations" / "versions"
    for path in versions.glob("*.py"):
        yield path.relative_to(workdir).as_posix()


def apply_diff(root: Path, diff: str) -> None:
    """Apply `diff` to the working tree of `root` (all or nothing, as `git apply` does)."""
    done = subprocess.run(
        ["git", "apply", "--binary", "--whitespace=nowarn", "-"],
        cwd=root,
        input=diff,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise UpdateError(
            f"the update could not be applied to {root} (did it change meanwhile?): "
            f"{done.stderr.strip()}"
        )


def git_root(path: Path) -> Path:
    """The top directory of the git repository holding `path`."""
    root = repo_root(path)
    if root is None:
        raise UpdateError(
            f"{path} is not in a git repository: Copier updates need one (git init, commit)"
        )
    return root


def repo_root(path: Path) -> Path | None:
    """The top directory of the git repository holding `path`, or None."""
    try:
        return Path(git(path, "rev-parse", "--show-toplevel").strip()).resolve()
    except UpdateError:
        return None


def status(repo: Path, *, untracked: bool = True) -> list[str]:
    """Paths with uncommitted changes (and untracked files unless not `untracked`), relative
    to the root of the repository."""
    mode = "--untracked-files=all" if untracked else "--untracked-files=no"
    out = git(repo, "status", "--porcelain", "-z", mode)
    entries = out.split("\0")
    paths: list[str] = []
    index = 0
    while index < len(entries):
        entry = entries[index]
        index += 1
        if not entry:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # a rename's source follows
            index += 1
    return sorted(paths)


def identity(repo: Path) -> tuple[str, ...]:
    """Git options giving a committer identity when none is configured."""
    env = os.environ
    if env.get("GIT_AUTHOR_NAME") and env.get("GIT_AUTHOR_EMAIL"):
        return ()
    for key in ("user.name", "user.email"):
        found = subprocess.run(
            ["git", "config", "--get", key], cwd=repo, capture_output=True, check=False
        )
        if found.returncode != 0 or not found.stdout.strip():
            return FALLBACK_IDENTITY
    return ()


def git(repo: Path, *args: str) -> str:
    """Run git in `repo`; its stdout, or `UpdateError` with its last line of error."""
    if shutil.which("git") is None:
        raise UpdateError("git was not found on PATH")
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise UpdateError(
            f"git {args[0]} failed in {repo}: {lines[-1] if lines else done.returncode}"
        )
    return done.stdout
