"""The plan and render layers: answers as written, option checks, atomic renders, git, cache."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from microforge.plan import (
    PlanError,
    RenderPlan,
    SpecSource,
    plan_service,
    read_spec,
    spec_from_data,
    template_root,
)
from microforge.render import RenderError, git_commit_all, render_service
from microforge.speedups import shared_clones

MINIMAL = {
    "name": "shop",
    "entities": [{"name": "Item", "fields": [{"name": "title", "type": "string"}]}],
}


def tiny_template(root: Path, body: str = "Hello {{ who }}\n") -> Path:
    """A one-question template that is not a git repository."""
    root.mkdir()
    (root / "copier.yml").write_text(
        "_answers_file: .copier-answers.yml\nwho:\n  type: str\n  default: world\n",
        encoding="utf-8",
    )
    (root / "hello.txt.jinja").write_text(body, encoding="utf-8")
    (root / "{{ _copier_conf.answers_file }}.jinja").write_text(
        "{{ _copier_answers | to_nice_yaml }}", encoding="utf-8"
    )
    return root


def tiny_plan(root: Path) -> RenderPlan:
    return RenderPlan(template_root=root, data={"who": "you"}, package="x", project_name="x")


def entries(directory: Path) -> list[str]:
    return sorted(entry.name for entry in directory.iterdir())


def test_the_template_root_is_the_repository(repo_root: Path) -> None:
    assert template_root() == repo_root


def test_read_spec_keeps_what_the_user_wrote(example_spec: Path) -> None:
    source = read_spec(example_spec)
    assert source.spec.name == "inventory"
    assert source.data == yaml.safe_load(example_spec.read_text(encoding="utf-8"))
    assert "plural" not in source.data["entities"][1]  # defaults are not filled in


def test_read_spec_keeps_yaml_1_2_strings(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: shop\nentities:\n  - name: Item\n    fields:\n"
        "      - {name: answer, type: enum, values: [YES, NO], default: NO}\n",
        encoding="utf-8",
    )
    field = read_spec(spec).data["entities"][0]["fields"][0]
    assert field["values"] == ["YES", "NO"]
    assert field["default"] == "NO"


def test_plan_service_builds_the_answers() -> None:
    plan = plan_service(spec_from_data(MINIMAL), database="sqlite", python_version="3.12")
    assert plan.data == {"spec": MINIMAL, "database": "sqlite", "python_version": "3.12"}
    assert plan.package == "shop_service"
    assert plan.project_name == "shop-service"


@pytest.mark.parametrize(("option", "value"), [("database", "oracle"), ("python_version", "3.9")])
def test_plan_service_checks_options_against_the_template(option: str, value: str) -> None:
    source = spec_from_data(MINIMAL)
    with pytest.raises(PlanError, match="is not one of"):
        plan_service(source, **{option: value})


def test_a_render_of_a_plain_folder_template(tmp_path: Path) -> None:
    root = tiny_template(tmp_path / "tpl")
    result = render_service(tiny_plan(root), tmp_path / "a" / "b" / "out")
    assert result.files == 2
    assert (result.dest / "hello.txt").read_text(encoding="utf-8") == "Hello you\n"
    assert entries(tmp_path / "a" / "b") == ["out"]


def test_a_failed_render_leaves_no_trace(tmp_path: Path) -> None:
    root = tiny_template(tmp_path / "tpl", body="{{ broken ")
    with pytest.raises(RenderError, match="Copier failed"):
        render_service(tiny_plan(root), tmp_path / "a" / "b" / "out")
    assert entries(tmp_path) == ["tpl"]


def test_a_failed_render_keeps_an_existing_empty_destination(tmp_path: Path) -> None:
    root = tiny_template(tmp_path / "tpl", body="{{ 1 / 0 }}")
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(RenderError):
        render_service(tiny_plan(root), dest)
    assert entries(tmp_path) == ["out", "tpl"]
    assert entries(dest) == []


def test_extra_files_are_written_and_committed(tmp_path: Path) -> None:
    root = tiny_template(tmp_path / "tpl")
    result = render_service(
        tiny_plan(root),
        tmp_path / "out",
        extra_files={"spec.yaml": "name: x\n"},
        commit_message="first",
    )
    assert result.committed
    assert result.files == 3
    listed = subprocess.run(
        ["git", "ls-files"], cwd=result.dest, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(listed) == [".copier-answers.yml", "hello.txt", "spec.yaml"]


def test_git_commit_without_an_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "f.txt").write_text("x", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for variable in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "EMAIL"):
        monkeypatch.delenv(variable, raising=False)
    git_commit_all(project, "Generated")
    author = subprocess.run(
        ["git", "log", "--format=%an <%ae>"], cwd=project, capture_output=True, text=True
    ).stdout.strip()
    assert author == "microforge <microforge@localhost>"


def rendered_files(root: Path) -> dict[str, bytes]:
    """Every file of a rendered project (the answers without `_commit`: a template with
    uncommitted changes is committed in each clone, at another time)."""
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            if path.name == ".copier-answers.yml":
                lines = content.splitlines(keepends=True)
                content = b"".join(line for line in lines if not line.startswith(b"_commit:"))
            files[str(path.relative_to(root))] = content
    return files


def test_the_bytecode_cache_does_not_change_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_spec: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    plan = plan_service(read_spec(example_spec))
    first = render_service(plan, tmp_path / "first")
    cached = list((tmp_path / "cache" / "microforge" / "jinja").iterdir())
    assert cached
    second = render_service(plan, tmp_path / "second")
    monkeypatch.setenv("MICROFORGE_NO_JINJA_CACHE", "1")
    third = render_service(plan, tmp_path / "third")

    assert rendered_files(first.dest) == rendered_files(second.dest) == rendered_files(third.dest)
    assert first.files == second.files == third.files


def test_a_shared_template_clone_and_compiled_strings_do_not_change_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example_spec: Path
) -> None:
    """What `microforge blueprint` does: one clone of the template for every render of the
    system, `from_string` sources compiled once per process (the second render hits that cache,
    paths with Copier's `yield` tag included); the same files as without either."""
    import tempfile

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)
    plan = plan_service(read_spec(example_spec))
    with shared_clones(plan.template_root) as notes:
        kept = list((tmp_path / "tmp").glob("microforge-template-*"))
        assert len(kept) == 1
        cloned = sorted(kept[0].iterdir())
        first = render_service(plan, tmp_path / "first")
        second = render_service(plan, tmp_path / "second")
        assert sorted(kept[0].iterdir()) == cloned  # the renders cloned nothing more
    assert not kept[0].exists()
    monkeypatch.setenv("MICROFORGE_NO_JINJA_CACHE", "1")
    third = render_service(plan, tmp_path / "third")

    assert rendered_files(first.dest) == rendered_files(second.dest) == rendered_files(third.dest)
    # the clone's warning (a dirty template) is the context's note, no longer each render's
    assert set(notes) == set(third.notes)
    assert not first.notes
    assert not second.notes


def test_source_data_is_plain(example_spec: Path) -> None:
    source: SpecSource = read_spec(example_spec)
    assert type(source.data) is dict
    assert type(source.data["entities"]) is list


def test_an_unusable_cache_directory_only_costs_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    root = tiny_template(tmp_path / "tpl")
    result = render_service(tiny_plan(root), tmp_path / "out")
    assert (result.dest / "hello.txt").read_text(encoding="utf-8") == "Hello you\n"


def test_a_failed_move_into_an_empty_directory_empties_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tiny_template(tmp_path / "tpl")
    dest = tmp_path / "out"
    dest.mkdir()
    real_rename = os.rename
    calls: list[object] = []

    def flaky_rename(src: str, dst: str) -> None:
        if Path(dst).parent == dest:  # the moves of the rendered entries into dest
            calls.append(src)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", flaky_rename)
    with pytest.raises(RenderError, match=r"cannot write .*No space left"):
        render_service(tiny_plan(root), dest)
    assert len(calls) == 2
    assert entries(dest) == []
