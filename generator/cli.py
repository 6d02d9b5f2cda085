"""The `microforge` command line: validate, schema, new, update, run.

Every bad input ends with a clean message on stderr and exit status 2, never a traceback.
Layers are imported inside the commands so that `--help` and `validate` stay fast.
"""

from __future__ import annotations

import json
import sys
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from . import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from .plan import SpecSource
    from .spec import ServiceSpec, SpecError

USAGE_ERROR = 2

app = typer.Typer(
    name="microforge",
    help="A YAML domain spec in, a production-shaped FastAPI microservice out (through Copier).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Database(StrEnum):
    """The production database of a generated service."""

    postgres = "postgres"
    sqlite = "sqlite"


def console(*, stderr: bool = False) -> Console:
    """A rich console (no colours nor wrapping surprises when not on a terminal)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def fail(message: str, status: int = USAGE_ERROR) -> NoReturn:
    """Print `message` (one or more lines) on stderr and exit with `status`."""
    err = console(stderr=True)
    for line in message.splitlines() or [message]:
        err.print(f"[bold red]error:[/] {escape(line)}")
    raise typer.Exit(status)


def fail_spec(error: SpecError, consequence: str) -> NoReturn:
    """Print every issue as ``file:line:col: path: message`` (as compilers do), then a summary."""
    err = console(stderr=True)
    for issue in error.issues:
        err.print(escape(issue.format()))
    count = len(error.issues)
    err.print(f"[bold red]error:[/] {count} problem{'s' if count != 1 else ''}: {consequence}")
    raise typer.Exit(USAGE_ERROR)


def progress(err: Console, message: str) -> AbstractContextManager[object]:
    """A status spinner on a terminal; nothing otherwise (logs and pipes stay clean)."""
    if err.is_terminal:
        return err.status(message)
    return nullcontext()


def escape(text: str) -> str:
    """`text` with rich markup disabled."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"microforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """A YAML domain spec in, a production-shaped FastAPI microservice out (through Copier)."""


@app.command()
def validate(
    spec: Annotated[Path, typer.Argument(metavar="SPEC", help="The service spec (YAML) to check.")],
) -> None:
    """Check a service spec: every problem with its file:line:col and path, or a summary."""
    from .spec import SpecError, load_spec

    try:
        service = load_spec(spec)
    except SpecError as error:
        fail_spec(error, f"{spec} is not a valid service spec")
    print_summary(service, spec)


def print_summary(service: ServiceSpec, path: Path) -> None:
    """A short table of the entities, their fields, operations and transitions."""
    from rich.table import Table

    from .spec import OPERATIONS

    fields = sum(len(entity.fields) for entity in service.entities)
    transitions = sum(len(entity.transitions) for entity in service.entities)
    out = console()
    out.print(
        f"[green]✓[/] {escape(str(path))}: service [bold]{service.name}[/] "
        f"(package {service.package}): {len(service.entities)} entities, {fields} fields, "
        f"{transitions} transitions"
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("entity", "url", "fields", "operations", "transitions"):
        table.add_column(column)
    for entity in service.entities:
        table.add_row(
            entity.name,
            f"/v1/{entity.table}",
            str(len(entity.fields)),
            "all" if set(entity.operations) == set(OPERATIONS) else ", ".join(entity.operations),
            ", ".join(t.name for t in entity.transitions) or "-",
        )
    out.print(table)


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
) -> None:
    """Print the JSON Schema of the spec format (for editors)."""
    from .spec import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    console(stderr=True).print(f"wrote {escape(str(output))}")


@app.command()
def new(
    dest: Annotated[
        Path, typer.Argument(metavar="DEST", help="Directory to create (absent or empty).")
    ],
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            "-s",
            metavar="SPEC",
            help="The service spec (YAML). Without it, microforge asks for one.",
        ),
    ] = None,
    database: Annotated[
        Database, typer.Option(help="Production database of the service.")
    ] = Database.postgres,
    python_version: Annotated[
        str, typer.Option(help="Lowest Python version the service supports.")
    ] = "3.11",
    no_git: Annotated[
        bool, typer.Option("--no-git", help="Do not `git init` and commit the project.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write into a non-empty DEST (overwrites files).")
    ] = False,
    lock: Annotated[
        bool,
        typer.Option(
            help="Resolve the dependencies into uv.lock (needs uv and the package index), "
            "as the Dockerfile and CI install them.",
        ),
    ] = True,
) -> None:
    """Generate a service from a spec: validated first, written atomically, committed to git."""
    from .plan import PlanError, plan_service
    from .render import RenderError, check_destination, render_service
    from .spec import SpecError

    extra_files: dict[str, str] = {}
    err = console(stderr=True)
    try:
        check_destination(dest, force=force)
        if spec is not None:
            from .plan import read_spec

            source = read_spec(spec)
        else:
            source = ask_for_spec()
            from .interactive import spec_yaml

            extra_files["spec.yaml"] = spec_yaml(source.data)
        plan = plan_service(source, database=database.value, python_version=python_version)
        message = None if no_git else f"Generated by microforge {__version__}"
        with progress(err, f"Generating {plan.project_name} in {escape(str(dest))} ..."):
            result = render_service(
                plan,
                dest,
                force=force,
                extra_files=extra_files,
                commit_message=message,
                lock=lock,
            )
    except SpecError as error:
        fail_spec(error, "nothing was written")
    except (PlanError, RenderError) as error:
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or dest}: {error.strerror or error}")
    except KeyboardInterrupt:
        fail("interrupted: nothing was written", 130)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    out = console()
    git = ", 1 git commit" if result.committed else ""
    out.print(
        f"[green]✓[/] Generated [bold]{plan.project_name}[/] in {escape(str(dest))}: "
        f"{result.files} files in {result.seconds:.2f} s{git}"
    )
    if "spec.yaml" in extra_files:
        out.print(f"  The spec you answered is saved as {escape(str(dest / 'spec.yaml'))}.")
    out.print("Next steps:")
    for step in (
        f"cd {dest}",
        "uv run pytest",
        f"uv run python -m {plan.package} migrate",
        f"uv run python -m {plan.package} serve --port 8000",
    ):
        out.print(f"  {escape(step)}")


def has_terminal() -> bool:
    """Whether prompts can be shown and answered (stdin and stdout are terminals)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def ask_for_spec() -> SpecSource:
    """Build a spec through prompts (a terminal is required) and validate it."""
    from . import interactive
    from .plan import spec_from_data

    if not has_terminal():
        fail("no --spec given and no terminal to ask on")
    return spec_from_data(interactive.ask_spec(), "<answers>")


@app.command()
def run(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="A generated service's directory.")
    ],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 8000,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke", help="Start on a free port, check /health and /openapi.json, then stop."
        ),
    ] = False,
) -> None:
    """Run a generated service locally: migrate its database, then serve it (Ctrl-C stops)."""
    from . import run as runner

    try:
        service = runner.find_service(directory)
        if smoke:
            with progress(console(stderr=True), f"Smoke-testing {service.name} ..."):
                result = runner.smoke(service)
            if not result.ok:
                err = console(stderr=True)
                err.print(f"[bold red]smoke test failed:[/] {escape(result.detail)}")
                err.print(escape(result.log_tail), end="")
                raise typer.Exit(1)
            console().print(f"[green]✓[/] {service.name}: {escape(result.detail)}")
            return
        console(stderr=True).print(
            f"Running {service.name} on http://127.0.0.1:{port} (Ctrl-C stops it)"
        )
        status = runner.run_service(service, port=port)
    except runner.RunError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot run {directory}: {error}")
    raise typer.Exit(status)


@app.command()
def update(
    directory: Annotated[
        Path,
        typer.Argument(
            metavar="DIR", help="A generated service, or a system (a directory of services)."
        ),
    ],
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec", "-s", metavar="SPEC", help="The service's new spec (one service only)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the diff the update would make; write nothing.")
    ] = False,
    allow_destructive: Annotated[
        bool,
        typer.Option(
            "--allow-destructive",
            help="Accept a migration that drops tables, columns or enum values, or narrows a type.",
        ),
    ] = False,
) -> None:
    """Update a service or a whole system to the template (and spec): code, then a new migration.

    Works in a temporary clone: DIR changes only if every step succeeds (left uncommitted).
    """
    from . import update as updater
    from .spec import SpecError

    err = console(stderr=True)
    data = None
    try:
        if spec is not None:
            from .plan import read_spec

            data = read_spec(spec).data
        with progress(err, f"Updating {escape(str(directory))} ..."):
            result = updater.update(
                directory, spec=data, dry_run=dry_run, allow_destructive=allow_destructive
            )
    except SpecError as error:
        fail_spec(error, "nothing was changed")
    except (updater.ConflictError, updater.RefusedError) as error:
        fail(str(error), 1)
    except updater.UpdateError as error:
        fail(str(error))
    except OSError as error:
        fail(f"{error.filename or directory}: {error.strerror or error}")
    except KeyboardInterrupt:
        fail("interrupted: nothing was changed", 130)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    out = console()
    for project in result.projects:
        migration = f", new migration {project.migration}" if project.migration else ""
        changed = f"{len(project.changed)} files changed" if project.changed else "up to date"
        out.print(
            f"[green]✓[/] {escape(project.path)} ({project.kind}): {changed}{escape(migration)}"
        )
        for note in project.notes:
            out.print(f"  [yellow]note:[/] {escape(note)}")
    if dry_run:
        if result.diff:
            out.print(escape(result.stat), end="")
            sys.stdout.write(result.diff)
        out.print(f"Dry run: nothing was written ({result.seconds:.1f} s).")
    elif result.applied:
        out.print(
            f"Updated in {result.seconds:.1f} s; the changes are not committed: review them "
            "(git diff), run the tests, then commit."
        )
    else:
        out.print(f"Nothing to update ({result.seconds:.1f} s).")


def main() -> None:
    """Entry point of the `microforge` script."""
    app()


if __name__ == "__main__":
    main()
