"""A detached supervisor's pods: no die-with-parent hook, pid and start time in their state, and
`adopt_pod` takes over a process it did not start (watched through /proc, probed again, stopped by its
group) or restarts one that ended, as after a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rollouts.runtime.local.addresses import AddressPool
from rollouts.runtime.local.processes import alive, recorded, start_time
from rollouts.runtime.local.supervisor import PodPhase
from tests.runtime.test_supervisor import demo, run, supervisor, until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SUPERVISE_AND_WAIT = """
import asyncio, sys
from pathlib import Path
from rollouts.runtime.local.images import ImageMap, ImageResolver
from rollouts.runtime.local.supervisor import PodSupervisor
from rollouts.spec.pod import Container

async def main():
    sup = PodSupervisor(Path(sys.argv[1]), images=ImageResolver(image_map=ImageMap()), probe_period=0.1,
                        detached=sys.argv[2] == "detached")
    await sup.ensure_pod("web-1", {}, Container(name="app", image="rollouts-demo:blue"))
    while not sup.pod("web-1").ready:
        await asyncio.sleep(0.05)
    state = sup.pod("web-1")
    print(state.pid, state.pid_start, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.parametrize(("mode", "survives"), [("detached", True), ("attached", False)])
def test_detached_pod_outlives_its_supervisor_process(tmp_path: Path, mode: str, survives: bool) -> None:
    host = subprocess.Popen([sys.executable, "-c", SUPERVISE_AND_WAIT, str(tmp_path / "logs"), mode],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert host.stdout is not None
        pid_text, start_text = host.stdout.readline().split()
        pid, started = int(pid_text), int(start_text)
        assert started == start_time(pid)
    finally:
        host.kill()  # SIGKILL: no clean close
        host.wait()
    deadline = time.monotonic() + 5
    while alive(pid, started) != survives and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert alive(pid, started) == survives
    finally:
        if alive(pid, started):
            os.killpg(pid, signal.SIGKILL)


def test_adopt_pod_takes_over_a_running_process_that_is_not_our_child(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "rollouts.demo.service"], start_new_session=True,
                               env={**os.environ, "PORT": str(port)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = start_time(process.pid)

    async def scenario() -> tuple[PodPhase, bool, int, bool]:
        sup = supervisor(tmp_path, detached=True)
        state = await sup.adopt_pod("web-1", {"app": "web"}, demo(), "default", port=port, pid=process.pid,
                                    pid_start=started, restarts=3)
        ready = await until(sup, "web-1", lambda s: s.ready)
        await sup.delete_pod("web-1", grace_seconds=5)
        return state.phase, ready.adopted, ready.restarts, alive(process.pid, started)

    try:
        phase, adopted, restarts, still_alive = run(scenario())
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert (phase, adopted, restarts, still_alive) == (PodPhase.RUNNING, True, 3, False)
    assert process.returncode == 0  # the demo service's answer to SIGTERM: stopped, not restarted


@pytest.mark.parametrize("pid_start_offset", [None, 1], ids=["process-gone", "pid-recycled"])
def test_adopt_pod_restarts_a_recorded_process_that_ended_as_a_crash(tmp_path: Path,
                                                                     pid_start_offset: int | None) -> None:
    port = _free_port()
    if pid_start_offset is None:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        pid, pid_start = gone.pid, 12345
    else:  # a live process whose start time is not the recorded one: another program, never signalled
        pid, pid_start = os.getpid(), (start_time(os.getpid()) or 0) + pid_start_offset

    async def scenario() -> tuple[int, int | None, bool]:
        sup = supervisor(tmp_path, detached=True)
        await sup.adopt_pod("web-1", {"app": "web"}, demo(), "default", port=port, pid=pid, pid_start=pid_start,
                            restarts=2)
        state = await until(sup, "web-1", lambda s: s.ready, timeout=20)
        await sup.close(grace_seconds=2)
        return state.restarts, state.pid, state.adopted

    restarts, new_pid, adopted = run(scenario())
    assert restarts == 3 and new_pid not in (None, pid) and not adopted
    assert alive(os.getpid(), start_time(os.getpid()))


@pytest.mark.parametrize(("annotations", "expected"), [
    ({"rollouts.io/pid": "42", "rollouts.io/pid-start": "7"}, (42, 7)),
    ({"rollouts.io/pid": "42"}, (42, None)),
    ({"rollouts.io/pid": "x"}, None),
    ({}, None),
    (None, None),
], ids=["pid-and-start", "pid-only", "not-a-number", "none", "no-annotations"])
def test_recorded_process_annotations(annotations: dict[str, str] | None,
                                      expected: tuple[int, int | None] | None) -> None:
    assert recorded(annotations) == expected


def test_start_time_tells_a_recycled_pid_apart() -> None:
    mine = start_time(os.getpid())
    assert mine is not None and alive(os.getpid(), mine) and not alive(os.getpid(), mine + 1)
    assert start_time(2 ** 22 + 1) is None


def test_adopted_pod_keeps_its_recorded_address_and_no_new_pod_is_given_it(tmp_path: Path) -> None:
    recorded_ip = "127.1.200.3"
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "rollouts.demo.service"], start_new_session=True,
                               env={**os.environ, "PORT": str(port), "POD_IP": recorded_ip},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started = start_time(process.pid)
    # A pool whose next address is the recorded one: only the reservation keeps a new pod off it.
    pool = AddressPool("127.1.0.0/16", start=200 * 256 + 3)

    async def scenario() -> tuple[str, str, str]:
        sup = supervisor(tmp_path, detached=True, addresses=pool)
        await sup.adopt_pod("web-1", {"app": "web"}, demo(), "default", port=port, pid=process.pid,
                            pid_start=started, ip=recorded_ip)
        ready = await until(sup, "web-1", lambda s: s.ready)  # probed on its own address
        fresh = await sup.ensure_pod("web-2", {"app": "web"}, demo())
        await sup.close(grace_seconds=5)
        return ready.ip, fresh.ip, str(pool.taken())

    try:
        adopted_ip, new_ip, left = run(scenario())
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert adopted_ip == recorded_ip and new_ip != recorded_ip
    assert left == "set()"  # both addresses released when their pods stopped
