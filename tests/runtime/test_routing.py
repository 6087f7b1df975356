"""The local ingress's routing table: ingress-nginx canary semantics, host and path matching."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.runtime.local.routing import Backend, build_table, choose_backend

P = "nginx.ingress.kubernetes.io"


def ingress(
    name: str,
    service: str,
    *,
    host: str | None = "app.example.com",
    path: str = "/",
    path_type: str = "Prefix",
    annotations: dict[str, str] | None = None,
    namespace: str = "ns",
) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": path,
                    "pathType": path_type,
                    "backend": {"service": {"name": service, "port": {"number": 80}}},
                }
            ]
        }
    }
    if host is not None:
        rule["host"] = host
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"rules": [rule]},
    }


def canary(service: str = "app-canary", prefix: str = P, **annotations: str) -> dict[str, Any]:
    notes = {f"{prefix}/canary": "true", **{f"{prefix}/{k.replace('_', '-')}": v for k, v in annotations.items()}}
    return ingress("app-app-canary", service, annotations=notes)


STABLE = ingress("app", "app-stable")


def version(
    ingresses: list[dict[str, Any]],
    *,
    rand: float = 0.5,
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    host: str = "app.example.com",
    path: str = "/",
) -> str | None:
    backend = choose_backend(build_table(ingresses), host, path, headers or {}, cookies or {}, rand)
    return None if backend is None else backend.version


CASES = [
    # (id, canary annotations, rand, headers, cookies, expected version)
    ("weight-0", {"canary_weight": "0"}, 0.0, {}, {}, "stable"),
    ("weight-30-low-rand", {"canary_weight": "30"}, 0.29, {}, {}, "canary"),
    ("weight-30-high-rand", {"canary_weight": "30"}, 0.30, {}, {}, "stable"),
    ("weight-100", {"canary_weight": "100"}, 0.999, {}, {}, "canary"),
    ("no-weight-means-0", {}, 0.0, {}, {}, "stable"),
    ("total-1000-weight-5-in", {"canary_weight": "5", "canary_weight_total": "1000"}, 0.0049, {}, {}, "canary"),
    ("total-1000-weight-5-out", {"canary_weight": "5", "canary_weight_total": "1000"}, 0.0051, {}, {}, "stable"),
    ("total-50-weight-50", {"canary_weight": "50", "canary_weight_total": "50"}, 0.99, {}, {}, "canary"),
    ("header-always", {"canary_by_header": "X-Canary"}, 0.9, {"X-Canary": "always"}, {}, "canary"),
    ("header-case-insensitive-name", {"canary_by_header": "X-Canary"}, 0.9, {"x-canary": "always"}, {}, "canary"),
    ("header-never-beats-weight", {"canary_by_header": "X-Canary", "canary_weight": "100"}, 0.0,
     {"X-Canary": "never"}, {}, "stable"),
    ("header-other-falls-to-weight-in", {"canary_by_header": "X-Canary", "canary_weight": "30"}, 0.1,
     {"X-Canary": "maybe"}, {}, "canary"),
    ("header-other-falls-to-weight-out", {"canary_by_header": "X-Canary", "canary_weight": "30"}, 0.5,
     {"X-Canary": "maybe"}, {}, "stable"),
    ("header-value-match", {"canary_by_header": "X-Canary", "canary_by_header_value": "true"}, 0.9,
     {"X-Canary": "true"}, {}, "canary"),
    ("header-value-mismatch-falls-to-weight", {"canary_by_header": "X-Canary", "canary_by_header_value": "true",
     "canary_weight": "30"}, 0.9, {"X-Canary": "false"}, {}, "stable"),
    ("header-value-mismatch-weight-in", {"canary_by_header": "X-Canary", "canary_by_header_value": "true",
     "canary_weight": "30"}, 0.1, {"X-Canary": "false"}, {}, "canary"),
    ("header-value-set-always-is-not-special", {"canary_by_header": "X-Canary", "canary_by_header_value": "yes"},
     0.9, {"X-Canary": "always"}, {}, "stable"),
    ("header-value-set-never-is-not-special", {"canary_by_header": "X-Canary", "canary_by_header_value": "yes",
     "canary_weight": "100"}, 0.0, {"X-Canary": "never"}, {}, "canary"),
    ("header-value-exact-case", {"canary_by_header": "X-Canary", "canary_by_header_value": "True"}, 0.9,
     {"X-Canary": "true"}, {}, "stable"),
    ("header-pattern-match", {"canary_by_header": "X-User", "canary_by_header_pattern": "^(alice|bob)$"}, 0.9,
     {"X-User": "bob"}, {}, "canary"),
    ("header-pattern-mismatch", {"canary_by_header": "X-User", "canary_by_header_pattern": "^(alice|bob)$"}, 0.9,
     {"X-User": "carol"}, {}, "stable"),
    ("header-value-wins-over-pattern", {"canary_by_header": "X-User", "canary_by_header_value": "alice",
     "canary_by_header_pattern": "bob"}, 0.9, {"X-User": "bob"}, {}, "stable"),
    ("header-absent-falls-to-weight", {"canary_by_header": "X-Canary", "canary_weight": "100"}, 0.5, {}, {},
     "canary"),
    ("cookie-always", {"canary_by_cookie": "beta"}, 0.9, {}, {"beta": "always"}, "canary"),
    ("cookie-never-beats-weight", {"canary_by_cookie": "beta", "canary_weight": "100"}, 0.0, {}, {"beta": "never"},
     "stable"),
    ("cookie-other-falls-to-weight", {"canary_by_cookie": "beta", "canary_weight": "30"}, 0.1, {},
     {"beta": "yes"}, "canary"),
    ("header-beats-cookie", {"canary_by_header": "X-Canary", "canary_by_cookie": "beta"}, 0.9,
     {"X-Canary": "never"}, {"beta": "always"}, "stable"),
    ("header-unknown-then-cookie", {"canary_by_header": "X-Canary", "canary_by_cookie": "beta"}, 0.9,
     {"X-Canary": "perhaps"}, {"beta": "always"}, "canary"),
    ("weight-out-of-range-clamped", {"canary_weight": "140"}, 0.99, {}, {}, "canary"),
    ("weight-not-a-number-is-0", {"canary_weight": "lots"}, 0.0, {}, {}, "stable"),
]


@pytest.mark.parametrize(
    ("notes", "rand", "headers", "cookies", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_canary_decision(
    notes: dict[str, str], rand: float, headers: dict[str, str], cookies: dict[str, str], expected: str
) -> None:
    assert version([STABLE, canary(**notes)], rand=rand, headers=headers, cookies=cookies) == expected


def test_canary_backend_carries_both_ingresses() -> None:
    table = build_table([canary(canary_weight="100"), STABLE])
    backend = choose_backend(table, "app.example.com", "/x", {}, {}, 0.0)
    assert backend == Backend(
        service="app-canary",
        version="canary",
        ingress="app-app-canary",
        namespace="ns",
        stable_ingress="app",
        logical_service="app",
        service_port=80,
        host="app.example.com",
        path="/",
        stable_service="app-stable",
    )
    assert backend.service_key == "ns/app-canary"


def test_logical_service_annotation() -> None:
    stable = ingress("web", "web-stable", annotations={"rollouts.io/service": "web-svc", "rollouts.io/port": "8081"})
    table = build_table([stable])
    backend = choose_backend(table, "app.example.com", "/", {}, {}, 0.0)
    assert backend is not None and backend.logical_service == "web-svc"
    assert [(s.key, s.port) for s in table.stable_ingresses] == [("ns/web", 8081)]


def test_custom_annotation_prefix() -> None:
    custom = canary(prefix="example.com/ingress", canary_weight="100")
    assert version([STABLE, custom]) == "stable"  # not a canary under the default prefix: a second stable
    table = build_table([STABLE, custom], annotation_prefix="example.com/ingress")
    backend = choose_backend(table, "app.example.com", "/", {}, {}, 0.5)
    assert backend is not None and backend.version == "canary"


def test_second_canary_for_same_rule_is_ignored_and_reported() -> None:
    first = canary("canary-a", canary_weight="100")
    second = {**canary("canary-b", canary_weight="100"), "metadata": {"name": "other", "namespace": "ns",
              "annotations": {f"{P}/canary": "true", f"{P}/canary-weight": "100"}}}
    table = build_table([STABLE, first, second])
    backend = choose_backend(table, "app.example.com", "/", {}, {}, 0.5)
    assert backend is not None and backend.service == "canary-a"
    assert any("only one canary" in problem for problem in table.problems)


def test_canary_without_stable_serves_nothing() -> None:
    table = build_table([canary(canary_weight="100")])
    assert choose_backend(table, "app.example.com", "/", {}, {}, 0.0) is None
    assert any("serves nothing" in problem for problem in table.problems)


def test_invalid_pattern_sends_header_requests_to_stable() -> None:
    notes = {"canary_by_header": "X-User", "canary_by_header_pattern": "(", "canary_weight": "100"}
    table = build_table([STABLE, canary(**notes)])
    assert any("canary-by-header-pattern" in problem for problem in table.problems)
    assert choose_backend(table, "app.example.com", "/", {"X-User": "x"}, {}, 0.0).version == "stable"  # type: ignore[union-attr]
    assert choose_backend(table, "app.example.com", "/", {}, {}, 0.0).version == "canary"  # type: ignore[union-attr]


HOST_PATH_INGRESSES = [
    ingress("root", "root-svc", host="app.example.com", path="/"),
    ingress("api", "api-svc", host="app.example.com", path="/api"),
    ingress("api-v2", "api-v2-svc", host="app.example.com", path="/api/v2"),
    ingress("exact", "exact-svc", host="app.example.com", path="/api/health", path_type="Exact"),
    ingress("impl", "impl-svc", host="app.example.com", path="/static", path_type="ImplementationSpecific"),
    ingress("wild", "wild-svc", host="*.example.com", path="/"),
    ingress("any", "any-svc", host=None, path="/only-any"),
]

HOST_PATH_CASES = [
    ("root", "app.example.com", "/", "root-svc"),
    ("port-in-host-ignored", "app.example.com:8080", "/", "root-svc"),
    ("host-case-insensitive", "APP.example.com", "/", "root-svc"),
    ("prefix-element", "app.example.com", "/api/users", "api-svc"),
    ("prefix-exact-path", "app.example.com", "/api", "api-svc"),
    ("prefix-trailing-slash", "app.example.com", "/api/", "api-svc"),
    ("prefix-not-partial-element", "app.example.com", "/apix", "root-svc"),
    ("longest-prefix", "app.example.com", "/api/v2/things", "api-v2-svc"),
    ("exact-match", "app.example.com", "/api/health", "exact-svc"),
    ("exact-no-subpath", "app.example.com", "/api/health/deep", "api-svc"),
    ("implementation-specific-is-string-prefix", "app.example.com", "/staticfiles", "impl-svc"),
    ("wildcard-host", "other.example.com", "/", "wild-svc"),
    ("wildcard-one-label-only", "a.b.example.com", "/only-any", "any-svc"),
    ("exact-host-has-no-fallback-to-any-host", "app.example.com", "/only-any", "root-svc"),
    ("unknown-host-uses-hostless-rule", "elsewhere.org", "/only-any/x", "any-svc"),
    ("unknown-host-no-rule", "elsewhere.org", "/", None),
]


@pytest.mark.parametrize(("host", "path", "expected"), [c[1:] for c in HOST_PATH_CASES],
                         ids=[c[0] for c in HOST_PATH_CASES])
def test_host_and_path_matching(host: str, path: str, expected: str | None) -> None:
    backend = choose_backend(build_table(HOST_PATH_INGRESSES), host, path, {}, {}, 0.0)
    assert (backend.service if backend else None) == expected


def test_loopback_host_matches_the_single_ingress_host() -> None:
    table = build_table([STABLE])
    assert choose_backend(table, "127.0.0.1:9000", "/", {}, {}, 0.0) is not None
    assert choose_backend(table, "localhost", "/", {}, {}, 0.0) is not None
    assert choose_backend(table, "other.example.com", "/", {}, {}, 0.0) is None


def test_default_backend_serves_unmatched_requests() -> None:
    stable = ingress("app", "app-stable", path="/api")
    stable["spec"]["defaultBackend"] = {"service": {"name": "fallback", "port": {"number": 80}}}
    table = build_table([stable])
    assert choose_backend(table, "app.example.com", "/api/x", {}, {}, 0.0).service == "app-stable"  # type: ignore[union-attr]
    assert choose_backend(table, "app.example.com", "/web", {}, {}, 0.0).service == "fallback"  # type: ignore[union-attr]
    assert choose_backend(table, "nowhere.org", "/", {}, {}, 0.0).service == "fallback"  # type: ignore[union-attr]


def test_invalid_ingress_is_reported_not_raised() -> None:
    table = build_table([{"kind": "Ingress", "spec": {"rules": "nope"}}, STABLE])
    assert len(table.stable_ingresses) == 1
    assert table.problems and "ingresses[0]" in table.problems[0]


@given(weight=st.integers(0, 100), rand=st.floats(0, 1, exclude_max=True))
def test_weight_split_is_monotonic(weight: int, rand: float) -> None:
    got = version([STABLE, canary(canary_weight=str(weight))], rand=rand)
    assert got == ("canary" if rand * 100 < weight else "stable")


# (id, pattern, header value, expected): patterns Python's backtracking `re` takes seconds to minutes on
# (`^(a+)+$` with 25 bytes took 1.46 s, x1.7 per byte); matched per request, they must be answered at once.
HOSTILE_HEADER_PATTERNS = [
    ("nested-quantifier", "^(a+)+$", "a" * 40 + "!", "stable"),
    ("nested-quantifier-match", "^(a+)+$", "a" * 40, "canary"),
    ("overlapping-alternation", "(a|a)+$", "a" * 40 + "!", "stable"),
    ("huge-value", "(x|xx)+y$", "x" * 100_000, "stable"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("pattern", "value", "expected"), [c[1:] for c in HOSTILE_HEADER_PATTERNS],
                         ids=[c[0] for c in HOSTILE_HEADER_PATTERNS])
def test_header_pattern_with_backtracking_regex_is_matched_in_linear_time(
    pattern: str, value: str, expected: str
) -> None:
    notes = {"canary_by_header": "X-User", "canary_by_header_pattern": pattern}
    table = build_table([STABLE, canary(**notes)])
    assert table.problems == ()
    for _ in range(20):  # per request: many requests must not add up to a stall either
        assert version([STABLE, canary(**notes)], headers={"X-User": value}) == expected


def test_header_pattern_refused_by_re2_goes_to_stable_with_a_problem() -> None:
    notes = {"canary_by_header": "X-User", "canary_by_header_pattern": "(a)\\1", "canary_weight": "100"}
    table = build_table([STABLE, canary(**notes)])
    assert any("backreferences" in problem and "canary-by-header-pattern" in problem for problem in table.problems)
    assert choose_backend(table, "app.example.com", "/", {"X-User": "aa"}, {}, 0.0).version == "stable"  # type: ignore[union-attr]
