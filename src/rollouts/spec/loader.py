"""Reading manifests: multi-document YAML/JSON from files, directories and stdin, into plain objects that
remember where they came from (file, document line, and the line of every field).

Input is treated as hostile: oversize files, invalid UTF-8, syntax errors, alias bombs, deep nesting and
duplicate keys all become `Problem`s, never exceptions. Documents are built from the YAML event stream
(libyaml's parser when available) by an iterative composer, so nesting depth cannot exhaust the stack and
alias expansion is counted against a budget.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from rollouts.spec.problems import FieldPath, Finding, Problem, error

MAX_FILE_BYTES = 8 * 1024 * 1024
# What alias expansion may add to one file, in nodes and in bytes (a legitimate manifest reuses a few small
# anchors). Aliases share the anchored value while loading, but validation and storage serialise every object
# at full size, so the budget is on the expanded size: few nodes can still hold long strings.
MAX_ALIAS_NODES = 100_000
MAX_ALIAS_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 200
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_NAME = "<stdin>"

_Parser: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader


@dataclass(frozen=True)
class LoadedObject:
    """One manifest document that is a mapping, with its origin."""

    data: dict[str, Any]
    source: str
    line: int
    lines: dict[FieldPath, int] = field(default_factory=dict, compare=False, repr=False)
    # Problems seen while reading this document (duplicate keys), reported with the object.
    findings: tuple[Finding, ...] = ()

    @property
    def kind(self) -> str:
        kind = self.data.get("kind")
        return kind if isinstance(kind, str) else ""

    @property
    def api_version(self) -> str:
        api = self.data.get("apiVersion")
        return api if isinstance(api, str) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        return name if isinstance(name, str) else ""

    @property
    def namespace(self) -> str | None:
        meta = self.data.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, dict) else None
        return ns if isinstance(ns, str) else None

    def line_of(self, path: FieldPath) -> int:
        """The line of a field, or of its closest ancestor present in the input, or of the document."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return self.line


@dataclass
class LoadResult:
    """Everything read from the inputs, in input order: objects, and problems not tied to an object."""

    objects: list[LoadedObject] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (position among objects when the problem happened, problem): keeps output in input order.
    order: list[LoadedObject | Problem] = field(default_factory=list)

    def add_object(self, obj: LoadedObject) -> None:
        self.objects.append(obj)
        self.order.append(obj)

    def add_problem(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.order.append(problem)


class _ComposeError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass
class _Frame:
    container: dict[str, Any] | list[Any]
    path: FieldPath
    anchor: str | None
    line: int
    nodes: int = 1
    # Expanded size in bytes, roughly as JSON: scalars' text plus punctuation.
    size: int = 2
    key: Any = None
    key_line: int = 0
    has_key: bool = False
    merge: bool = False
    key_lines: dict[str, int] = field(default_factory=dict)


_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()
_UNSET = object()


def _scalar(event: Any) -> Any:
    """A scalar's value with YAML 1.1 implicit typing (as Kubernetes' YAML reader does), timestamps kept as
    text since manifest fields that hold times are strings."""
    value = event.value
    if len(value) <= 64:  # keys and short values repeat a lot; their values are immutable, so shareable
        return _short_scalar(value, event.tag, event.implicit)
    return _typed(value, event.tag, event.implicit)


@lru_cache(maxsize=4096)
def _short_scalar(value: str, tag: str | None, implicit: tuple[bool, bool]) -> Any:
    return _typed(value, tag, implicit)


def _typed(value: str, tag: str | None, implicit: tuple[bool, bool]) -> Any:
    if tag in (None, "!"):
        tag = _RESOLVER.resolve(ScalarNode, value, implicit)
    node = ScalarNode(tag, value)
    try:
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return _CONSTRUCTOR.construct_yaml_bool(node)
        if tag == "tag:yaml.org,2002:int":
            return _CONSTRUCTOR.construct_yaml_int(node)
        if tag == "tag:yaml.org,2002:float":
            return _CONSTRUCTOR.construct_yaml_float(node)
    except (ValueError, yaml.YAMLError):
        pass  # e.g. an integer too long to convert: keep the text
    return value


class _Composer:
    """Builds plain Python values from YAML events, recording each field's line and counting aliases."""

    def __init__(self, source: str, result: LoadResult, aliases: bool = True) -> None:
        self.source = source
        self.result = result
        self.aliases = aliases

    def documents(self, text: str) -> None:
        anchors: dict[str, tuple[Any, int, int]] = {}
        stack: list[_Frame] = []
        root: Any = _UNSET
        root_line = 0
        lines: dict[FieldPath, int] = {}
        dups: list[tuple[int, Finding]] = []
        # Counted over the whole text, so that many small documents cannot add up to a bomb.
        alias_nodes = alias_bytes = 0

        def attach(
            value: Any, line: int, nodes: int, size: int, anchor: str | None, *, from_alias: bool = False
        ) -> None:
            nonlocal root, root_line
            if anchor is not None:
                anchors[anchor] = (value, nodes, size)
            if not stack:
                root, root_line = value, line
                return
            top = stack[-1]
            top.nodes += nodes
            top.size += size
            if isinstance(top.container, list):
                path = (*top.path, len(top.container))
                if not from_alias:
                    lines.setdefault(path, line)
                top.container.append(value)
                return
            if not top.has_key:
                if isinstance(value, dict | list):
                    raise _ComposeError(line, "a mapping key must be a plain value, not a list or mapping")
                top.merge = value == "<<" and not from_alias
                top.key = "" if value is None else str(value) if not isinstance(value, str) else value
                top.key_line = line
                top.has_key = True
                return
            top.has_key = False
            if top.merge:
                self._merge(top, value, line)
                return
            key = top.key
            assert isinstance(top.container, dict)
            if key in top.container and key in top.key_lines:
                first = top.key_lines[key]
                dups.append(
                    (top.key_line, error((*top.path, key), f"key repeated (first at line {first}); keys must be unique"))
                )
            top.key_lines[key] = top.key_line
            top.container[key] = value
            lines[(*top.path, key)] = top.key_line

        def child_path() -> FieldPath:
            if not stack:
                return ()
            top = stack[-1]
            if isinstance(top.container, list):
                return (*top.path, len(top.container))
            return (*top.path, top.key) if top.has_key else (*top.path, "<key>")

        events = yaml.parse(text, Loader=_Parser)
        try:
            for event in events:
                line = event.start_mark.line + 1 if event.start_mark is not None else 0
                # the most frequent event first: one type test per scalar instead of a chain
                if type(event) is yaml.ScalarEvent:
                    attach(_scalar(event), line, 1, len(event.value) + 3, event.anchor)
                elif isinstance(event, yaml.DocumentStartEvent):
                    anchors.clear()
                    stack.clear()
                    root, root_line, lines, dups = _UNSET, line, {}, []
                elif isinstance(event, yaml.DocumentEndEvent):
                    self._finish(root, root_line, lines, dups)
                    root = _UNSET
                elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                    if len(stack) >= MAX_DEPTH:
                        raise _ComposeError(line, f"nested more than {MAX_DEPTH} levels deep; refused")
                    container: dict[str, Any] | list[Any]
                    container = {} if isinstance(event, yaml.MappingStartEvent) else []
                    stack.append(_Frame(container, child_path(), event.anchor, line))
                elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                    frame = stack.pop()
                    attach(frame.container, frame.line, frame.nodes, frame.size, frame.anchor)
                elif isinstance(event, yaml.AliasEvent):
                    if not self.aliases:
                        raise _ComposeError(line, f"YAML aliases (*{event.anchor}) are refused here")
                    if event.anchor not in anchors:
                        raise _ComposeError(line, f'alias "*{event.anchor}" refers to no complete anchor')
                    value, nodes, size = anchors[event.anchor]
                    alias_nodes += nodes
                    alias_bytes += size
                    if alias_nodes > MAX_ALIAS_NODES or alias_bytes > MAX_ALIAS_BYTES:
                        raise _ComposeError(
                            line,
                            f"aliases expand to more than {MAX_ALIAS_NODES} nodes or "
                            f"{MAX_ALIAS_BYTES // (1024 * 1024)} MiB (alias *{event.anchor} here would make "
                            f"{alias_nodes} nodes, {_mib(alias_bytes)}); refused (an alias bomb, or anchors "
                            "reused too often)",
                        )
                    attach(value, line, nodes, size, None, from_alias=True)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _merge(self, top: _Frame, value: Any, line: int) -> None:
        """YAML merge keys (`<<: *base`): keys of the merged mappings that the mapping does not set."""
        sources = value if isinstance(value, list) else [value]
        assert isinstance(top.container, dict)
        for source in sources:
            if not isinstance(source, dict):
                raise _ComposeError(line, "a merge key (<<) needs a mapping or a list of mappings")
            for key, item in source.items():
                top.container.setdefault(key, item)

    def _finish(self, root: Any, line: int, lines: dict[FieldPath, int], dups: list[tuple[int, Finding]]) -> None:
        if not isinstance(root, dict):
            for dup_line, finding in dups:
                self.result.add_problem(Problem(self.source, dup_line, "", "", "", finding.message))
        if root is _UNSET or root is None:
            return  # an empty (null) document, e.g. after a trailing `---`
        if not isinstance(root, dict):
            what = "a list" if isinstance(root, list) else f"a plain value ({_short(root)})"
            self.result.add_problem(
                Problem(self.source, line, "", "", "", f"document is {what}, not a mapping (expected an object "
                        "with apiVersion, kind, metadata)")
            )
            return
        self.result.add_object(LoadedObject(root, self.source, line, lines, tuple(f for _, f in dups)))


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_text(text: str, source: str, result: LoadResult | None = None, *, aliases: bool = True) -> LoadResult:
    """Objects in a YAML (or JSON) text of one or more documents; `aliases=False` refuses any alias."""
    result = result if result is not None else LoadResult()
    before = len(result.objects)
    try:
        _Composer(source, result, aliases).documents(text)
    except _ComposeError as exc:
        result.add_problem(Problem(source, exc.line, "", "", "", exc.message))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        result.add_problem(Problem(source, line, "", "", "", f"YAML syntax error: {what}"))
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        result.add_problem(Problem(source, line, "", "", "", f"not valid YAML text: {exc.reason} "
                                   f"(character {exc.character!r} at offset {exc.position})"))
    except yaml.YAMLError as exc:
        result.add_problem(Problem(source, 0, "", "", "", f"YAML error: {_first_line(exc)}"))
    except RecursionError:
        result.add_problem(Problem(source, 0, "", "", "", "nested too deeply; refused"))
    return _note_empty(result, source, before, text)


def _note_empty(result: LoadResult, source: str, before: int, text: str) -> LoadResult:
    if len(result.objects) == before and not any(p.file == source for p in result.problems):
        result.add_problem(
            Problem(source, 0, "", "", "", "no objects (the file is empty or holds only comments)", "warning")
        )
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_bytes(data: bytes, source: str, result: LoadResult | None = None, *, aliases: bool = True) -> LoadResult:
    """Objects in raw bytes: refused when too large or not UTF-8 text."""
    result = result if result is not None else LoadResult()
    if len(data) > MAX_FILE_BYTES:
        result.add_problem(_too_large(source, len(data)))
        return result
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        result.add_problem(
            Problem(source, line, "", "", "", f"not UTF-8 text (invalid byte at offset {exc.start}); "
                    "manifests must be YAML or JSON text")
        )
        return result
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        result.add_problem(Problem(source, line, "", "", "", "binary data (NUL byte); manifests must be text"))
        return result
    return load_text(text, source, result, aliases=aliases)


def _too_large(source: str, size: int | None) -> Problem:
    got = f"{size / 1024 / 1024:.1f} MiB" if size is not None else "too large"
    return Problem(
        source, 0, "", "", "",
        f"file is {got}; refused (the limit is {MAX_FILE_BYTES // (1024 * 1024)} MiB per file)",
    )


def _read_limited(stream: BinaryIO) -> bytes | None:
    data = stream.read(MAX_FILE_BYTES + 1)
    return None if len(data) > MAX_FILE_BYTES else data


def manifest_files(directory: Path) -> list[Path]:
    """Manifest files under a directory (recursively), sorted, hidden entries skipped."""
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.endswith(MANIFEST_SUFFIXES) and not name.startswith("."):
                found.append(Path(root) / name)
    return sorted(found)


def load_path(path: str, result: LoadResult | None = None, *, stdin: BinaryIO | None = None) -> LoadResult:
    """Objects from a file, a directory (recursively) or stdin (`-`)."""
    result = result if result is not None else LoadResult()
    try:
        if path == STDIN:
            data = _read_limited(stdin if stdin is not None else sys.stdin.buffer)
            if data is None:
                result.add_problem(_too_large(STDIN_NAME, None))
                return result
            return load_bytes(data, STDIN_NAME, result)
        target = Path(path)
        if target.is_dir():
            files = manifest_files(target)
            if not files:
                result.add_problem(
                    Problem(path, 0, "", "", "", "no manifest files (*.yaml, *.yml, *.json) in this directory",
                            "warning")
                )
            for file in files:
                _load_file(file, str(file), result)
            return result
        if not target.exists():
            result.add_problem(Problem(path, 0, "", "", "", "no such file or directory"))
            return result
        _load_file(target, path, result)
    except OSError as exc:
        result.add_problem(Problem(path, 0, "", "", "", f"cannot read: {exc.strerror or exc}"))
    return result


def _load_file(file: Path, source: str, result: LoadResult) -> None:
    try:
        size = file.stat().st_size
        if size > MAX_FILE_BYTES:
            result.add_problem(_too_large(source, size))
            return
        with file.open("rb") as stream:
            data = _read_limited(stream)
    except OSError as exc:
        result.add_problem(Problem(source, 0, "", "", "", f"cannot read: {exc.strerror or exc}"))
        return
    if data is None:
        result.add_problem(_too_large(source, None))
        return
    load_bytes(data, source, result)


def load_paths(paths: Iterable[str], *, stdin: BinaryIO | None = None) -> LoadResult:
    """Objects from several paths, in the order given."""
    result = LoadResult()
    for path in paths:
        load_path(path, result, stdin=stdin)
    return result
