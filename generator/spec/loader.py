"""Reading a spec's YAML with positions: ruamel.yaml round-trip data, duplicate-key detection,
conversion to plain Python data, and a `Locator` mapping spec paths back to line and column."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from .errors import At, Finding, Path, PathElement
from .suggest import describe

MAX_DEPTH = 100
MAX_NODES = 200_000
MAX_FLOW_DEPTH = 300  # ruamel.yaml itself gives up (RecursionError) at about this depth
_CHECKED_TAGS = (":timestamp", ":int", ":float")


class DataError(Exception):
    """The data cannot be validated at all (too deep, too large, recursive)."""


def key_text(key: object) -> str:
    """A mapping key as text: keys of a spec are always compared as strings."""
    if isinstance(key, str):
        return str(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, tuple | list):
        return "[" + ", ".join(key_text(k) for k in key) + "]"
    return str(key)


def to_plain(data: object) -> object:
    """Convert ruamel.yaml (or any Python) data to plain dicts, lists and scalars.

    Keys become strings, tuples become lists, ruamel scalar subclasses become their base types.
    Raises `DataError` for recursive, too deeply nested or too large data.
    """
    memo: dict[int, tuple[object, int]] = {}
    active: set[int] = set()

    def convert(value: object, depth: int) -> tuple[object, int]:
        if depth > MAX_DEPTH:
            raise DataError(f"the spec is nested too deeply (more than {MAX_DEPTH} levels)")
        ident = id(value)
        if ident in memo:
            return memo[ident]
        if isinstance(value, dict | list | tuple):
            if ident in active:
                raise DataError("the spec contains a recursive reference (an alias to itself)")
            active.add(ident)
            try:
                result = convert_container(value, depth)
            finally:
                active.discard(ident)
            memo[ident] = result
            if result[1] > MAX_NODES:
                raise DataError(f"the spec is too large (more than {MAX_NODES} values)")
            return result
        return convert_scalar(value), 1

    def convert_container(value: object, depth: int) -> tuple[object, int]:
        size = 1
        if isinstance(value, dict):
            out: dict[str, object] = {}
            for key, item in value.items():
                converted, count = convert(item, depth + 1)
                size += count
                out.setdefault(key_text(key), converted)
            return out, size
        items: list[object] = []
        assert isinstance(value, list | tuple)
        for item in value:
            converted, count = convert(item, depth + 1)
            size += count
            items.append(converted)
        return items, size

    return convert(data, 0)[0]


def convert_scalar(value: object) -> object:
    """A scalar as its plain Python type (bool, int, float, str, date, datetime, ...)."""
    if value is None or type(value) in (bool, int, float, str, dt.date, dt.datetime):
        return value
    if isinstance(value, TaggedScalar):
        return str(value.value) if value.value is not None else None
    if isinstance(value, bool):
        return bool(value)
    # ruamel's ScalarBoolean is an int subclass, not a bool one
    if type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return dt.datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
        )
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    return value


@dataclass
class Locator:
    """Finds the 1-based line and column of a path in round-trip loaded YAML data."""

    root: object
    root_position: tuple[int, int] | None
    prefix: Path = ()

    def position(self, path: Path, at: At) -> tuple[int, int] | None:
        """Where the value (or key, or enclosing mapping) at `path` is; the nearest known place."""
        full = self.prefix + path
        steps = full if at == "value" else full[:-1]
        node: object = self.root
        position = self.root_position
        for element in steps:
            step = _step(node, element)
            if step is None:
                return position
            node, found = step
            position = found if found is not None else position
        if at == "key" and full:
            key_position = _key_position(node, full[-1])
            if key_position is not None:
                return key_position
        return position


def _zero_based(pair: Any) -> tuple[int, int] | None:
    try:
        line, column = pair
        return int(line) + 1, int(column) + 1
    except (TypeError, ValueError):
        return None


def _find_key(node: CommentedMap, element: PathElement) -> tuple[bool, object]:
    for key in node:
        if key_text(key) == element:
            return True, key
    return False, None


def _step(node: object, element: PathElement) -> tuple[object, tuple[int, int] | None] | None:
    try:
        if isinstance(node, CommentedMap):
            found, key = _find_key(node, element)
            if not found:
                return None
            child = node[key]
            value_position = _zero_based(node.lc.value(key))
            key_position = _zero_based(node.lc.key(key))
            if (
                child is None
                and value_position is not None
                and key_position is not None
                and value_position[0] != key_position[0]
            ):
                # an empty value: ruamel points at the next token, the key is more helpful
                value_position = key_position
            return child, value_position
        if isinstance(node, CommentedSeq) and isinstance(element, int) and 0 <= element < len(node):
            return node[element], _zero_based(node.lc.item(element))
    except Exception:  # merged keys and other odd corners have no positions
        return None
    return None


def _key_position(node: object, element: PathElement) -> tuple[int, int] | None:
    try:
        if isinstance(node, CommentedMap):
            found, key = _find_key(node, element)
            if found:
                return _zero_based(node.lc.key(key))
        if isinstance(node, CommentedSeq) and isinstance(element, int) and 0 <= element < len(node):
            return _zero_based(node.lc.item(element))
    except Exception:
        return None
    return None


@dataclass
class Loaded:
    """The outcome of reading YAML text."""

    data: object = None
    locator: Locator | None = None
    findings: list[Finding] = field(default_factory=list)
    fatal: bool = False


def _mark_position(mark: Any) -> tuple[int | None, int | None]:
    if mark is None:
        return None, None
    try:
        return int(mark.line) + 1, int(mark.column) + 1
    except (AttributeError, TypeError, ValueError):
        return None, None


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count("\n") + 1
    return line, offset - (before.rfind("\n") + 1) + 1


def _yaml_error(text: str, error: Exception) -> Finding:
    if isinstance(error, MarkedYAMLError):
        line, column = _mark_position(error.problem_mark or error.context_mark)
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.problem:
            problem = f"{error.problem} ({error.context})"
        return Finding((), f"invalid YAML: {problem}", line=line, column=column)
    if isinstance(error, ReaderError):
        line, column = _offset_position(text, int(error.position))
        character = error.character
        shown = f"#x{character:04x}" if isinstance(character, int) else repr(character)
        return Finding(
            (),
            f"invalid YAML: unacceptable character {shown} (special characters are not allowed)",
            line=line,
            column=column,
        )
    return Finding((), f"invalid YAML: {error}")


def _duplicates(root: Node) -> list[Finding]:
    """Every duplicate key in every mapping of the composed node tree."""
    findings: list[Finding] = []
    seen_nodes: set[int] = set()
    stack: list[tuple[Node, Path]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first: dict[tuple[str, str], Node] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode):
                    text = str(key_node.value)
                    ident = (str(key_node.tag), text)
                    if ident in first:
                        line, column = _mark_position(key_node.start_mark)
                        first_line, _ = _mark_position(first[ident].start_mark)
                        findings.append(
                            Finding(
                                (*path, text),
                                f"duplicate key {describe(text)}; it is already defined at "
                                f"line {first_line} of this mapping, and each key may appear "
                                "only once",
                                at="key",
                                line=line,
                                column=column,
                            )
                        )
                        continue
                    first[ident] = key_node
                    stack.append((value_node, (*path, text)))
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, index)))
    return findings


def _failing_scalar(root: Node) -> Finding | None:
    """The first scalar that YAML resolves as a number or date but cannot construct."""
    stack: list[Node] = [root]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                stack.extend((key_node, value_node))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, ScalarNode) and str(node.tag).endswith(_CHECKED_TAGS):
            try:
                YAML(typ="rt").load(str(node.value))
            except Exception as error:
                line, column = _mark_position(node.start_mark)
                kind = "date or timestamp" if str(node.tag).endswith("timestamp") else "number"
                return Finding(
                    (),
                    f"invalid {kind} {describe(str(node.value))}: {error}",
                    line=line,
                    column=column,
                )
    return None


def _flow_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than `limit` (ruamel would only fail slowly, by recursion)."""
    depth = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}" and depth:
            depth -= 1
    return False


def load_yaml(text: str) -> Loaded:
    """Parse YAML text; syntax problems become findings (and `fatal`) instead of exceptions."""
    if _flow_depth_exceeds(text, MAX_FLOW_DEPTH):
        return Loaded(findings=[Finding((), "the YAML is nested too deeply")], fatal=True)
    try:
        root_node = YAML(typ="rt").compose(text)
    except RecursionError:
        return Loaded(findings=[Finding((), "the YAML is nested too deeply")], fatal=True)
    except Exception as error:
        return Loaded(findings=[_yaml_error(text, error)], fatal=True)
    if root_node is None:
        return Loaded(data=None)
    findings = _duplicates(root_node)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = True
    try:
        raw = yaml.load(text)
    except RecursionError:
        return Loaded(findings=[Finding((), "the YAML is nested too deeply")], fatal=True)
    except Exception as error:
        if isinstance(error, YAMLError):
            return Loaded(findings=[_yaml_error(text, error)], fatal=True)
        located = _failing_scalar(root_node)
        finding = located or Finding((), f"invalid YAML: {error}")
        return Loaded(findings=[finding], fatal=True)
    try:
        data = to_plain(raw)
    except DataError as problem:
        return Loaded(findings=[Finding((), str(problem), line=1, column=1)], fatal=True)
    except RecursionError:
        return Loaded(findings=[Finding((), "the YAML is nested too deeply")], fatal=True)
    root_position = _mark_position(root_node.start_mark)
    position = (
        (root_position[0], root_position[1])
        if root_position[0] is not None and root_position[1] is not None
        else None
    )
    return Loaded(data=data, locator=Locator(raw, position), findings=findings)
