"""`rollouts load NAME`: a steady, bounded request rate to a rollout's service (through its Ingress, else its
active Service; see load_target), with a one-line summary per interval and a final one on Ctrl-C, so an
operator can drive the runbook's gates locally.

Open loop: requests start on a fixed schedule whatever the answers' latency (a slow release must not slow
the load down, or its latency would hide in a lower rate). At most `max_in_flight` requests are open; a
scheduled request that finds none free is not sent and is counted as skipped, as are the slots of a
stall longer than a second (never sent as a burst). Each request uses its own
connection so the ingress picks a backend per request. Errors are answers >= 500 and requests that got no
answer (refused, reset, timed out); the percentile is over the answered requests.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
    rollout_name,
)
from rollouts.cli.load_target import LoadTarget
from rollouts.cli.main import app

MAX_RPS = 1000.0
MAX_CATCH_UP = 1.0  # seconds behind schedule the loop still catches up on
NO_ANSWER = "(no answer)"
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def parse_header(text: str) -> tuple[str, str]:
    """`'X-Canary: true'` -> ("X-Canary", "true"); the name must be an HTTP token, the value one line."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not name or not set(name) <= _TOKEN:
        raise ValueError(f"--header {text!r} is not 'Name: value' (e.g. --header 'X-Canary: true')")
    if "\r" in value or "\n" in value:
        raise ValueError(f"--header {name}: the value must be a single line")
    return name, value


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ascending values (None for none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class _LatencyHistogram:
    """Answered-request latencies for the whole run in log buckets of 2 % width, so a long run's memory
    stays bounded; the percentile is the upper edge of its bucket (at most 2 % high)."""

    _BASE = 1.02
    _FLOOR = 1e-4  # 0.1 ms: everything faster shares the first bucket

    def __init__(self) -> None:
        self._counts: Counter[int] = Counter()
        self.total = 0

    def add(self, seconds: float) -> None:
        index = 0 if seconds <= self._FLOOR else math.ceil(math.log(seconds / self._FLOOR, self._BASE))
        self._counts[index] += 1
        self.total += 1

    def percentile(self, q: float) -> float | None:
        if not self.total:
            return None
        rank, seen = max(1, math.ceil(q * self.total)), 0
        for index in sorted(self._counts):
            seen += self._counts[index]
            if seen >= rank:
                return float(self._FLOOR * self._BASE**index)
        return None  # not reached: the counts add up to total


@dataclass
class Window:
    """What happened in one summary interval (or the whole run)."""

    requests: int = 0
    errors: int = 0
    skipped: int = 0
    latencies: list[float] = field(default_factory=list)
    versions: Counter[str] = field(default_factory=Counter)

    def p95(self) -> float | None:
        return percentile(sorted(self.latencies), 0.95)


@dataclass
class LoadStats:
    """Counts of the current interval and of the whole run; the load loop records, the printer reads."""

    window: Window = field(default_factory=Window)
    requests: int = 0
    errors: int = 0
    skipped: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    latency: _LatencyHistogram = field(default_factory=_LatencyHistogram)

    def record(self, status: int | None, seconds: float, version: str | None) -> None:
        failed = status is None or status >= 500
        self.window.requests += 1
        self.requests += 1
        if failed:
            self.window.errors += 1
            self.errors += 1
        if status is not None:
            self.window.latencies.append(seconds)
            self.latency.add(seconds)
        label = version or (NO_ANSWER if status is None else "")
        if label:
            self.window.versions[label] += 1
            self.versions[label] += 1

    def skip(self, count: int = 1) -> None:
        self.window.skipped += count
        self.skipped += count

    def take_window(self) -> Window:
        window, self.window = self.window, Window()
        return window


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.0095 else f"{seconds * 1000:.1f} ms"


def summary(requests: int, errors: int, skipped: int, p95: float | None, versions: Counter[str]) -> str:
    share = f"{100.0 * errors / requests:.1f}%" if requests else "-"
    text = f"requests {requests}  errors {errors} ({share})  p95 {_ms(p95)}"
    if versions:
        text += "  versions " + " ".join(f"{v}={n}" for v, n in sorted(versions.items()))
    if skipped:
        text += f"  skipped {skipped} (not sent: the client could not keep the rate)"
    return text


def _clock_label(elapsed: float) -> str:
    minutes, seconds = divmod(int(round(elapsed)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


async def run_load(target: LoadTarget, *, rps: float, duration: float | None, headers: dict[str, str],
                   interval: float = 10.0, timeout: float = 10.0, out: TextIO = sys.stdout,
                   stop: asyncio.Event | None = None,
                   on_signal: Callable[[asyncio.Event], None] | None = None) -> LoadStats:
    """Send `rps` GETs per second until `duration` (None: until stopped) or `stop`; print a summary line per
    `interval` and a final one. Returns the run's counts."""
    import aiohttp

    stop = stop or asyncio.Event()
    if on_signal is not None:
        on_signal(stop)
    stats = LoadStats()
    request_headers = dict(headers)
    if target.host_header and not any(k.lower() == "host" for k in request_headers):
        request_headers["Host"] = target.host_header
    max_in_flight = max(16, min(2000, math.ceil(rps * timeout)))
    slots = asyncio.Semaphore(max_in_flight)
    in_flight: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession) -> None:
        started = time.monotonic()
        try:
            async with session.get(target.url, headers=request_headers, allow_redirects=False) as response:
                await response.read()
                stats.record(response.status, time.monotonic() - started, response.headers.get("X-Version"))
        except (aiohttp.ClientError, TimeoutError, OSError):
            stats.record(None, time.monotonic() - started, None)
        finally:
            slots.release()

    def print_line(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    started = time.monotonic()
    period = 1.0 / rps
    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    why = "done"
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout,
                                     headers={"User-Agent": "rollouts-load"}) as session:
        next_at, next_report = started, started + interval
        while True:
            now = time.monotonic()
            if stop.is_set():
                why = "stopped"
                break
            if duration is not None and now - started >= duration:
                break
            if now >= next_report:
                window = stats.take_window()
                print_line(f"[{_clock_label(now - started):>6}] " + summary(
                    window.requests, window.errors, window.skipped, window.p95(), window.versions))
                next_report += interval
            if now - next_at > MAX_CATCH_UP:
                # This process was starved (a loaded machine, a suspended terminal): drop the missed slots
                # rather than send them as one burst.
                missed = int((now - next_at) / period)
                stats.skip(missed)
                next_at += missed * period
            if now >= next_at:
                next_at += period
                if slots.locked():
                    stats.skip()
                else:
                    await slots.acquire()
                    task = asyncio.create_task(one(session))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                continue
            wake = min(next_at, next_report)
            if duration is not None:
                wake = min(wake, started + duration)
            try:
                await asyncio.wait_for(stop.wait(), max(0.0, wake - time.monotonic()))
            except TimeoutError:
                pass
        # Requests already sent are answered (or time out) before the final count; after Ctrl-C they get
        # a short grace only, so the total comes at once.
        if in_flight:
            await asyncio.wait(set(in_flight), timeout=timeout + 1.0 if why == "done" else 2.0)
            for task in list(in_flight):
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
    elapsed = time.monotonic() - started
    print_line(f"total {_clock_label(elapsed)} ({why}): " + summary(
        stats.requests, stats.errors, stats.skipped, stats.latency.percentile(0.95), stats.versions))
    return stats


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)


@app.command("load")
def load_command(
    name: str = typer.Argument(..., help="The Rollout whose service gets the requests."),
    namespace: str | None = NAMESPACE_OPTION,
    rps: float = typer.Option(20.0, "--rps", help=f"Requests per second (at most {MAX_RPS:g})."),
    duration: str = typer.Option("5m", "--duration", help="How long to send, e.g. 30s, 5m, 1h; 0 = until Ctrl-C."),
    header: list[str] = typer.Option([], "--header", "-H", help="Extra request header 'Name: value' (repeatable)."),
    preview: bool = typer.Option(False, "--preview", help="Send to a blue/green rollout's preview Service."),
    path: str | None = typer.Option(None, "--path", help="Request path (default: the Ingress rule's path, or /)."),
    interval: str = typer.Option("10s", "--interval", help="How often a summary line is printed."),
    timeout: str = typer.Option("10s", "--timeout", help="A request without an answer by then is an error."),
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Send a steady request rate to a rollout's service: through its Ingress when it has one, else its
    active Service (--preview: the blue/green preview Service). Prints requests, errors and p95 latency
    every 10 s and a total at the end or on Ctrl-C. Exit 0 (also when the service answered errors)."""
    from dataclasses import replace

    from rollouts.cli.load_target import TargetError, resolve_target
    from rollouts.spec.duration import DurationError, parse_duration

    if not 0 < rps <= MAX_RPS:
        fail(f"--rps {rps:g}: give a rate above 0 and at most {MAX_RPS:g} requests per second", code=2)
    try:
        seconds = parse_duration(duration)
        every = parse_duration(interval)
        wait = parse_duration(timeout)
        headers = dict(parse_header(h) for h in header)
    except (DurationError, ValueError) as exc:
        fail(str(exc), code=2)
    if seconds < 0 or every <= 0 or wait <= 0:
        fail("--duration must be 0 or more, --interval and --timeout above 0 (e.g. 5m, 10s)", code=2)
    if path is not None and not path.startswith("/"):
        fail(f"--path {path!r} must start with /", code=2)
    ns = namespace_or_default(namespace)
    store = open_store(home)
    try:
        target = resolve_target(store, ns, rollout_name(name), preview=preview)
    except TargetError as exc:
        fail(str(exc))
    finally:
        store.close()
    if path is not None:
        base = target.url.split("/", 3)
        target = replace(target, url="/".join(base[:3]) + path)
    until = f"for {duration}" if seconds else "until Ctrl-C"
    typer.echo(f"sending {rps:g} requests/s to {target.describe()} {until}; Ctrl-C stops and prints the total")
    asyncio.run(run_load(target, rps=rps, duration=seconds or None, headers=headers, interval=every,
                         timeout=wait, on_signal=_stop_on_signals))
