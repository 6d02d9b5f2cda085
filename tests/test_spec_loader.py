"""Hostile or unusual YAML: the loader reports it as issues, quickly, never as a traceback."""

from __future__ import annotations

import time

import pytest

from microforge.spec import SpecError, SpecIssue, parse_spec


def _issues(text: str) -> list[SpecIssue]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, "spec.yaml")
    return info.value.issues


def test_special_character_has_a_position() -> None:
    (issue,) = _issues("name: shop\ndescription: a\x00b\n")
    assert "unacceptable character #x0000" in issue.message
    assert (issue.line, issue.column) == (2, 15)


def test_number_too_long_to_construct_has_a_position() -> None:
    text = "name: shop\nentities: [{name: A, fields: [{name: n, type: integer, max: " + "9" * 5000
    (issue,) = _issues(text + "}]}]\n")
    assert issue.message.startswith("invalid number '999")
    assert (issue.line, issue.column) == (2, 61)


def test_several_documents() -> None:
    (issue,) = _issues("name: a\n---\nname: b\n")
    assert "expected a single document" in issue.message
    assert (issue.line, issue.column) == (2, 1)


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    started = time.perf_counter()
    (issue,) = _issues("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2
    assert "the spec is too large" in issue.message


@pytest.mark.parametrize("depth", [150, 400, 5000])
def test_deep_nesting_is_refused_quickly(depth: int) -> None:
    started = time.perf_counter()
    issues = _issues("name: " + "[" * depth + "]" * depth + "\n")
    assert time.perf_counter() - started < 2
    assert any("nested too deeply" in issue.message for issue in issues)


def test_catastrophic_pattern_does_not_hang() -> None:
    text = (
        "name: shop\nentities:\n  - name: A\n    fields:\n"
        "      - {name: n, type: string, pattern: '(a+)+$', default: '" + "a" * 40 + "!'}\n"
    )
    started = time.perf_counter()
    (issue,) = _issues(text)
    assert time.perf_counter() - started < 2
    assert "does not match the pattern" in issue.message


def test_lookaround_pattern_still_checks_the_default() -> None:
    text = (
        "name: shop\nentities:\n  - name: A\n    fields:\n"
        "      - {name: n, type: string, pattern: '(?!x)[a-z]+', default: 'xyz'}\n"
    )
    (issue,) = _issues(text)
    assert issue.path == "entities[0].fields[0].default"


def test_odd_tags_are_described() -> None:
    issues = _issues("name: !!binary aGVsbG8=\nentities: !!set {a, b}\ndescription: !x y\n")
    messages = {issue.path: issue.message for issue in issues}
    assert messages == {
        "name": "expected a string, got binary data",
        "entities": "expected a list, got a set",
    }


def test_merge_keys_work_and_positions_fall_back() -> None:
    text = (
        "name: shop\nentities:\n  - name: A\n    fields:\n"
        "      - &f {name: n, type: string}\n      - <<: *f\n        name: m\n"
    )
    spec = parse_spec(text)
    assert [f.name for f in spec.entities[0].fields] == ["n", "m"]


def test_non_string_keys_are_unknown_keys() -> None:
    (issue,) = _issues("name: shop\n1: x\nentities: [{name: A, fields: [{name: b, type: url}]}]\n")
    assert issue.message.startswith("unknown key '1'")
    assert (issue.path, issue.line, issue.column) == ('["1"]', 2, 1)


def test_byte_order_mark_is_accepted() -> None:
    assert parse_spec("\ufeffname: shop\nentities: [{name: A, fields: [{name: b, type: url}]}]\n")


def test_not_text() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(b"name: shop")  # type: ignore[arg-type]
    assert "expected YAML text" in info.value.issues[0].message
