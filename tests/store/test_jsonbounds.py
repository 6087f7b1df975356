"""Bounds on untrusted JSON: nesting of a text before it is decoded, and measuring decoded values."""

from __future__ import annotations

import time
from typing import Any

import pytest

from rollouts.jsonbounds import TooLarge, check_text_depth, measure, text_depth

DEPTHS = [
    ("flat", '{"a": 1}', 1),
    ("nested", '{"a": [[{"b": []}]]}', 5),
    ("brackets-in-strings", '{"a": "[[[[{{{{", "b": ["]]]]"]}', 2),
    ("escaped-quote", r'{"a": "x\"[[[[[", "b": [1]}', 2),
    ("deep", "[" * 5000 + "]" * 5000, 101),  # counting stops just past the limit
]


@pytest.mark.parametrize(("text", "depth"), [c[1:] for c in DEPTHS], ids=[c[0] for c in DEPTHS])
def test_text_depth_counts_brackets_outside_strings(text: str, depth: int) -> None:
    assert text_depth(text, 100) == depth


def test_text_depth_of_a_long_string_is_quick() -> None:
    text = '{"spec": "' + "x" * 3_000_000 + '"}'
    start = time.monotonic()
    check_text_depth(text, "--patch")
    assert time.monotonic() - start < 0.5


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(("value", "limits", "message"), [
    (_deep(100_000), {"max_depth": 200}, "v is nested deeper than 200 levels"),
    (list(range(10)), {"max_nodes": 5}, "v would hold more than 5 values"),
    (["x" * 2_000_000], {"max_bytes": 1024 * 1024}, "v would be larger than 1 MiB"),
], ids=["depth", "nodes", "bytes"])
def test_measure_refuses_at_the_first_bound_crossed(value: Any, limits: dict[str, int], message: str) -> None:
    with pytest.raises(TooLarge, match=message):
        measure(value, "v", **limits)


def test_measure_counts_nodes_and_bytes() -> None:
    assert measure({"a": [1, "xy"]}, "v") == (4, 2 + 5 + 2 + 8 + 5)
