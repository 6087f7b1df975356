"""What `rollouts dashboard` prints and opens: by default no token in its output; `--show-url` prints the
address with it; `--open` hands the browser a 0600 file under the home that sends it on to the address with
the token in its fragment, so the token is on neither the output nor the browser's command line."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from rollouts.cli.dashboard import OPENER_FILE, write_opener
from tests.cluster.conftest import start_cluster
from tests.dashboard.helpers import seed, seeded_db
from tests.e2e.harness import wait_until

pytestmark = pytest.mark.integration

# A stand-in browser ($BROWSER, which Python's webbrowser runs as an argument list): it records its arguments.
BROWSER = """import json, sys
with open(sys.argv[1], "w") as out:
    json.dump(sys.argv[2:], out)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_dashboard(tmp_path: Path, home: Path, *flags: str, env: dict[str, str]) -> tuple[str, str]:
    """Runs the command until it serves, stops it, and returns (its output, the home's token)."""
    port = _free_port()
    log = (tmp_path / f"dashboard{len(flags)}.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "rollouts", "dashboard", "--port", str(port), "--home",
                                str(home), *flags], env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/v1/namespaces", timeout=2).status_code == 401
            except httpx.HTTPError:
                return False

        wait_until(up, 30, "the dashboard")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log.seek(0)
    output = log.read()
    log.close()
    return output, (home / "dashboard.token").read_text().strip()


@pytest.fixture
def cluster_home(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    home.mkdir()
    seeded_db(home / "state.db", seed)
    _, stop = start_cluster(home)
    yield home
    stop()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_DASHBOARD_TOKEN", "ROLLOUTS_HOME")}
    script = tmp_path / "browser.py"
    script.write_text(BROWSER)
    env["BROWSER"] = f"{sys.executable} {script} {tmp_path / 'browser-args.json'} %s"
    return env


def test_dashboard_open_keeps_the_token_off_output_and_browser_command_line(tmp_path: Path,
                                                                             cluster_home: Path) -> None:
    output, token = _run_dashboard(tmp_path, cluster_home, "--open", env=_env(tmp_path))
    assert token not in output, output
    assert f"(the token is in {cluster_home / 'dashboard.token'}: " in output, output
    args = json.loads((tmp_path / "browser-args.json").read_text())
    opener = cluster_home / OPENER_FILE
    assert args == [opener.as_uri()]
    assert token not in " ".join(args)
    assert stat.S_IMODE(opener.stat().st_mode) == 0o600
    assert f"#token={token}" in opener.read_text()


def test_dashboard_show_url_prints_the_address_with_its_token(tmp_path: Path, cluster_home: Path) -> None:
    output, token = _run_dashboard(tmp_path, cluster_home, "--show-url", env=_env(tmp_path))
    assert "#token=" + token in output, output
    assert not (tmp_path / "browser-args.json").exists()  # no browser without --open


def test_opener_page_redirects_to_the_link_and_cannot_be_broken_out_of(tmp_path: Path) -> None:
    path = write_opener(tmp_path, "http://127.0.0.1:1/#token=a</script><b>")
    text = path.read_text()
    assert text.count("</script>") == 1 and "<b>" not in text
    assert 'location.replace("http://127.0.0.1:1/#token=a\\u003c/script>\\u003cb>")' in text
    path.chmod(0o644)
    write_opener(tmp_path, "http://127.0.0.1:1/#token=b")  # an older file's mode is narrowed again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
