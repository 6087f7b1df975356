"""Decoding YAML request bodies with the manifest loader's composer (rollouts.spec.loader): libyaml's events
built into values iteratively, so a body's nesting (over 200 levels), size and aliases are refused quickly
instead of parsed by PyYAML's pure-Python loader, which took seconds on a 34 KB list, blocking the server."""

from __future__ import annotations

from typing import Any

from rollouts.cluster.apiserver.errors import bad_request
from rollouts.spec.loader import load_bytes

SOURCE = "the request body"


def decode_yaml(raw: bytes) -> Any:
    """The one YAML document of a request body (None for an empty one). Aliases (*name) are refused: they
    are how a small body becomes an enormous object, and no Kubernetes client sends them."""
    loaded = load_bytes(raw, SOURCE, aliases=False)
    errors = [p for p in loaded.problems if p.is_error]
    if errors:
        where = f" (line {errors[0].line})" if errors[0].line else ""
        raise bad_request(f"the request body is not valid YAML{where}: {errors[0].message}")
    if len(loaded.objects) > 1:
        raise bad_request(f"the request body holds {len(loaded.objects)} YAML documents; send one")
    return loaded.objects[0].data if loaded.objects else None
