"""The token and access rules: where the token comes from, its file's mode, constant-time comparison,
which hosts are loopback, the threshold parser, and `rollouts dashboard --show-token`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.api.models import Threshold, parse_threshold, parse_thresholds
from rollouts.api.server import parse_address
from rollouts.api.token import (
    TOKEN_ENV,
    TokenError,
    bearer,
    is_loopback,
    load_or_create_token,
    resolve_token,
    tokens_match,
)
from rollouts.netaddr import AddressError


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.10", False), ("example.com", False), ("", False),
], ids=lambda v: str(v))
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("given", "ok"), [
    ("s3cret-s3cret-s3cret", True), ("s3cret-s3cret-s3creT", False), ("", False), (None, False),
    ("s3cret-s3cret-s3cret ", False), ("ünïcode", False),
], ids=["same", "one-char-off", "empty", "none", "trailing-space", "non-ascii"])
def test_tokens_match(given: str | None, ok: bool) -> None:
    assert tokens_match(given, "s3cret-s3cret-s3cret") is ok


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("Basic abc", None), ("Bearer ", None), (None, None), ("abc", None),
], ids=["bearer", "lowercase", "basic", "empty", "absent", "no-scheme"])
def test_bearer_header(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


def test_token_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    token, created = load_or_create_token(tmp_path)
    assert created and len(token) >= 32
    assert stat.S_IMODE(os.stat(tmp_path / "dashboard.token").st_mode) == 0o600
    assert load_or_create_token(tmp_path) == (token, False)


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_token_file_created_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    previous = os.umask(umask)
    try:
        load_or_create_token(tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "dashboard.token").st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o666], ids=["0644", "0640", "0666"])
def test_token_file_readable_by_others_is_made_0600(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "dashboard.token"
    path.write_text("an-existing-token-0123456789\n")
    path.chmod(mode)
    assert load_or_create_token(tmp_path) == ("an-existing-token-0123456789", False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert resolve_token(tmp_path, environ={})[0] == "an-existing-token-0123456789"


def test_token_sources_in_order(tmp_path: Path) -> None:
    file = tmp_path / "given.token"
    file.write_text("from-the-file-0123456789\n")
    env = {TOKEN_ENV: "from-the-environment-0123"}
    assert resolve_token(tmp_path, file, env)[0] == "from-the-file-0123456789"
    assert resolve_token(tmp_path, None, env) == ("from-the-environment-0123", f"${TOKEN_ENV}")
    token, source = resolve_token(tmp_path, None, {})
    assert source == str(tmp_path / "dashboard.token") and token == (tmp_path / "dashboard.token").read_text().strip()
    file.write_text("short")
    with pytest.raises(TokenError, match="at least 16"):
        resolve_token(tmp_path, file, {})
    with pytest.raises(TokenError, match="missing.token"):
        resolve_token(tmp_path, tmp_path / "missing.token", {})


@pytest.mark.parametrize(("condition", "kind", "expected"), [
    ("result >= 0.995", "success", Threshold(kind="success", operator=">=", value=0.995)),
    ("result[0] <= 0.5", "failure", Threshold(kind="failure", operator="<=", value=0.5, index=0)),
    ("  result[2]<10 ", "failure", Threshold(kind="failure", operator="<", value=10, index=2)),
    ("asFloat(result) > 1e-3", "success", Threshold(kind="success", operator=">", value=0.001)),
    ("result == 1", "success", Threshold(kind="success", operator="==", value=1)),
    ("result[0] >= 0.9 && result[1] < 5", "success", None),
    ("len(result) > 0", "success", None),
    ("", "success", None),
    (None, "success", None),
], ids=["ge", "indexed-le", "spaces", "asFloat", "eq", "compound", "function", "empty", "none"])
def test_parse_threshold(condition: str | None, kind: str, expected: Threshold | None) -> None:
    assert parse_threshold(condition, kind) == expected  # type: ignore[arg-type]


S, F = "success", "failure"


@pytest.mark.parametrize(("condition", "kind", "expected"), [
    ("len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.995", S, [(">=", 0.995, 0)]),
    ("len(result) > 0 && !isNaN(result[0]) && result[0] > 0.5", F, [(">", 0.5, 0)]),
    ("result[0] >= 0.9 && result[1] < 5", S, [(">=", 0.9, 0), ("<", 5.0, 1)]),
    ("0.95 <= result", S, [(">=", 0.95, None)]),
    ("asFloat(result) < 0.10", S, [("<", 0.1, None)]),
    ("result[0] <= -1e-3", F, [("<=", -0.001, 0)]),
    ("result >= 0.95 || result == 0", S, []),
    ("!(result < 0.5)", S, []),
    ("result == result && result['decided'] && !result['regression']", S, []),
    ("result >= ", S, []),
], ids=["runbook-success", "runbook-failure", "two-bounds", "number-first", "cast", "negative", "or", "not",
        "map-result", "syntax-error"])
def test_gate_thresholds_read_from_compound_conditions(condition: str, kind: str,
                                                        expected: list[tuple[str, float, int | None]]) -> None:
    found = parse_thresholds(condition, kind)  # type: ignore[arg-type]
    assert [(t.operator, t.value, t.index) for t in found] == expected
    assert all(t.kind == kind for t in found)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:3100", ("127.0.0.1", 3100)), (":8080", ("127.0.0.1", 8080)), ("0.0.0.0", ("0.0.0.0", 3100)),
    ("[::1]:9", ("::1", 9)),
], ids=lambda v: str(v))
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "127.0.0.1:70000"], ids=["not-a-number", "too-big"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_show_token_prints_the_homes_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    run = subprocess.run([sys.executable, "-m", "rollouts", "dashboard", "--show-token", "--home", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == (tmp_path / "dashboard.token").read_text().strip()
