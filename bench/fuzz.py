"""Hostile-input fuzzer, hypothesis as the generator: conditions through the condition language, manifests
through `rollouts lint`, `rollouts apply` and raw HTTP writes to the API server, hostile patches through
`rollouts patch`; then every object stored meanwhile through the operator's routing and one reconcile.

Families and what "clean" means (fuzzlib has the generators):
- expression: grammar-driven sources (fuzzlib.expressions follows expr.lark), random unicode and bytes,
  mutations of the seeds' conditions; each ends in a value or an ExprError;
- lint / apply: mutated Argo examples (/work/shared/argo-examples, or --examples) and infra/rollouts, and
  objects from scratch (wrong types, huge numbers, deep nesting, unicode, missing fields, duplicate keys,
  YAML anchors and bombs, damaged text); exit 0, or exit 1 with a problem line, never a traceback;
- http: POST/PUT/PATCH of those to a local API-only cluster; 2xx or 4xx, never 5xx;
- patch: the hostile patch list (doubling copies, deep JSON, bad labels...) through the store and the CLI;
- operator: afterwards, no stored object makes the operator's code raise, fail a reconcile, or is one its
  models cannot read.
Cases run in a worker process killed and restarted when one overruns --timeout (a hang), so one stuck case
cannot stall the run. Seeded: a run is reproducible. The issue's counts:

    python bench/fuzz.py --seed 7 --expressions 100000 --manifests 10000 --patches 84

(each family can run on its own: --lint/--apply/--http N override --manifests; --budget stops generating
after that many seconds and still runs the operator check; --progress prints the tallies periodically.)
Prints, per family, the cases, clean refusals, accepted, crashes (an exception escaping, an "internal
error" line, a 5xx), hangs, cases slower than 1 s and the slowest. Exit 1 on any crash, hang or wedge.
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import random
import re
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml
from fuzzlib.choices import ByteRandom
from fuzzlib.expressions import expression_sources, results
from fuzzlib.requests import (
    COLLECTIONS,
    NAMESPACES,
    PATCH_TYPES,
    QUERIES,
    SUBRESOURCES,
    WRITE_TYPES,
    Request,
    collection,
    judge,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
ARGO_EXAMPLES = Path("/work/shared/argo-examples")
INFRA = ROOT / "infra" / "rollouts"
SLOW_SECONDS = 1.0

Case = tuple[str, Any]  # (family, payload)


# ---------------------------------------------------------------- seeds


def seed_documents(folders: list[Path]) -> list[dict[str, Any]]:
    """Every mapping document of the YAML files in the folders."""
    docs: list[dict[str, Any]] = []
    for folder in folders:
        for path in sorted(folder.glob("*.y*ml")):
            try:
                docs.extend(d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict))
            except yaml.YAMLError:
                continue
    return docs


def seed_conditions(docs: list[dict[str, Any]]) -> list[str]:
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("successCondition", "failureCondition") and isinstance(item, str):
                    found.add(item)
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for doc in docs:
        walk(doc)
    extra = [
        "result[0] >= 0.995", "all(result, {# > 0.5})", "len(result) == 0 || result[0] < 1",
        "result.status == 'ok' && result.count > 3", "result matches '^a+$'", "sum(result) / len(result) > 2",
        "filter(result, # > 1) | len() > 0", "result ?? 0 > 1", "1..5 | map(# * 2) | sum() == 30",
        "result['a'].b?.c == nil", "not (result in [1, 2, 3])", "float(result) ** 2 > 1e3",
    ]
    return sorted(found) + extra


# ---------------------------------------------------------------- hostile values


def deep_list(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE_VALUES: list[Callable[[], Any]] = [
    lambda: [], lambda: {}, lambda: None, lambda: True, lambda: False, lambda: 0, lambda: -1,
    lambda: 2**31, lambda: 2**63, lambda: 10**40, lambda: 1e308, lambda: float("inf"), lambda: float("nan"),
    lambda: -0.5, lambda: "", lambda: "x" * 5000, lambda: "a\x00b", lambda: "\u202eevil", lambda: "9999999999h",
    lambda: "-5s", lambda: "1e400", lambda: "{{args.x}}", lambda: "{{", lambda: "\t", lambda: "🙂",
    lambda: deep_list(150), lambda: list(range(5000)), lambda: {"a": {"b": {"c": []}}}, lambda: [None],
    lambda: [[]], lambda: {"": ""}, lambda: {"kind": []}, lambda: "0x1F", lambda: "null", lambda: "~",
    lambda: "名前-ü", lambda: "\U0001F600" * 300, lambda: "\ud800", lambda: {"\u0000": 1}, lambda: {"é/ключ": "v"},
    lambda: -(2**63) - 1, lambda: 2**64, lambda: 10**400, lambda: 5e-324, lambda: "1" * 400, lambda: "+Inf",
    lambda: "\u200b\ufeff", lambda: {"a": deep_list(60)}, lambda: [{"name": "x"}] * 2,
]

HOT_KEYS = ["kind", "apiVersion", "metadata", "spec", "name", "namespace", "labels", "steps", "metrics",
            "strategy", "canary", "blueGreen", "template", "containers", "image", "provider", "args",
            "successCondition", "selector", "matchLabels", "replicas", "setWeight", "pause", "duration",
            "interval", "count", "templates", "trafficRouting", "nginx", "ports", "env", "value"]


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    stack: list[tuple[Any, tuple[Any, ...]]] = [(value, prefix)]
    while stack:
        node, path = stack.pop()
        yield path
        if isinstance(node, dict):
            stack.extend((item, (*path, key)) for key, item in node.items())
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    node = doc
    for part in path[:-1]:
        node = node[part]
    return node


def mutate_object(rng: random.Random, doc: dict[str, Any]) -> Any:
    """One to three structural mutations of a copy of `doc`."""
    out: Any = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(out) if p]
        if not paths:
            return rng.choice(HOSTILE_VALUES)()
        hot = [p for p in paths if isinstance(p[-1], str) and p[-1] in HOT_KEYS]
        path = rng.choice(hot if hot and rng.random() < 0.6 else paths)
        parent = _parent(out, path)
        action = rng.random()
        if action < 0.55:
            parent[path[-1]] = rng.choice(HOSTILE_VALUES)()
        elif action < 0.7:
            del parent[path[-1]]
        elif action < 0.8 and isinstance(parent, dict):
            parent[rng.choice(HOT_KEYS + ["unknownField", "x-y", "<<"])] = rng.choice(HOSTILE_VALUES)()
        elif action < 0.9:
            parent[path[-1]] = [parent[path[-1]]] if rng.random() < 0.5 else {"wrapped": parent[path[-1]]}
        else:
            other = _parent(out, rng.choice(paths) + ("x",))
            parent[path[-1]] = copy.deepcopy(other)
    return out


def _dump(rng: random.Random, docs: list[Any]) -> str:
    if rng.random() < 0.25 and len(docs) == 1:
        return json.dumps(docs[0], default=str, allow_nan=True)
    try:
        return yaml.safe_dump_all(docs, allow_unicode=rng.random() < 0.5, sort_keys=False, width=10**6)
    except (yaml.YAMLError, RecursionError, ValueError):
        return json.dumps(docs, default=str)


def alias_bomb(rng: random.Random) -> str:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\ndata:\n"
    text += f'  a: &a "{"x" * rng.choice([3, 500, 60_000])}"\n'
    previous = "a"
    for level in range(1, rng.randint(3, 9)):
        text += f"  l{level}: &l{level} [" + ",".join([f"*{previous}"] * rng.randint(2, 10)) + "]\n"
        previous = f"l{level}"
    return text


DUPLICATE_VALUES = ["Service", "[]", "{}", "~", "-1", "99999999999999999999", '"é"', "*a", "&b x", "{name: y}"]


def duplicate_key(rng: random.Random, lines: list[str]) -> str:
    """A mapping key written twice (YAML says duplicates are errors; PyYAML keeps the last)."""
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*-?\s*[A-Za-z][\w.-]*:", line)]
    if not keyed:
        return "".join(lines)
    index = rng.choice(keyed)
    match = re.match(r"^(\s*)(-\s*)?([A-Za-z][\w.-]*):", lines[index])
    assert match is not None
    indent = match.group(1) + (" " * len(match.group(2)) if match.group(2) else "")
    lines.insert(index + 1, f"{indent}{match.group(3)}: {rng.choice(DUPLICATE_VALUES)}\n")
    return "".join(lines)


def mutate_text(rng: random.Random, text: str) -> bytes:
    """Text-level damage: truncation, lost or repeated lines, stray bytes, deep nesting, alias bombs."""
    action = rng.random()
    lines = text.splitlines(keepends=True) or [""]
    if action < 0.15:
        return text[: rng.randint(0, len(text))].encode()
    if action < 0.3:
        del lines[rng.randrange(len(lines))]
        return "".join(lines).encode()
    if action < 0.4:
        index = rng.randrange(len(lines))
        lines.insert(index, lines[index])
        return "".join(lines).encode()
    if action < 0.5:
        index = rng.randrange(len(lines))
        lines[index] = " " * rng.randint(0, 7) + lines[index].lstrip()
        return "".join(lines).encode()
    if action < 0.6:
        data = bytearray(text.encode())
        for _ in range(rng.randint(1, 5)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if action < 0.7:
        stray = rng.choice(["*a", "&a", "!!python/object:os.system", "!!binary", "? [a]\n: b", "<<: *x", "---",
                            "{", "[", "- - -", ": :", "%YAML 1.1", "!custom", "'", '"', "|", ">", "@", "`"])
        lines.insert(rng.randrange(len(lines)), stray + "\n")
        return "".join(lines).encode()
    if action < 0.8:
        depth = rng.choice([50, 199, 201, 1000, 20_000])
        opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
        return (text + "\nzz: " + opener * depth + closer * depth * rng.randint(0, 1) + "\n").encode()
    if action < 0.85:
        return alias_bomb(rng).encode()
    if action < 0.93:
        return duplicate_key(rng, lines).encode()
    return (text + "\n---\n" + rng.choice(["- a\n", "hello\n", "~\n", "123\n", "kind: []\n", "[]\n"])).encode()


RANDOM_KINDS = [("argoproj.io/v1alpha1", "Rollout"), ("argoproj.io/v1alpha1", "AnalysisTemplate"),
                ("argoproj.io/v1alpha1", "ClusterAnalysisTemplate"), ("argoproj.io/v1alpha1", "AnalysisRun"),
                ("argoproj.io/v1alpha1", "Experiment"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"),
                ("v1", "ConfigMap"), ("v1", "Secret"), ("apps/v1", "Deployment"), ("v1", "Pod"),
                ("argoproj.io/v1", "Rollout"), ("example.com/v1", "Frob"), ("v1", "")]
NAMES = ["fz", "fz-1", "a" * 63, "a" * 64, "UPPER", "-x", "x-", "a.b", "a/b", "", "名前", "x\x00y", "1"]


def random_manifest(rng: random.Random) -> dict[str, Any]:
    """An object from scratch: a known (or unknown) kind with a random tree of its fields' names."""
    def tree(depth: int) -> Any:
        if depth <= 0 or rng.random() < 0.3:
            return rng.choice(HOSTILE_VALUES)()
        if rng.random() < 0.7:
            return {rng.choice(HOT_KEYS): tree(depth - 1) for _ in range(rng.randint(0, 4))}
        return [tree(depth - 1) for _ in range(rng.randint(0, 3))]

    api_version, kind = rng.choice(RANDOM_KINDS)
    meta: Any = {"name": rng.choice(NAMES)} if rng.random() < 0.9 else tree(2)
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": tree(5)}


def _rename(rng: random.Random, obj: Any) -> None:
    """A few dozen names per seed object, so accepted objects accumulate for the operator check afterwards
    instead of only replacing one another."""
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("name"), str):
        meta["name"] = f"{meta['name']}-{rng.randrange(40)}"


def manifest_document(rng: random.Random, docs: list[dict[str, Any]]) -> tuple[list[Any], bytes]:
    """(the objects before serialising, the file's bytes): mutated Argo examples, or an object from scratch,
    serialised as YAML or JSON, sometimes damaged as text."""
    choice = rng.random()
    if choice < 0.1:
        picked: list[Any] = [random_manifest(rng)]
    elif choice < 0.3:  # examples as they are (renamed below): what is accepted must also be stored safely
        picked = [copy.deepcopy(rng.choice(docs)) for _ in range(rng.choice([1, 1, 2]))]
    else:
        picked = [mutate_object(rng, rng.choice(docs)) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
    if rng.random() < 0.4 or choice < 0.3:
        for obj in picked:
            _rename(rng, obj)
    text = _dump(rng, picked)
    data = mutate_text(rng, text) if rng.random() < 0.35 else text.encode()
    return picked, data


def http_request(rng: random.Random, docs: list[dict[str, Any]]) -> Request:
    """A raw write to the API server carrying a fuzzed object: POST to a collection, PUT to the object,
    PATCH (merge, JSON, strategic, apply) with a fuzzed body; sometimes to a mismatched kind or namespace."""
    picked, data = manifest_document(rng, docs)
    first = picked[0] if picked and isinstance(picked[0], dict) else {}
    kind = first.get("kind") if isinstance(first.get("kind"), str) else "Rollout"
    if rng.random() < 0.1:
        kind = rng.choice(sorted(COLLECTIONS))
    meta = first.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) and isinstance(meta.get("name"), str) else rng.choice(NAMES)
    namespace = rng.choice(NAMESPACES)
    if isinstance(meta, dict) and isinstance(meta.get("namespace"), str) and rng.random() < 0.5:
        namespace = meta["namespace"]
    namespace = urllib.parse.quote(namespace, safe="", errors="backslashreplace")  # a URL an HTTP client sends
    method = rng.choice(["POST", "POST", "POST", "PUT", "PATCH", "PATCH"])
    if rng.random() < 0.5:
        body, content_type = json.dumps(first, default=str).encode(), "application/json"
    else:
        body, content_type = data, "application/yaml" if rng.random() < 0.7 else rng.choice(WRITE_TYPES)
    query = rng.choice(QUERIES)
    if method == "POST":
        return Request(method, collection(kind, namespace) + query, content_type, body)
    path = collection(kind, namespace) + "/" + urllib.parse.quote(name, safe="", errors="backslashreplace") + rng.choice(SUBRESOURCES)
    if method == "PATCH":
        content_type = rng.choice(PATCH_TYPES)
        if "json-patch" in content_type and rng.random() < 0.7:
            body = random_patch(rng)[1].encode() if rng.random() < 0.5 else rng.choice(HOSTILE_PATCHES)(rng)[1].encode()
    return Request(method, path + query, content_type, body)


# ---------------------------------------------------------------- expressions

EXPR_TOKENS = ["(", ")", "[", "]", "{", "}", ".", "?.", "??", "!", "not", "&&", "||", "and", "or", "==", "!=",
               "<", ">=", "+", "-", "*", "/", "%", "**", "^", "..", "|", "?", ":", ",", "#", "#index", "$env",
               "result", "nil", "true", "1e309", "99999999999999999999999", "0x", "'a'", '"b"', "'\\u0000'",
               "matches", "in", "contains", "startsWith", "len(", "all(", "map(", "filter(", "reduce(", "let",
               "int(", "float(", "string(", "max(", "abs(", "isNaN(", "now()", "duration('1h')", "date('x')",
               "repeat('a', 100000)", "'(a|a)+$'", "split(", "join(", "toJSON(", "fromJSON('[[[['", "keys(",
               "sortBy(", "groupBy(", "1..1000000", "result[-1]", "result[1:2]", "toBase64(", "upper("]


def expr_results(rng: random.Random) -> Any:
    return rng.choice([
        None, [], [0.99], [1, 2, 3], [float("nan")], {"a": 1, "decided": True}, "It worked!", 0.5, True,
        deep_list(rng.choice([10, 50, 90])), list(range(2000)), [{"a": {"b": None}}], [float("inf")], "a" * 30,
        {"regression": None}, [[1, 2], [3]],
    ])


def mutate_expression(rng: random.Random, source: str) -> str:
    action = rng.random()
    if action < 0.4:
        tokens = source.split(" ")
        for _ in range(rng.randint(1, 4)):
            tokens.insert(rng.randint(0, len(tokens)), rng.choice(EXPR_TOKENS))
        return " ".join(tokens)
    if action < 0.55:
        start = rng.randrange(len(source) + 1)
        return source[:start] + source[start + rng.randint(1, 8):]
    if action < 0.65:
        depth = rng.choice([10, 100, 500, 5000])
        return "(" * depth + source + ")" * depth
    if action < 0.75:
        return " && ".join([source] * rng.choice([2, 50, 500]))
    if action < 0.85:
        return source.replace("result", rng.choice(["result[0]", "result.x", "result?.y", "-result", "!result"]))
    chars = list(source)
    for _ in range(rng.randint(1, 4)):
        if chars:
            chars[rng.randrange(len(chars))] = chr(rng.choice([0, 7, 10, 34, 39, 92, 0x202E, 0xFFFF, 40, 91]))
    return "".join(chars)


def expression_case(rng: random.Random, conditions: list[str]) -> tuple[str, Any]:
    """A mutation (or two) of a condition found in the seeds, with a provider-like result."""
    source = mutate_expression(rng, rng.choice(conditions))
    if rng.random() < 0.3:
        source = mutate_expression(rng, source)
    return source, expr_results(rng)


# ---------------------------------------------------------------- patches

PATCH_TARGETS = ("Rollout", "Service", "AnalysisTemplate", "Ingress")


def _doubling_copies(count: int) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/spec/x", "value": ["a" * 1000]}]
    return ops + [{"op": "copy", "from": "/spec/x", "path": "/spec/x/-"} for _ in range(count)]


def _deep_json(depth: int) -> str:
    return '{"spec":' + '{"a":' * depth + "1" + "}" * depth + "}"


HOSTILE_PATCHES: list[Callable[[random.Random], tuple[str, str]]] = [
    lambda r: ("merge", json.dumps({"metadata": {"labels": {r.choice(["bad key!", "-x", "a/b/c", "x" * 70,
                                                                       "/n", "ok.io/", ""]): "v"}}})),
    lambda r: ("merge", json.dumps({"metadata": {"labels": {"ok": r.choice(["bad value!", "x" * 70, "-v"])}}})),
    lambda r: ("merge", json.dumps({"metadata": {"ownerReferences": [
        {"apiVersion": "v1", "kind": "Service", "name": "svc", "uid": "u1"}]}})),
    lambda r: ("merge", json.dumps({"metadata": {"ownerReferences": [r.choice([{}, [], "x", {"kind": 1}])]}})),
    lambda r: ("json", json.dumps([{"op": "replace", "path": "/spec/template/spec/containers/0/image",
                                    "value": "img\x00:1"}])),
    lambda r: ("json", json.dumps([{"op": "add", "path": "/spec/template/spec/containers/0/env",
                                    "value": [{"name": "A", "value": "x\x00y"}]}])),
    lambda r: ("merge", json.dumps({"metadata": {"namespace": r.choice(["other", "", "kube-system", None, 5])}})),
    lambda r: ("merge", json.dumps({"metadata": {"name": "other"}})),
    lambda r: ("merge", json.dumps({"kind": r.choice(["Service", [], None])})),
    lambda r: ("merge", _deep_json(r.choice([150, 1000, 100_000]))),
    lambda r: ("json", json.dumps(_doubling_copies(r.choice([10, 30, 64])))),
    lambda r: ("json", json.dumps([{"op": "copy", "from": "", "path": "/spec/self"}] * r.choice([5, 40]))),
    lambda r: ("json", json.dumps([{"op": "copy", "from": "/spec", "path": "/spec/a"}] * r.choice([3, 200]))),
    lambda r: ("json", json.dumps([{"op": "move", "from": "/spec", "path": "/spec/a"}])),
    lambda r: ("json", json.dumps([{"op": r.choice(["add", "replace", "test", "x"]),
                                    "path": r.choice(["", "/", "//", "/spec/-", "/spec/0", "~", "/~2"]),
                                    "value": None}])),
    lambda r: ("json", "[" * 100_000 + "]" * 100_000),
    lambda r: ("merge", '{"spec": ' + '"' + "x" * 3_000_000 + '"}'),
    lambda r: ("merge", json.dumps({"metadata": {"annotations": {"k" * 300: "v"}}})),
    lambda r: ("json", json.dumps([{"op": "replace", "path": "/metadata", "value": r.choice([None, [], 1])}])),
    lambda r: ("json", json.dumps([{"op": "remove", "path": "/metadata/name"}])),
    lambda r: ("merge", json.dumps({"spec": {"replicas": r.choice([2**40, -3, "3", 1.5, None])}})),
]


def random_patch(rng: random.Random) -> tuple[str, str]:
    """A merge patch setting a random hot field somewhere to a hostile value."""
    patch: Any = rng.choice(HOSTILE_VALUES)()
    for _ in range(rng.randint(1, 5)):
        patch = {rng.choice(HOT_KEYS): patch}
    if rng.random() < 0.5:
        path = "/" + "/".join(rng.choice(HOT_KEYS + ["0", "-"]) for _ in range(rng.randint(1, 4)))
        return "json", json.dumps([{"op": rng.choice(["add", "replace", "copy", "move", "remove", "test"]),
                                    "path": path, "from": "/spec", "value": rng.choice(HOSTILE_VALUES)()}],
                                  default=str)
    return "merge", json.dumps({"spec": patch}, default=str)


def patch_cases(rng: random.Random, count: int) -> Iterator[Case]:
    for index in range(count):
        if index < len(HOSTILE_PATCHES):
            patch_type, text = HOSTILE_PATCHES[index](rng)  # every hostile shape at least once
        elif rng.random() < 0.5:
            patch_type, text = rng.choice(HOSTILE_PATCHES)(rng)
        else:
            patch_type, text = random_patch(rng)
        yield "patch", (rng.choice(PATCH_TARGETS), patch_type, text)


# ---------------------------------------------------------------- hypothesis as the generator

FAMILIES = ("expression", "lint", "apply", "http", "patch")


def _weighted(branches: list[tuple[int, st.SearchStrategy[Any]]]) -> st.SearchStrategy[Any]:
    table = [strategy for share, strategy in branches for _ in range(share)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


def strategies(docs: list[dict[str, Any]], conditions: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    """The payload strategy of each hypothesis-driven family. Each input is read from one drawn byte string
    (fuzzlib.choices), so the mutators above, written against random.Random, are driven by hypothesis."""
    def seeded(make: Callable[[random.Random], Any], size: int = 256) -> st.SearchStrategy[Any]:
        return st.binary(max_size=size).map(lambda data: make(ByteRandom(data)))

    manifest = seeded(lambda rng: manifest_document(rng, docs)[1])
    return {
        "expression": _weighted([(85, st.tuples(expression_sources(), results())),
                                 (15, seeded(lambda rng: expression_case(rng, conditions), 64))]),
        "lint": manifest,
        "apply": manifest,
        "http": seeded(lambda rng: http_request(rng, docs)),
    }


def drive(strategy: st.SearchStrategy[Any], count: int, seed: int, consume: Callable[[Any], None],
          chunk: int = 500, deadline: float | None = None) -> None:
    """Feed `count` inputs of `strategy` to `consume`, generated by hypothesis from `seed` (reproducible),
    in chunks of runs so that hypothesis' record of what it tried stays small over 100,000 inputs. Past
    `deadline` (time.monotonic()) nothing more is fed."""
    fed = 0
    for index in range(count):  # each round feeds at least one input, normally `chunk`
        if fed >= count or (deadline is not None and time.monotonic() > deadline):
            return
        wanted = min(chunk, count - fed)

        @hypothesis_seed(seed * 1_000_003 + index)
        @settings(max_examples=wanted, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), derandomize=False)
        @given(strategy)
        def one(payload: Any) -> None:
            nonlocal fed
            if fed < count and (deadline is None or time.monotonic() <= deadline):
                fed += 1
                consume(payload)

        one()


# ---------------------------------------------------------------- the worker


@dataclass
class Outcome:
    status: str  # "problem" (a clean refusal), "pass" (accepted), "traceback" (a crash)
    detail: str = ""


class Worker:
    """Runs cases in this (child) process: a temporary home served API-only from a thread, seeded with the
    example objects (the targets of patches)."""

    def __init__(self, seeds: list[dict[str, Any]]) -> None:
        from rollouts.cluster.store import SQLiteStore

        self.home = Path(tempfile.mkdtemp(prefix="rollouts-fuzz-"))
        self.store = SQLiteStore(self.home / "state.db")
        self.targets: dict[str, str] = {}
        self._seed_store(seeds)
        self.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fuzz"}})
        _serve_api_only(self.home)
        self.http = self._client()
        self.case_file = self.home / "case.yaml"
        self.command: Any = None

    def _client(self) -> Any:
        import ssl

        import httpx

        from rollouts.cluster.apiserver.kubeconfig import api_token
        from rollouts.cluster.apiserver.server import read_state
        from rollouts.cluster.apiserver.tls import CERT_FILE

        state = read_state(self.home)
        assert state is not None
        return httpx.Client(base_url=state.url, headers={"Authorization": f"Bearer {api_token(self.home)}"},
                            verify=ssl.create_default_context(cafile=str(self.home / CERT_FILE)), timeout=30)

    def _seed_store(self, seeds: list[dict[str, Any]]) -> None:
        from rollouts.spec.kinds import KINDS
        from rollouts.spec.loader import LoadedObject
        from rollouts.spec.validation import validate_objects

        for checked in validate_objects([LoadedObject(doc, "seed", 0) for doc in seeds]):
            data = checked.obj.data
            kind = checked.obj.kind
            if not checked.ok or (checked.obj.api_version, kind) not in KINDS or kind in self.targets:
                continue
            obj = {k: v for k, v in data.items() if k != "status"}
            obj["metadata"] = {**obj["metadata"], "namespace": "default"}
            try:
                self.store.create(obj)
            except Exception:  # noqa: BLE001 - a seed the store refuses is simply not a target
                continue
            self.targets[kind] = checked.obj.name

    def run(self, case: Case) -> Outcome:
        family, payload = case
        try:
            if family == "expression":
                return self.expression(*payload)
            if family == "lint":
                return self.lint(payload)
            if family == "apply":
                return self.apply(payload)
            if family == "http":
                return self.send(payload)
            return self.patch(*payload)
        except BaseException as exc:  # noqa: BLE001 - that is what the fuzzer counts
            if isinstance(exc, KeyboardInterrupt):
                raise
            return Outcome("traceback", "".join(traceback.format_exception(exc))[-1500:])

    def expression(self, source: str, result: Any) -> Outcome:
        from rollouts.analysis.expr import ExprError, evaluate_condition

        try:
            evaluate_condition(source, result)
        except ExprError:
            return Outcome("problem")
        return Outcome("pass")

    def _cli(self, args: list[str]) -> tuple[int, str, BaseException | None]:
        import typer.main
        import typer.testing

        from rollouts.cli import commands  # noqa: F401 - registers the verbs
        from rollouts.cli.main import app

        if self.command is None:
            # typer rebuilds the click command from every verb's signature on each invoke (~0.4 s, most of a
            # case): build it once, as the `rollouts` process does once per run.
            self.command = typer.main.get_command(app)
            typer.testing._get_command = lambda _app: self.command  # type: ignore[attr-defined]
        result = typer.testing.CliRunner().invoke(app, args)
        failure = result.exception if not isinstance(result.exception, SystemExit) else None
        return result.exit_code, result.output, failure

    def _verdict(self, verb: str, code: int, output: str, failure: BaseException | None) -> Outcome:
        if failure is not None:
            return Outcome("traceback", "".join(traceback.format_exception(failure))[-1500:])
        if "Traceback" in output or "internal error" in output:
            return Outcome("traceback", output[-1500:])
        if code == 0:
            return Outcome("pass")
        if code == 1 and output.strip():
            return Outcome("problem", output.strip().splitlines()[-1][:300])
        return Outcome("traceback", f"`rollouts {verb}` exited {code} with output {output[-500:]!r}")

    def lint(self, data: bytes) -> Outcome:
        """`rollouts lint -f FILE`: exit 0, or exit 1 with a problem line. Gate checks run against a closed
        port, so they are tried on every template without waiting on addresses from the manifest."""
        self.case_file.write_bytes(data)
        code, output, failure = self._cli(["lint", "-f", str(self.case_file),
                                           "--prometheus-address", "http://127.0.0.1:9"])
        if code == 1 and not failure and not any(line.startswith(str(self.case_file)) for line in output.splitlines()):
            return Outcome("traceback", f"exit 1 without a problem line: {output[-500:]!r}")
        return self._verdict("lint", code, output, failure)

    def apply(self, data: bytes) -> Outcome:
        """`rollouts apply -f FILE` to the worker's cluster (through its API)."""
        self.case_file.write_bytes(data)
        code, output, failure = self._cli(["apply", "-f", str(self.case_file), "--home", str(self.home),
                                           "-n", "fuzz"])
        return self._verdict("apply", code, output, failure)

    def send(self, request: Request) -> Outcome:
        """A raw request to the API server: 2xx accepted, 4xx refused, anything else a crash."""
        headers = {"Content-Type": request.content_type} if request.content_type else {}
        response = self.http.request(request.method, request.path, content=request.body, headers=headers)
        status = judge(response.status_code)
        return Outcome(status, f"HTTP {response.status_code}: {response.text[:400]}")

    def patch(self, kind: str, patch_type: str, text: str) -> Outcome:
        import io
        from contextlib import redirect_stderr, redirect_stdout

        import typer

        from rollouts.cli.patching import patch

        name = self.targets.get(kind)
        if name is None:
            return Outcome("pass", f"no {kind} to patch")
        direct = self.store_patch(kind, name, patch_type, text)
        if direct.status == "traceback":
            return direct
        err = io.StringIO()
        try:
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                patch(kind, name, patch_text=text, patch_type=patch_type, namespace="default", home=str(self.home))
        except typer.Exit as exc:
            message = err.getvalue()
            if "internal error" in message or "Traceback" in message:
                return Outcome("traceback", message[-1500:])
            return Outcome("problem" if exc.exit_code else "pass", message[-300:])
        return Outcome("pass")


    def store_patch(self, kind: str, name: str, patch_type: str, text: str) -> Outcome:
        """The store's own patch (what the API server calls) on a scratch copy of the target."""
        from rollouts.jsonbounds import TooLarge, check_text_depth
        from rollouts.store.protocol import StoreError

        try:
            check_text_depth(text, "patch")
            body = json.loads(text)
        except (TooLarge, ValueError):
            return Outcome("problem")  # refused by whoever decodes the request, before the store
        original = self.store.get(kind, "default", name)
        scratch = {k: v for k, v in original.items() if k != "status"}
        scratch["metadata"] = {k: v for k, v in original["metadata"].items()
                               if k in ("name", "labels", "annotations")} | {"namespace": "scratch"}
        self.store.create(scratch)
        try:
            self.store.patch(kind, "scratch", name, body, "json" if patch_type == "json" else "merge")
            return Outcome("pass")
        except StoreError:
            return Outcome("problem")
        finally:
            self.store.delete(kind, "scratch", name)


    def wedge(self) -> Outcome:
        """After the run: every stored object through the operator's paths (fuzzlib.wedge)."""
        from fuzzlib.wedge import check_stored

        from rollouts.cli.connection import connect

        report = check_stored(connect(str(self.home)))
        return Outcome("pass" if report.clean else "traceback", report.to_json())


def _serve_api_only(home: Path, timeout: float = 60.0) -> None:
    """Serve the worker's home API-only from a daemon thread: the CLI verbs under test reach the store through
    the Kubernetes API, and a server in this process dies with it (a worker killed after a hang leaves nothing)."""
    import asyncio
    import threading

    from rollouts.cluster.apiserver.server import serve, status

    never = asyncio.Event()  # the server stops when this process does
    threading.Thread(target=lambda: asyncio.run(serve(home, stop=never)), daemon=True).start()
    deadline = time.monotonic() + timeout
    while status(home) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fuzz worker's API server for {home} did not answer within {timeout:.0f}s")
        time.sleep(0.05)


def worker_main(conn: Connection, seeds: list[dict[str, Any]]) -> None:
    import logging

    logging.disable(logging.WARNING)  # the controller's and server's complaints about fuzzed objects
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    worker = Worker(seeds)
    # Warm caches (grammar, CLI verbs, connections) outside the timed cases.
    worker.run(("expression", ("len(result) > 0", [1])))
    service = b"apiVersion: v1\nkind: Service\nmetadata: {name: w}\nspec: {ports: [{port: 1}]}\n"
    worker.run(("lint", service))
    worker.run(("apply", service))
    worker.run(("http", Request("GET", "/api/v1/namespaces/fuzz/services", "", b"")))
    worker.run(("patch", ("Service", "merge", "{}")))
    conn.send("ready")
    while True:
        case = conn.recv()
        if case is None:
            return
        start = time.monotonic()
        outcome = worker.wedge() if case == "wedge" else worker.run(case)
        conn.send((outcome.status, outcome.detail, time.monotonic() - start))


# ---------------------------------------------------------------- the driver


@dataclass
class Tally:
    cases: int = 0
    problem: int = 0
    passed: int = 0
    traceback: int = 0
    hang: int = 0
    slow: int = 0
    slowest: float = 0.0
    examples: list[str] = field(default_factory=list)

    def line(self, family: str) -> str:
        return (f"{family:<11} cases={self.cases} refused={self.problem} accepted={self.passed} "
                f"crashes={self.traceback} hangs={self.hang} slow_over_1s={self.slow} "
                f"slowest={self.slowest:.2f}s")

    def add(self, case: Case, status: str, detail: str, elapsed: float) -> None:
        self.cases += 1
        self.slowest = max(self.slowest, elapsed)
        self.slow += elapsed > SLOW_SECONDS
        if status == "problem":
            self.problem += 1
        elif status == "pass":
            self.passed += 1
        else:
            setattr(self, status, getattr(self, status) + 1)
            if len(self.examples) < 5:
                self.examples.append(f"{status}: {describe_case(case)}\n    {detail.strip()}")


class Runner:
    """Sends cases to a worker process; restarts it after a hang or a crash."""

    def __init__(self, seeds: list[dict[str, Any]], timeout: float) -> None:
        self.seeds = seeds
        self.timeout = timeout
        self.context = multiprocessing.get_context("spawn")
        self.process: Any = None
        self.conn: Connection | None = None

    def start(self) -> None:
        parent, child = self.context.Pipe()
        self.process = self.context.Process(target=worker_main, args=(child, self.seeds), daemon=True)
        self.process.start()
        child.close()
        self.conn = parent
        if not parent.poll(120) or parent.recv() != "ready":
            raise RuntimeError("fuzz worker did not start")

    def stop(self) -> None:
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
        self.process = None

    def run(self, case: Case) -> tuple[str, str, float]:
        if self.process is None or not self.process.is_alive():
            self.start()
        assert self.conn is not None
        start = time.monotonic()
        self.conn.send(case)
        if not self.conn.poll(self.timeout):
            self.stop()
            return "hang", f"no answer within {self.timeout:.1f} s", time.monotonic() - start
        try:
            status, detail, elapsed = self.conn.recv()
        except EOFError:
            self.stop()
            return "traceback", "the worker process died (a crash below Python, or out of memory)", 0.0
        return status, detail, elapsed


def describe_case(case: Case) -> str:
    family, payload = case
    text = payload.describe() + " " + repr(payload.body[:200]) if isinstance(payload, Request) else repr(payload)
    return f"{family}: {text[:300]}{'...' if len(text) > 300 else ''}"


def run(seed: int, counts: dict[str, int], timeout: float, examples: Path = ARGO_EXAMPLES,
        wedge_timeout: float = 1800.0, budget: float | None = None,
        progress: float | None = None) -> tuple[dict[str, Tally], dict[str, Any] | None]:
    """Fuzz and return the tallies per family, and the operator check of what was stored (None when nothing
    was written through apply or HTTP). With `budget` (seconds), cases stop being generated after it and
    the run ends with the operator check; with `progress` (seconds), the tallies are printed that often."""
    deadline = time.monotonic() + budget if budget is not None else None
    last_print = time.monotonic()
    docs = seed_documents([p for p in (examples, INFRA) if p.is_dir()])
    if not docs:
        raise SystemExit(f"no seed manifests found in {examples} or {INFRA}")
    tallies = {family: Tally() for family in FAMILIES}
    runner = Runner(docs, timeout)
    generated = strategies(docs, seed_conditions(docs))
    wedge: dict[str, Any] | None = None
    try:
        for number, family in enumerate(FAMILIES):
            def consume(payload: Any, family: str = family) -> None:
                nonlocal last_print
                case = (family, payload)
                tallies[family].add(case, *runner.run(case))
                if progress is not None and time.monotonic() - last_print > progress:
                    last_print = time.monotonic()
                    print("progress " + tallies[family].line(family), flush=True)

            if family == "patch":  # the hostile patch list, each shape at least once (seeded random)
                for case in patch_cases(random.Random(seed * 31 + number), counts[family]):
                    tallies[family].add(case, *runner.run(case))
            else:
                drive(generated[family], counts[family], seed * 31 + number, consume, deadline=deadline)
        if counts["apply"] or counts["http"]:
            runner.timeout = wedge_timeout
            status, detail, elapsed = runner.run("wedge")  # type: ignore[arg-type]
            try:
                wedge = json.loads(detail)
            except ValueError:
                wedge = {"error": f"{status}: {detail}"}
            wedge["seconds"] = elapsed
    finally:
        if runner.conn is not None and runner.process is not None and runner.process.is_alive():
            runner.conn.send(None)
        runner.stop()
    return tallies, wedge


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates from the fuzzed input


def main(argv: list[str] | None = None) -> int:
    # Here, not at the top: the check's module loads the operator, which the worker processes need, not the driver.
    from fuzzlib.wedge import clean as wedge_clean
    from fuzzlib.wedge import line as wedge_line

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--expressions", type=int, default=2000)
    parser.add_argument("--manifests", type=int, default=500, help="default count of each of lint, apply, http")
    parser.add_argument("--lint", type=int, default=None)
    parser.add_argument("--apply", type=int, default=None)
    parser.add_argument("--http", type=int, default=None)
    parser.add_argument("--patches", type=int, default=84)
    parser.add_argument("--timeout", type=float, default=2.0, help="per-case time limit in seconds (a hang)")
    parser.add_argument("--examples", type=Path, default=ARGO_EXAMPLES, help="Argo's example manifests")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which no more cases are generated (the operator check still runs)")
    parser.add_argument("--progress", type=float, default=None, help="print the tallies every this many seconds")
    args = parser.parse_args(argv)
    counts = {"expression": args.expressions, "patch": args.patches,
              **{family: args.manifests if getattr(args, family) is None else getattr(args, family)
                 for family in ("lint", "apply", "http")}}
    start = time.monotonic()
    tallies, wedge = run(args.seed, counts, args.timeout, args.examples, budget=args.budget, progress=args.progress)
    for family, tally in tallies.items():
        print(tally.line(family))
        for example in tally.examples:
            print("  " + _printable(example))
    if wedge is not None:
        print(wedge_line(wedge))
        for example in wedge.get("examples", []):
            print("  " + _printable(example.replace("\n", "\n    ")))
    print(f"seed={args.seed} timeout={args.timeout}s elapsed={time.monotonic() - start:.1f}s"
          + (f" budget={args.budget:.0f}s" if args.budget is not None else ""))
    crashed = any(t.traceback or t.hang for t in tallies.values())
    return 1 if crashed or (wedge is not None and not wedge_clean(wedge)) else 0


if __name__ == "__main__":
    sys.exit(main())
