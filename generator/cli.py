"""The `microforge` command line: validate, schema, new, update, run.

Every bad input ends with a clean message on stderr and exit status 2, never a traceback.
Layers are imported inside the commands so that `--help` and `validate` stay fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from . import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from .blueprint import LoadedBlueprint
    from .plan import SpecSource
    from .render import RenderResult
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


def fail_writing(error: BaseException, dest: Path) -> NoReturn:
    """Exit with the message of an error that stopped `new` or `blueprint` writing `dest`."""
    from .spec import SpecError

    if isinstance(error, SpecError):
        fail_spec(error, "nothing was written")
    if isinstance(error, KeyboardInterrupt):
        fail("interrupted: nothing was written", 130)
    if isinstance(error, OSError):
        fail(f"{error.filename or dest}: {error.strerror or error}")
    fail(str(error))


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
    spec: Annotated[
        Path,
        typer.Argument(
            metavar="SPEC|BLUEPRINT",
            help="A service spec, or a system blueprint (its file or directory), to check.",
        ),
    ],
) -> None:
    """Check a service spec or a whole system's blueprint: every problem with its
    file:line:col and path, or a summary."""
    from .spec import SpecError, load_spec

    if is_blueprint(spec):
        from .plan import PlanError
        from .system import read_blueprint

        try:
            loaded = read_blueprint(spec)
        except SpecError as error:
            fail_spec(error, f"{spec} is not a valid blueprint")
        except PlanError as error:
            fail(str(error))
        print_blueprint_summary(loaded)
        return
    try:
        service = load_spec(spec)
    except SpecError as error:
        fail_spec(error, f"{spec} is not a valid service spec")
    print_summary(service, spec)


def is_blueprint(path: Path) -> bool:
    """Whether `path` is a blueprint: a directory, a file named blueprint.yaml, or YAML whose
    top level has `services` and no `entities`."""
    if path.is_dir() or path.name in ("blueprint.yaml", "blueprint.yml"):
        return True
    from .spec.loader import load_yaml

    try:
        data = load_yaml(path.read_text(encoding="utf-8-sig")).data
    except (OSError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and "services" in data and "entities" not in data


def print_blueprint_summary(loaded: LoadedBlueprint) -> None:
    """A short table of the system's services and their graph."""
    from rich.table import Table

    from .system import system_answer

    answer = system_answer(loaded)
    out = console()
    gateway = answer["gateway"]
    out.print(
        f"[green]✓[/] {escape(str(loaded.path))}: system [bold]{answer['name']}[/]: "
        f"{len(answer['services'])} services, {len(answer['calls'])} synchronous call edges, "
        f"{len(answer['events'])} event flows"
        + (f", gateway {gateway['name']} ({len(gateway['routes'])} routes)" if gateway else "")
    )
    table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
    for column in ("service", "port", "database", "calls", "publishes", "consumes"):
        table.add_column(column)
    for service in answer["services"]:
        table.add_row(
            service["name"],
            str(service["port"]),
            service["database"],
            ", ".join(service["calls"]) or "-",
            ", ".join(service["publishes"]) or "-",
            ", ".join(f"{c['service']}.{c['event']}" for c in service["consumes"]) or "-",
        )
    out.print(table)


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
    for saga in service.sagas:
        steps = " → ".join(step.name for step in saga.steps)
        out.print(
            f"saga [bold]{saga.name}[/] of {saga.entity} (on {saga.start}): {steps}; then "
            f"{saga.succeed}, or {saga.fail} after compensating"
        )


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead of stdout."),
    ] = None,
    blueprint: Annotated[
        bool, typer.Option("--blueprint", help="The schema of a system blueprint instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of the spec format, or of the blueprint format (for editors)."""
    if blueprint:
        from .blueprint import blueprint_json_schema

        document = blueprint_json_schema()
    else:
        from .spec import spec_json_schema

        document = spec_json_schema()
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
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
    except (SpecError, PlanError, RenderError, OSError, KeyboardInterrupt) as error:
        fail_writing(error, dest)
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


@app.command()
def blueprint(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="BLUEPRINT", help="The system's blueprint.yaml, or the directory holding it."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="DIR", help="Directory to create (absent or empty)."
        ),
    ],
    lock: Annotated[
        bool,
        typer.Option(
            help="Resolve each service's dependencies into its uv.lock (needs uv and the "
            "package index), as their Dockerfiles and CI install them.",
        ),
    ] = True,
) -> None:
    """Generate a whole system from a blueprint: every service, the gateway and the system
    files (compose, Kubernetes, Helm, CI, README), validated first, written atomically, one
    git commit."""
    from .compose import compose_system
    from .plan import PlanError
    from .render import RenderError, check_destination, is_empty_dir
    from .spec import SpecError
    from .system import plan_system, read_blueprint

    err = console(stderr=True)
    try:
        if output.is_dir() and not is_empty_dir(output):
            fail(
                f"{output} is not empty: microforge blueprint writes a new system (to change a "
                "generated one, use microforge update DIR --blueprint BLUEPRINT)"
            )
        check_destination(output)
        plan = plan_system(read_blueprint(source))
        with SystemProgress(err, plan.name, output) as tracker:
            result = compose_system(
                plan,
                output,
                lock=lock,
                commit_message=f"Generated by microforge {__version__} from {plan.name}",
                report=tracker.report,
            )
    except (SpecError, PlanError, RenderError, OSError, KeyboardInterrupt) as error:
        fail_writing(error, output)
    for note in result.notes:
        err.print(f"[yellow]note:[/] {escape(note)}")
    out = console()
    out.print(
        f"[green]✓[/] Generated system [bold]{plan.name}[/] in {escape(str(output))}: "
        f"{len(plan.services)} services"
        + (", a gateway" if plan.gateway is not None else "")
        + f", {result.files} files in {result.seconds:.2f} s, 1 git commit"
    )
    out.print("Next steps:")
    for step in (
        f"cd {output}",
        "cat README.md",
        "cp .env.example .env && docker compose up --build",
    ):
        out.print(f"  {escape(step)}")


class SystemProgress:
    """Rich progress of a system's render: one line per subproject (services, gateway,
    system files) with its state, on a terminal only."""

    def __init__(self, err: Console, name: str, dest: Path) -> None:
        self.err = err
        self.title = f"Generating {name} in {dest}"
        self.states: dict[str, tuple[str, str]] = {}
        self.live: Live | None = None

    def __enter__(self) -> SystemProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()

    def _table(self) -> Table:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(box=None, show_header=False, title=escape(self.title), title_justify="left")
        for name, (state, detail) in self.states.items():
            label = "system files" if name.startswith(".") else name
            mark: Spinner | str = {"done": "[green]✓[/]", "failed": "[red]✗[/]"}.get(
                state, Spinner("dots")
            )
            table.add_row(mark, escape(label), escape(detail))
        return table

    def report(self, name: str, state: str, result: RenderResult | None) -> None:
        """Record a subproject's state and redraw (on a terminal)."""
        detail = f"{result.files} files in {result.seconds:.2f} s" if result else f"{state} ..."
        self.states[name] = (state, detail)
        if not self.err.is_terminal:
            return
        if self.live is None:
            from rich.live import Live

            self.live = Live(self._table(), console=self.err, refresh_per_second=8)
            self.live.start()
        else:
            self.live.update(self._table())


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
        Path,
        typer.Argument(metavar="DIR", help="A generated service's or system's directory."),
    ],
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port to serve on (a service).")
    ] = 8000,
    smoke: Annotated[
        bool,
        typer.Option(
            "--smoke",
            help="A service: start on a free port, check /health and /openapi.json, then stop. "
            "A system: start it on scratch state, replay the blueprint's journey through the "
            "gateway, then stop (exit 1 naming the failing step).",
        ),
    ] = False,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            help="A system: sqlite (a file per service under DIR/.microforge/run, the default) "
            "or postgres (a database <system>_<service> on 127.0.0.1:5432, user postgres).",
        ),
    ] = None,
    logs: Annotated[
        Path | None,
        typer.Option(
            "--logs",
            metavar="LOGDIR",
            help="A system: write each process's output to LOGDIR/<name>.log instead of the "
            "console.",
        ),
    ] = None,
    gateway_port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="A system: the gateway's port (0: any free one)."),
    ] = 8080,
) -> None:
    """Run a generated service (migrate, then serve) or a whole generated system (broker,
    services, gateway) locally; Ctrl-C stops."""
    from . import run as runner

    if database is not None and database not in ("sqlite", "postgres"):
        fail(f"--database {database}: use sqlite or postgres")
    try:
        from .runner import find_system, is_system

        if directory.is_dir() and is_system(directory):
            from .runner import Options, run_system

            layout = find_system(directory)
            options = Options(
                smoke=smoke,
                database=database or "sqlite",
                logs=logs.resolve() if logs is not None else None,
                gateway_port=gateway_port,
            )
            raise typer.Exit(run_system(layout, options))
        service = runner.find_service(directory)
        if database is not None or logs is not None:
            fail("--database and --logs apply to a generated system, not to one service")
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
    blueprint_file: Annotated[
        Path | None,
        typer.Option(
            "--blueprint",
            "-b",
            metavar="BLUEPRINT",
            help="The system's new blueprint (a whole system only): services added are "
            "generated, the others, the gateway and the system files get its answers.",
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
    from .plan import PlanError
    from .render import RenderError
    from .spec import SpecError

    err = console(stderr=True)
    data = None
    answers: dict[str, dict[str, Any]] | None = None
    create: dict[str, Callable[[Path], list[str]]] | None = None
    try:
        if spec is not None and blueprint_file is not None:
            fail("give --spec (one service) or --blueprint (a system), not both")
        if spec is not None:
            from .plan import read_spec

            data = read_spec(spec).data
        if blueprint_file is not None:
            from .compose import system_updates
            from .system import plan_system, read_blueprint

            plan = plan_system(read_blueprint(blueprint_file))
            answers, create = system_updates(plan, directory)
            for gone in sorted(set(updater.subprojects(directory)) - set(plan.projects())):
                err.print(
                    f"[yellow]note:[/] {escape(gone)} is not in the blueprint any more: it is "
                    "left as it is (remove the directory yourself if the service is retired)"
                )
        with progress(err, f"Updating {escape(str(directory))} ..."):
            result = updater.update(
                directory,
                spec=data,
                dry_run=dry_run,
                allow_destructive=allow_destructive,
                answers=answers,
                create=create,
            )
    except SpecError as error:
        fail_spec(error, "nothing was changed")
    except (updater.ConflictError, updater.RefusedError) as error:
        fail(str(error), 1)
    except updater.UpdateError as error:
        fail(str(error))
    except (PlanError, RenderError) as error:
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
