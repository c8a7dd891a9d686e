"""Reading the project file: YAML with a ``(file, line)`` mark for every key and item, and includes.

The document is composed with PyYAML's safe composer and built by hand from the node tree, so that

* every mapping key and sequence item gets a mark (``Marks``: key path → ``(file, line)``),
* a key repeated within one mapping is an error (plain PyYAML silently keeps the last one),
* booleans follow YAML 1.2 (only ``true``/``false``): ``{country: NO}`` stays the text ``'NO'``.

Problems found here (duplicate keys, bad includes) are raised together as one
:class:`~okrsync.project_problems.ProjectFileError`; YAML syntax errors as a ConfigError naming
``file:line:column`` and the parser's problem.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from okrsync.errors import ConfigError
from okrsync.project_problems import KeyPath, Marks, Problems, describe, display_path

INCLUDABLE = ("sources", "streams", "metrics", "objectives")
_SINGULAR = {"sources": "source", "streams": "stream", "metrics": "metric"}
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MAX_NODES = 200_000  # alias expansion ("billion laughs") guard


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 booleans: ``yes``/``no``/``on``/``off`` stay text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


class _Builder:
    """Turns a composed node tree into plain Python data, recording marks and duplicate keys."""

    def __init__(self, loader: _Loader, file: Path, marks: Marks, problems: Problems) -> None:
        self.loader = loader
        self.file = file
        self.marks = marks
        self.problems = problems
        self.active: set[int] = set()
        self.count = 0

    def build(self, node: Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise ConfigError(f"{display_path(self.file)}: aliases expand too far")
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node, deep=True)
        if id(node) in self.active:
            raise ConfigError(f"{self._where(node)}: a YAML alias refers to itself")
        if node.tag not in (_MAP_TAG, _SEQ_TAG):
            self.problems.add(path, f"unsupported YAML tag {node.tag!r}", at=(self.file, _line(node)))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            assert isinstance(node, MappingNode)
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        out = []
        for i, item in enumerate(node.value):
            self.marks.setdefault((*path, i), (self.file, _line(item)))
            out.append(self.build(item, (*path, i)))
        return out

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append(value_node)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problems.add(path, "a key must be plain text", at=(self.file, _line(key_node)))
                continue
            key, line = str(key_node.value), _line(key_node)
            if key in first:
                self.problems.add(
                    (*path, key), f"duplicate key {key!r} (first at line {first[key]})", at=(self.file, line)
                )
                continue
            first[key] = line
            self.marks.setdefault((*path, key), (self.file, line))
            out[key] = self.build(value_node, (*path, key))
        for merge in merges:  # `<<: *anchor` — explicit keys win, as in YAML
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                merged = self.build(source, path)
                if not isinstance(merged, dict):
                    self.problems.add(path, "'<<' must merge a mapping", at=(self.file, _line(merge)))
                    continue
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def _where(self, node: Node) -> str:
        return f"{display_path(self.file)}:{_line(node)}"


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _read(path: Path, marks: Marks, problems: Problems) -> Any:
    """The data of one YAML file (``None`` when empty); marks and duplicate keys are recorded."""
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        marks[()] = (path, 1)
        return None if node is None else _Builder(loader, path, marks, problems).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else shown
        problem = exc.problem or exc.context or "invalid YAML"
        hint = None
        if exc.context and exc.context_mark and exc.problem:
            hint = f"{exc.context} (line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        raise ConfigError(f"{where}: invalid YAML: {problem}", hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{shown}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def load_document(path: str | Path) -> tuple[dict[str, Any], Marks]:
    """The project file (with its includes merged in) as plain data, and the marks of its keys.

    Included files' ``sources``/``streams``/``metrics`` entries are added by name (a name defined
    twice is an error naming both places); their ``objectives`` are appended in include order.
    Raises :class:`~okrsync.errors.ConfigError` (a :class:`ProjectFileError` for located problems).
    """
    path = Path(os.path.abspath(path))
    if path.is_dir():
        path = path / "okrsync.yaml"
    if not path.is_file():
        raise ConfigError(
            f"no project file at {display_path(path)}",
            hint="run `okrsync init` to create one, or point to an existing okrsync.yaml",
        )
    marks = Marks()
    problems = Problems(marks)
    doc = _read(path, marks, problems)
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{display_path(path)}:1: the top level must be a mapping of sections "
            f"(version, settings, sources, streams, metrics, objectives), not {describe(doc)}"
        )
    for file in _include_files(path, doc.get("include"), problems):
        _merge_include(doc, file, marks, problems)
    problems.raise_if_any()
    return doc, marks


def _include_files(main: Path, raw: Any, problems: Problems) -> list[Path]:
    if raw is None:
        return []
    patterns: list[tuple[KeyPath, Any]]
    if isinstance(raw, list):
        patterns = [(("include", i), p) for i, p in enumerate(raw)]
    else:
        patterns = [(("include",), raw)]
    files: list[Path] = []
    for key, pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip():
            problems.add(key, f"expected a file name or glob such as metrics/*.yaml, got {describe(pattern)}")
            continue
        found = sorted(glob.glob(os.path.join(glob.escape(str(main.parent)), pattern), recursive=True))
        matched = [Path(os.path.abspath(f)) for f in found if os.path.isfile(f)]
        if not matched:
            relative_to = display_path(main.parent)
            problems.add(key, f"{pattern!r} matches no file (globs are relative to {relative_to})")
        files += [f for f in matched if f != main and f not in files]
    return files


def _merge_include(doc: dict[str, Any], file: Path, marks: Marks, problems: Problems) -> None:
    own = Marks()
    data = _read(file, own, problems)
    if data is None:
        return
    if not isinstance(data, dict):
        problems.add((), f"an included file must be a mapping of sections, not {describe(data)}", at=own[()])
        return
    for section, value in data.items():
        at = own[(section,)]
        if section not in INCLUDABLE:
            problems.add((section,), f"an included file may hold only {', '.join(INCLUDABLE)}", at=at)
            continue
        if value is None:
            continue
        marks.setdefault((section,), at)
        if section == "objectives":
            _merge_objectives(doc, value, file, own, marks, problems)
            continue
        if not isinstance(value, dict):
            problems.add((section,), f"expected a mapping of name → entry, got {describe(value)}", at=at)
            continue
        target = doc.get(section)
        if target is None:
            target = doc[section] = {}
        if not isinstance(target, dict):
            continue  # the main file's section is malformed; that is reported on its own
        for name, entry in value.items():
            if name in target:
                first = marks.locate((section, name))
                where = f"{display_path(first[0])}:{first[1]}" if first else "the main file"
                problems.add(
                    (section, name),
                    f"{_SINGULAR[section]} {name!r} is already defined at {where} "
                    "(names must be unique across the project file and its includes)",
                    at=own[(section, name)],
                )
                continue
            target[name] = entry
            _copy_marks(own, marks, (section, name), (section, name))


def _merge_objectives(
    doc: dict[str, Any], value: Any, file: Path, own: Marks, marks: Marks, problems: Problems
) -> None:
    if not isinstance(value, list):
        at = own[("objectives",)]
        problems.add(("objectives",), f"expected a list of objectives, got {describe(value)}", at=at)
        return
    target = doc.get("objectives")
    if target is None:
        target = doc["objectives"] = []
    if not isinstance(target, list):
        return
    for i, item in enumerate(value):
        _copy_marks(own, marks, ("objectives", i), ("objectives", len(target)))
        target.append(item)


def _copy_marks(src: Marks, dst: Marks, old: KeyPath, new: KeyPath) -> None:
    n = len(old)
    for key, mark in src.items():
        if key[:n] == old:
            dst[new + key[n:]] = mark
