"""The render layer: drive Copier to write one service, atomically, and make its first commit.

The project is rendered (and committed) in a staging directory on the destination's filesystem,
then renamed into place, so an error leaves the destination as it was. This is the only module
that imports Copier, lazily (``import copier`` costs about 0.3 s); `speedups` makes it faster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only annotations: `microforge run` imports this module without the spec layer
    from .plan import RenderPlan

STAGING_PREFIX = ".microforge-staging-"
LOCK_TIMEOUT = 300.0  # seconds for `uv lock` (it resolves against the package index)
FALLBACK_IDENTITY = ("-c", "user.name=microforge", "-c", "user.email=microforge@localhost")


class RenderError(Exception):
    """Rendering failed; the destination was left as it was (a one-line user message)."""


@dataclass(frozen=True)
class RenderResult:
    """What a render wrote: where, how many files (outside `.git/`), how long it took."""

    dest: Path
    files: int
    seconds: float
    committed: bool = False
    notes: tuple[str, ...] = field(default=())


def is_empty_dir(path: Path) -> bool:
    """Whether `path` is a directory without any entry."""
    with os.scandir(path) as entries:
        return next(entries, None) is None


def check_destination(dest: Path, *, force: bool = False) -> None:
    """Refuse a destination that is a file, or a non-empty directory unless `force`."""
    if dest.is_symlink() and not dest.exists():
        raise RenderError(f"{dest} is a broken symbolic link")
    if not dest.exists():
        return
    if not dest.is_dir():
        raise RenderError(f"{dest} exists and is not a directory")
    if not force and not is_empty_dir(dest):
        raise RenderError(f"{dest} is not empty (use --force to write into it anyway)")


def render_service(
    plan: RenderPlan,
    dest: Path,
    *,
    force: bool = False,
    extra_files: Mapping[str, str] | None = None,
    commit_message: str | None = None,
    lock: bool = False,
) -> RenderResult:
    """Render `plan` into `dest`; with `lock`, resolve its dependencies into `uv.lock` (a note,
    not an error, when that fails); with `commit_message`, `git init` it and commit everything.

    The project is rendered (and committed) in a staging directory first: next to `dest` when it
    is absent (then renamed into place), inside `dest` when it is an empty directory (then its
    entries are moved up, so `dest` itself, maybe someone's working directory, stays the same).
    With `force`, `dest` may be non-empty: the rendered files are moved over its content, and no
    commit is made if it already is a git repository. `extra_files` (path -> text) are added.
    On any error `dest` is left as it was.
    """
    started = time.perf_counter()
    dest = Path(os.path.abspath(dest))
    check_destination(dest, force=force)
    existed = dest.exists()
    merge = existed and not is_empty_dir(dest)
    created = [] if existed else make_parents(dest.parent)
    staging: Path | None = None
    notes: list[str] = []
    done = False
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=dest if existed else dest.parent)
        )
        out = staging / dest.name  # same folder name as the destination: templates may use it
        notes += _run_copier(plan, out)
        for relative, text in (extra_files or {}).items():
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        if lock:
            notes += lock_project(out)
        files = count_files(out)
        committed = commit_message is not None
        if merge:
            _merge_into(out, dest)
            shutil.rmtree(staging)
            if commit_message is not None and (dest / ".git").exists():
                notes.append(f"{dest} already is a git repository: nothing was committed")
                committed = False
            elif commit_message is not None:
                git_commit_all(dest, commit_message)
        else:
            if commit_message is not None:
                git_commit_all(out, commit_message)
            if existed:
                move_entries(out, dest, keep=staging)
            else:
                os.rename(out, dest)
        done = True
    except OSError as error:
        raise RenderError(f"cannot write {dest}: {error}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if not done:
            remove_dirs(created)
    return RenderResult(dest, files, time.perf_counter() - started, committed, tuple(notes))


def move_entries(source: Path, dest: Path, *, keep: Path) -> None:
    """Move the entries of `source` into the empty directory `dest`; on failure empty it again
    (all but `keep`, the staging directory)."""
    try:
        for entry in source.iterdir():
            os.rename(entry, dest / entry.name)
    except OSError:
        for entry in dest.iterdir():
            if entry != keep:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise


def _run_copier(plan: RenderPlan, out: Path) -> list[str]:
    """Run `copier copy` of the plan into `out`; Copier's warnings are returned as notes."""
    import copier

    from .speedups import faster_copier

    with warnings.catch_warnings(record=True) as caught, faster_copier():
        warnings.simplefilter("always", copier.errors.CopierWarning)
        try:
            # vcs_ref="HEAD": from a git template, Copier would otherwise render the newest
            # PEP 440 tag; microforge always renders the template that is checked out (and, like
            # Copier for a local HEAD, includes its uncommitted changes).
            copier.run_copy(
                str(plan.template_root),
                str(out),
                data=dict(plan.data),
                defaults=True,
                # the staging directory starts empty: Copier must never stop to ask (a template
                # that renders two files to one path would otherwise prompt in mid-render)
                overwrite=True,
                unsafe=False,
                quiet=True,
                vcs_ref="HEAD",
            )
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as error:  # Copier raises many types; all mean "not rendered"
            raise RenderError(f"Copier failed: {_message(error)}") from None
    return [str(w.message) for w in caught if issubclass(w.category, copier.errors.CopierWarning)]


def _message(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split()) if len(text) < 2000 else text[:2000] + " ..."


def count_files(root: Path) -> int:
    """The number of files under `root`, not counting a `.git` directory."""
    total = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        total += len(filenames)
    return total


def _merge_into(source: Path, dest: Path) -> None:
    """Move every file of `source` over `dest` (used with --force for a non-empty `dest`)."""
    for dirpath, _dirnames, filenames in os.walk(source):
        relative = Path(dirpath).relative_to(source)
        (dest / relative).mkdir(parents=True, exist_ok=True)
        for name in filenames:
            os.replace(Path(dirpath) / name, dest / relative / name)


def make_parents(directory: Path) -> list[Path]:
    """Create `directory` and its missing ancestors; return the ones created, deepest first."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RenderError(f"cannot create {directory}: {error}") from None
    return missing


def remove_dirs(directories: list[Path]) -> None:
    """Remove the directories a render created (innermost first), stopping at one not empty."""
    for directory in directories:
        try:
            directory.rmdir()
        except OSError:
            return


def project_env(*drop: str, **extra: str) -> dict[str, str]:
    """The environment of a command run in a generated project (`uv lock`, `uv run ...`): ours
    without VIRTUAL_ENV (microforge's own virtualenv, which uv would take for the project's)
    nor `drop`, with uv's progress bars off and `extra` added."""
    env = {key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", *drop}}
    env.update({"UV_NO_PROGRESS": "1", **extra})
    return env


def lock_project(project: Path) -> list[str]:
    """`uv lock` in `project`: the locked dependencies its Dockerfile and CI install. Returns
    notes on what failed (no uv, no package index): the project is fine without a lock until
    it is built, and `uv lock` (or `make lock`) writes it then."""
    uv = shutil.which("uv")
    if uv is None:
        return ["uv was not found on PATH: no uv.lock written (run `uv lock` in the project)"]
    try:
        result = subprocess.run(
            [uv, "lock", "--quiet"],
            cwd=project,
            env=project_env(),
            capture_output=True,
            text=True,
            timeout=LOCK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return [f"uv lock took over {LOCK_TIMEOUT:.0f} s: no uv.lock written (run `uv lock`)"]
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        return [f"uv lock failed ({detail}): no uv.lock written (run `uv lock` in the project)"]
    return []


def git_commit_all(project: Path, message: str) -> None:
    """`git init` `project`, add everything and commit it (fallback identity if none is set)."""
    git = shutil.which("git")
    if git is None:
        raise RenderError("git was not found on PATH (install it, or pass --no-git)")
    _git(project, git, "init", "-q")
    _git(project, git, "add", "-A")
    identity = () if _has_identity(project, git) else FALLBACK_IDENTITY
    _git(project, git, *identity, "commit", "-q", "--no-verify", "-m", message)


def _has_identity(project: Path, git: str) -> bool:
    env = os.environ
    for key, variable in (("user.name", "GIT_AUTHOR_NAME"), ("user.email", "GIT_AUTHOR_EMAIL")):
        if env.get(variable):
            continue
        found = subprocess.run(
            [git, "config", "--get", key], cwd=project, capture_output=True, check=False
        )
        if found.returncode != 0 or not found.stdout.strip():
            return False
    return True


def _git(project: Path, git: str, *args: str) -> None:
    result = subprocess.run([git, *args], cwd=project, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()
        detail = output[-1] if output else f"exit status {result.returncode}"
        step = next((arg for arg in args if arg in ("init", "add", "commit")), "")
        raise RenderError(f"git {step} failed in {project}: {detail}")
