"""The local pod supervisor with real processes: readiness, restarts, crash loops, deletion, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from rollouts.runtime.local.images import ImageMap, ImageResolver
from rollouts.runtime.local.processes import start_time
from rollouts.runtime.local.supervisor import PodPhase, PodState, PodSupervisor
from rollouts.spec.pod import Container

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks read /proc")

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def children() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids |= {int(p) for p in (task / "children").read_text().split()}
        except FileNotFoundError:
            continue  # a thread that ended while being listed has no children to report
    return pids


def supervisor(tmp_path: Path, **kwargs: Any) -> PodSupervisor:
    kwargs.setdefault("probe_period", 0.1)
    kwargs.setdefault("backoff_initial", 0.2)
    return PodSupervisor(tmp_path / "logs", images=ImageResolver(image_map=ImageMap()), **kwargs)


def demo(color: str = "blue", **fields: Any) -> Container:
    return Container.model_validate({"name": "app", "image": f"rollouts-demo:{color}", **fields})


def script(code: str) -> Container:
    return Container(name="app", command=[sys.executable, "-c", textwrap.dedent(code)])


async def until(
    sup: PodSupervisor, name: str, check: Callable[[PodState], bool], timeout: float = 10.0
) -> PodState:
    deadline = time.monotonic() + timeout
    while True:
        state = sup.pod(name)
        if state is not None and check(state):
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"pod {name} never reached the expected state; last: {state}")
        await asyncio.sleep(0.02)


async def get(pod: PodState, path: str = "/") -> httpx.Response:
    """A request to the pod at its own address (status.podIP), as a Service's listener sends it."""
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://{pod.ip}:{pod.port}{path}", timeout=5)


def test_demo_pods_become_ready_and_a_killed_one_restarts(tmp_path: Path) -> None:
    changes: list[PodState] = []
    fixed = datetime(2024, 5, 1, tzinfo=UTC)

    async def scenario() -> None:
        sup = supervisor(tmp_path, on_change=changes.append, clock=lambda: fixed)
        try:
            await sup.ensure_pod("web-a", {"app": "web", "v": "1"}, demo("blue"))
            await sup.ensure_pod("web-b", {"app": "web", "v": "2"}, demo("green"))
            a = await until(sup, "web-a", lambda s: s.ready)
            b = await until(sup, "web-b", lambda s: s.ready)
            assert a.port != b.port
            assert (a.phase, a.restarts, a.reason, a.ready_since, a.created_at) == (
                PodPhase.RUNNING,
                0,
                None,
                fixed,
                fixed,
            )
            assert (await get(a)).json()["color"] == "blue"
            assert (await get(b)).json()["color"] == "green"
            assert [p.name for p in sup.pods(selector={"v": "2"})] == ["web-b"]
            assert len(sup.pods(namespace="default")) == 2 and sup.pods(namespace="other") == []
            # Same name again is the same pod.
            assert (await sup.ensure_pod("web-a", {"app": "web"}, demo("red"))).pid == a.pid

            assert a.pid is not None
            os.kill(a.pid, signal.SIGKILL)
            down = await until(sup, "web-a", lambda s: not s.ready)
            assert down.reason == "CrashLoopBackOff" or down.pid is None or down.pid != a.pid
            again = await until(sup, "web-a", lambda s: s.ready and s.pid != a.pid)
            assert again.restarts == 1
            assert again.port == a.port
            assert (await get(again)).json()["color"] == "blue"
            assert sup.pod("web-b") == b  # the other pod is untouched
        finally:
            await sup.close(grace_seconds=5)

    run(scenario())
    a_changes = [(c.ready, c.reason) for c in changes if c.name == "web-a"]
    assert (True, None) in a_changes
    assert (False, "CrashLoopBackOff") in a_changes
    assert "listening on" in (tmp_path / "logs" / "web-a.log").read_text()


def test_container_env_reaches_the_process_and_port_is_the_pods(tmp_path: Path) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path)
        try:
            pod = await sup.ensure_pod("env", {}, demo("blue", env=[{"name": "COLOR", "value": "teal"}]))
            ready = await until(sup, pod.name, lambda s: s.ready)
            assert (await get(ready)).json() == {"color": "teal", "version": "blue"}
        finally:
            await sup.close()

    run(scenario())


def test_command_that_exits_at_once_is_in_crash_loop_back_off(tmp_path: Path) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path, backoff_initial=0.1, backoff_cap=0.4)
        try:
            await sup.ensure_pod("crash", {}, script("import sys; print('boom', flush=True); sys.exit(1)"))
            state = await until(sup, "crash", lambda s: s.reason == "CrashLoopBackOff" and s.restarts >= 2)
            assert state.phase == PodPhase.RUNNING
            assert not state.ready
            assert state.exit_code == 1
            assert state.message is not None and "exit code 1" in state.message
        finally:
            await sup.close()
        assert (tmp_path / "logs" / "crash.log").read_text().count("boom") >= 3

    run(scenario())


def test_a_program_that_cannot_start_says_why(tmp_path: Path) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path)
        try:
            await sup.ensure_pod(
                "nostart", {}, Container(name="app", command=[str(tmp_path / "no-such-program")])
            )
            state = await until(sup, "nostart", lambda s: s.reason == "CrashLoopBackOff")
            assert state.message is not None and "could not start" in state.message
            assert "no-such-program" in state.message and state.exit_code == 128
        finally:
            await sup.close()

    run(scenario())


@pytest.mark.parametrize(
    ("policy", "code", "phase", "reason"),
    [
        ("Never", 0, PodPhase.SUCCEEDED, "Completed"),
        ("Never", 3, PodPhase.FAILED, "Error"),
        ("OnFailure", 0, PodPhase.SUCCEEDED, "Completed"),
    ],
    ids=["never-ok", "never-fails", "on-failure-ok"],
)
def test_restart_policies_end_like_kubernetes(
    tmp_path: Path, policy: str, code: int, phase: PodPhase, reason: str
) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path)
        try:
            await sup.ensure_pod("job", {}, script(f"raise SystemExit({code})"), restart_policy=policy)
            state = await until(sup, "job", lambda s: s.phase == phase)
            assert (state.reason, state.exit_code, state.restarts) == (reason, code, 0)
        finally:
            await sup.close()

    run(scenario())


def test_unresolvable_image_is_pending_with_a_reason(tmp_path: Path) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path)
        try:
            await sup.ensure_pod("mystery", {}, Container(name="app", image="auth-svc:1.2"))
            state = await until(sup, "mystery", lambda s: s.reason == "ImageNotResolvable")
            assert state.phase == PodPhase.PENDING and state.pid is None
            assert state.message is not None and "images.yaml" in state.message
        finally:
            await sup.close()

    run(scenario())


def test_delete_sigkills_a_process_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    changes: list[PodState] = []

    async def scenario() -> None:
        sup = supervisor(tmp_path, on_change=changes.append)
        stubborn = script(
            """
            import signal, socket, os, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            s = socket.socket(); s.bind((os.environ["POD_IP"], int(os.environ["PORT"]))); s.listen()
            print("ignoring SIGTERM", flush=True)
            time.sleep(60)
            """
        )
        try:
            await sup.ensure_pod("stubborn", {}, stubborn, termination_grace_seconds=60)
            state = await until(sup, "stubborn", lambda s: s.ready)
            assert state.pid is not None
            log_path = state.log_path
            deadline = time.monotonic() + 5
            while "ignoring SIGTERM" not in log_path.read_text():
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            began = time.monotonic()
            assert await sup.delete_pod("stubborn", grace_seconds=0.5)
            took = time.monotonic() - began
            assert 0.45 <= took < 5, took
            assert not alive(state.pid)
            assert sup.pod("stubborn") is None and sup.pods() == []
            assert not await sup.delete_pod("stubborn")
        finally:
            await sup.close()

    run(scenario())
    final = [c for c in changes if c.name == "stubborn"][-1]
    assert final.exit_code == -signal.SIGKILL
    assert final.terminating and final.phase == PodPhase.FAILED


def _describe(pid: int) -> str:
    """A process still there, as `ps` would show it: pid, state, parent, command line."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} state={fields[0]} ppid={fields[1]} {command[:120]}"


def test_close_leaves_no_process_behind(tmp_path: Path) -> None:
    pids: list[int] = []
    starts: list[int | None] = []  # each pid's start time: a pid reused by another process is not a survivor

    async def scenario() -> None:
        sup = supervisor(tmp_path)
        # A pod that forks a grandchild into its process group, which must go too.
        spawner = script(
            """
            import subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            print("grandchild", child.pid, flush=True)
            time.sleep(60)
            """
        )
        await sup.ensure_pod("p1", {}, demo("blue"))
        await sup.ensure_pod("p2", {}, demo("red"))
        await sup.ensure_pod("p3", {}, spawner, termination_grace_seconds=1)
        for name in ("p1", "p2"):
            state = await until(sup, name, lambda s: s.ready)
            assert state.pid is not None
            pids.append(state.pid)
        p3 = await until(sup, "p3", lambda s: s.pid is not None)
        assert p3.pid is not None
        pids.append(p3.pid)
        deadline = time.monotonic() + 5
        while "grandchild" not in p3.log_path.read_text():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        pids.append(int(p3.log_path.read_text().split("grandchild")[1].split()[0]))
        starts.extend(start_time(pid) for pid in pids)
        assert all(alive(pid) for pid in pids) and None not in starts
        await sup.close()
        assert sup.pods() == []
        with pytest.raises(RuntimeError):
            await sup.ensure_pod("late", {}, demo())

    run(scenario())
    assert children() == set()
    # The grandchild is reparented to init before it is reaped; on a loaded machine a killed process can take
    # seconds to be scheduled and finish dying, so the deadline is generous (the loop ends as soon as all are
    # gone). A pid is judged by its start time too: a number reused by another process is not ours.
    deadline = time.monotonic() + 30
    while left := [pid for pid, started in zip(pids, starts, strict=True) if alive(pid) and start_time(pid) == started]:
        assert time.monotonic() < deadline, [_describe(pid) for pid in left]
        time.sleep(0.02)


CONTROLLER = """
import asyncio, sys
from pathlib import Path
from rollouts.runtime.local.images import ImageMap, ImageResolver
from rollouts.runtime.local.supervisor import PodSupervisor
from rollouts.spec.pod import Container

async def main():
    sup = PodSupervisor(Path(sys.argv[1]), images=ImageResolver(image_map=ImageMap()), probe_period=0.1)
    await sup.ensure_pod("orphan", {}, Container(name="app", image="rollouts-demo:blue"))
    while not (sup.pod("orphan") and sup.pod("orphan").ready):
        await asyncio.sleep(0.02)
    print(sup.pod("orphan").pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_pods_die_with_a_sigkilled_controller(tmp_path: Path) -> None:
    controller = subprocess.Popen(
        [sys.executable, "-c", CONTROLLER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert controller.stdout is not None
        pod_pid = int(controller.stdout.readline())
        assert alive(pod_pid)
        controller.kill()
        controller.wait(timeout=5)
        deadline = time.monotonic() + 5
        while alive(pod_pid):
            assert time.monotonic() < deadline, "the pod outlived its controller"
            time.sleep(0.02)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
        if controller.stdout:
            controller.stdout.close()


@pytest.mark.parametrize(
    "name",
    ["../etc", "a/b", "", "-x", "x" * 300],
    ids=["dotdot", "slash", "empty", "leading-dash", "too-long"],
)
def test_pod_names_that_are_not_safe_file_names_are_refused(tmp_path: Path, name: str) -> None:
    async def scenario() -> None:
        sup = supervisor(tmp_path)
        with pytest.raises(ValueError, match="is not valid"):
            await sup.ensure_pod(name, {}, demo())
        await sup.close()

    run(scenario())


@pytest.mark.parametrize("max_files", [1, 3], ids=["no-rotated-copies", "three-files"])
def test_pod_log_bounded_rotated_past_max_size(tmp_path: Path, max_files: int) -> None:
    limit = 64 * 1024
    sup = supervisor(tmp_path, log_max_bytes=limit, log_max_files=max_files)
    # ~200 KB/s of output for 2 s (~400 KB, six times the limit), then idle.
    noisy = script("""
        import sys, time
        for i in range(400):
            print(f"line {i:06d} " + "x" * 1000, flush=True)
            time.sleep(0.005)
        time.sleep(60)
    """)

    async def main() -> list[Path]:
        state = await sup.ensure_pod("noisy", {}, noisy)
        log_path = state.log_path
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "line 000399" not in _all_text(log_path):
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # a few more probe periods: the bound holds
            return sorted(log_path.parent.glob("noisy.log*"))
        finally:
            await sup.close(grace_seconds=1)

    files = run(main())
    assert len(files) <= max_files, files
    # Checked every probe period (0.1 s): a file can pass the limit by what is written in one period.
    assert all(f.stat().st_size <= limit + 60_000 for f in files), [(f.name, f.stat().st_size) for f in files]


def _all_text(log_path: Path) -> str:
    return "".join(f.read_text(errors="replace") for f in log_path.parent.glob(f"{log_path.name}*"))
