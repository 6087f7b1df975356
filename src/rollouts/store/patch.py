"""JSON merge patch (RFC 7386) and JSON patch (RFC 6902) over plain JSON values; pure functions.

Both return a new document and leave their inputs untouched. A JSON patch is all-or-nothing: the first
failing operation raises `Invalid` and nothing is applied. Patches are untrusted input: a patch nested too
deeply, or `copy` operations that keep doubling the document, are refused with `Invalid` before the work
(or the memory) grows past the bounds of `rollouts.jsonbounds`.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rollouts.jsonbounds import MAX_VALUE_DEPTH, TooLarge, measure
from rollouts.store.protocol import Invalid

_MISSING = object()
# What a patch brings itself is bounded by whoever read it (the CLI, the API server); only its depth matters
# here, and what `copy` multiplies.
_UNBOUNDED = sys.maxsize
# What all `copy` operations of one patch may add together. A legitimate patch copies a field or two; each
# copied value is also deep-copied, so this bounds the time as well as the memory.
MAX_COPIED_NODES = 50_000
MAX_COPIED_BYTES = 1024 * 1024


def _bounded(value: Any, what: str, **limits: int) -> tuple[int, int]:
    try:
        return measure(value, what, **limits)
    except TooLarge as exc:
        raise Invalid(str(exc)) from None


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, null deletes, anything else replaces."""
    # The merge recurses as deep as the patch: refuse a deep one before it can exhaust the stack. The result
    # is no deeper and no larger than the target and the patch together.
    _bounded(patch, "the merge patch", max_depth=MAX_VALUE_DEPTH, max_nodes=_UNBOUNDED, max_bytes=_UNBOUNDED)
    return _merge(target, patch)


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python's, true is not 1 and 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def parse_pointer(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into unescaped reference tokens ("" is the whole document)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise Invalid(f'JSON pointer "{pointer}" must be empty or start with "/"')
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _index(token: str, length: int, pointer: str, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise Invalid(f'JSON pointer "{pointer}": "{token}" is not a valid array index')
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise Invalid(f'JSON pointer "{pointer}": index {index} is out of range (array length {length})')
    return index


def _resolve(doc: Any, tokens: Sequence[str], pointer: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise Invalid(f'JSON pointer "{pointer}" does not exist')
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(token, len(node), pointer, allow_end=False)]
        else:
            raise Invalid(f'JSON pointer "{pointer}" does not exist')
    return node


def _add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), pointer, allow_end=True), value)
    else:
        raise Invalid(f'JSON pointer "{pointer}": parent is not an object or array')
    return doc


def _remove(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    if not tokens:
        raise Invalid("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise Invalid(f'JSON pointer "{pointer}" does not exist')
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(last, len(parent), pointer, allow_end=False))
    raise Invalid(f'JSON pointer "{pointer}" does not exist')


def _member(op: Mapping[str, Any], key: str, position: int) -> Any:
    if key not in op:
        raise Invalid(f'json patch operation {position} ({op.get("op")}) is missing "{key}"')
    return op[key]


def json_patch(doc: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """Apply an RFC 6902 patch (add, remove, replace, move, copy, test) to a copy of `doc`."""
    if not isinstance(operations, Sequence) or isinstance(operations, str | bytes):
        raise Invalid("a json patch must be a list of operations")
    _bounded(operations, "the json patch", max_depth=MAX_VALUE_DEPTH + 2, max_nodes=_UNBOUNDED,
             max_bytes=_UNBOUNDED)
    result = copy.deepcopy(doc)
    # `copy` is the one operation that multiplies what the patch brings: a few dozen of them can double the
    # document each time. What all copies add together is measured before each copy is made.
    copied_nodes = copied_bytes = 0
    for position, op in enumerate(operations):
        if not isinstance(op, Mapping):
            raise Invalid(f"json patch operation {position} is not an object")
        name = op.get("op")
        path = _member(op, "path", position)
        if not isinstance(path, str):
            raise Invalid(f'json patch operation {position} ({name}): "path" must be a string')
        tokens = parse_pointer(path)
        if name == "add":
            result = _add(result, tokens, copy.deepcopy(_member(op, "value", position)), path)
        elif name == "remove":
            result, _ = _remove(result, tokens, path)
        elif name == "replace":
            value = copy.deepcopy(_member(op, "value", position))
            _resolve(result, tokens, path)
            result, _ = _remove(result, tokens, path) if tokens else (result, None)
            result = _add(result, tokens, value, path)
        elif name in ("move", "copy"):
            source = _member(op, "from", position)
            if not isinstance(source, str):
                raise Invalid(f'json patch operation {position} ({name}): "from" must be a string')
            from_tokens = parse_pointer(source)
            if name == "move":
                if from_tokens == tokens:
                    continue
                if tokens[: len(from_tokens)] == from_tokens:
                    raise Invalid(
                        f'json patch operation {position} (move): cannot move "{source}" into itself'
                    )
                result, value = _remove(result, from_tokens, source)
            else:
                original = _resolve(result, from_tokens, source)
                try:
                    nodes, size = measure(original, "copied", max_nodes=MAX_COPIED_NODES - copied_nodes,
                                          max_bytes=MAX_COPIED_BYTES - copied_bytes)
                except TooLarge:
                    raise Invalid(
                        f'json patch operation {position} (copy of "{source}"): the copies would add more than '
                        f"{MAX_COPIED_NODES} values or {MAX_COPIED_BYTES // (1024 * 1024)} MiB to the document; "
                        "refused"
                    ) from None
                copied_nodes, copied_bytes = copied_nodes + nodes, copied_bytes + size
                value = copy.deepcopy(original)
            result = _add(result, tokens, value, path)
        elif name == "test":
            expected = _member(op, "value", position)
            if not json_equal(_resolve(result, tokens, path), expected):
                raise Invalid(f'json patch operation {position} (test): value at "{path}" differs')
        else:
            raise Invalid(
                f'json patch operation {position}: op "{name}" is not one of add, remove, replace, move, '
                f"copy, test"
            )
    # Adds and moves can nest the document one level deeper per operation.
    _bounded(result, "the patched document")
    return result
