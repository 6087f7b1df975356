"""Chaos family "proxy-load": the local ingress proxy at 10x the demo's usual load while a canary's weights
change (0 -> 10 -> 25 -> 50 -> 100) and the rollout is aborted back to 0.

One real operator (`rollouts controller`) on a temporary home, which runs that home's local cluster (real
demo pods, Service listeners, the real ingress proxy). A load process sends RATE requests/s open-loop
(each request at its own scheduled moment, whatever the answers do) through the `shop` Ingress, each
tagged `?run=R&i=N`; the demo pods answer their version. Each run releases a fresh image
(`rollouts-demo:<tag>`), lets the operator walk the weights, aborts at 100 % through the CLI's own abort
(`rollouts.api.actions.abort`) and keeps loading for one more period.

When did a weight take effect? The proxy logs `ingress: routes updated: ... weight W/T` right after it swaps
its routing table, before it awaits anything, on the loop that routes requests: a request sent after that
line's timestamp (+1 ms for the log's millisecond resolution) is routed by that table or a later one, a
request answered before the next line's timestamp by that table or an earlier one.

Judged per run:
- lost: a request without a 200 answer (error, timeout, 5xx), or client and server counts that differ (the
  proxy's access log must hold exactly the requests the client sent);
- wrong route: an answer from a revision with no weight in every table that could have routed it (the
  canary's version while the weight is 0, after the abort included; any other version at any time). The
  stable version may always answer (see `allowed`); its answers under 100 % are counted apart;
- split: per weight period with 0 < W < 100, the canary share of the requests wholly inside it, chi-square
  against W (1 degree of freedom), p must exceed 0.001.

The first run of a bench invocation loads for `long_seconds` (60 s: the issue's "10x for 60 s"); the others
use short periods so a hundred runs stay cheap.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

FAMILY = "proxy-load"
RATE = 200.0                 # requests/s: 10x the demo load generator's usual ~20 req/s
STABLE = "blue"
WEIGHTS = (10, 25, 50, 100)
P_MIN = 0.001
LOG_RESOLUTION = 0.001       # the cluster log's timestamps are in milliseconds
INGRESS = "default/shop"

_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: ingress: routes updated: (.*)$")
_WEIGHT = re.compile(r"default/shop \S+ canary \S+ weight (\d+)/(\d+)")


def manifest() -> str:
    from rollouts.demo import releases

    # The scale-down delays stay Argo's (abortScaleDownDelaySeconds 30 s): requests the canary took before the
    # abort took effect (seconds of queueing at 10x load on a loaded machine) finish before its pods stop.
    shop = releases.shop_canary([{"setWeight": 10}, {"pause": {}}], delay=None,
                                image=f"rollouts-demo:{STABLE}")
    return releases.to_yaml(shop, *releases.shop_services())


def steps(period: float) -> list[dict[str, Any]]:
    """setWeight W, pause `period` for each weight; an indefinite pause at 100 %, where the run aborts."""
    out: list[dict[str, Any]] = []
    for weight in WEIGHTS:
        out.append({"setWeight": weight})
        out.append({"pause": {} if weight == 100 else {"duration": f"{max(1, round(period))}s"}})
    return out


# --- judging (pure) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    index: int
    sent: float
    received: float
    status: int
    version: str


@dataclass(frozen=True)
class Period:
    start: float       # when the routing table with this weight took effect (Unix seconds)
    weight: int
    total: int = 100


def read_periods(log_text: str, since: float) -> list[Period]:
    """The weight periods of the `shop` route from the cluster log: the table in force at `since` (0 when
    no canary route), then one period per change."""
    periods: list[Period] = []
    for line in log_text.splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        stamp = time.mktime(datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f").timetuple()) + int(
            match[1][-3:]) / 1000
        found = _WEIGHT.search(match[2])
        weight, total = (int(found[1]), int(found[2])) if found else (0, 100)
        if periods and periods[-1].weight * total == weight * periods[-1].total:
            continue  # the same weight again (another Ingress changed): one period
        periods.append(Period(stamp, weight, total))
    before = [p for p in periods if p.start <= since]
    first = before[-1] if before else Period(0.0, 0)
    return [Period(0.0, first.weight, first.total), *[p for p in periods if p.start > since]]


def allowed(weight: int, total: int, canary: str) -> set[str]:
    """The versions that may answer under this weight. The stable one always may: it is where an abort
    sends traffic back, and Argo's abort also points the canary Service at the stable pods, which the
    runtime can apply before the weight drops to 0 (those answers are counted apart, as `stable_at_100`)."""
    return {STABLE} if weight <= 0 else {STABLE, canary}


def chi_square_p(n: int, canary: int, share: float) -> float:
    """Two-sided p-value of `canary` of `n` under a binomial split `share` (chi-square, 1 dof)."""
    if n == 0 or share <= 0 or share >= 1:
        return 1.0
    expected = n * share
    stat = (canary - expected) ** 2 / expected + ((n - canary) - (n - expected)) ** 2 / (n - expected)
    return math.erfc(math.sqrt(stat / 2))


@dataclass
class Verdict:
    lost: int
    wrong: int
    stable_at_full: int   # stable answers while the canary weight was 100 % (the abort's Service switch)
    split_failures: int
    min_p: float
    periods: list[tuple[int, int, int, float]]  # weight, requests, canary answers, p
    details: list[str]


def judge(answers: list[Answer], sent: int, served: set[int], periods: list[Period], canary: str) -> Verdict:
    details: list[str] = []
    lost = sum(1 for a in answers if a.status != 200) + (sent - len(answers))
    answered = {a.index for a in answers if a.status == 200}
    missing_server = len(answered - served)
    extra_server = len(served - set(range(sent)))
    lost += missing_server + extra_server
    if lost:
        codes = Counter(f"{a.status} {a.version}".strip() for a in answers if a.status != 200)
        details.append(f"{lost} lost: {sent - len(answers)} unanswered, non-200 {dict(codes)}, "
                       f"{missing_server} answered but not in the access log, {extra_server} logged but never sent")
    starts = [p.start for p in periods]
    wrong = stable_at_full = 0
    inside: dict[int, list[Answer]] = {}
    for answer in answers:
        if answer.status != 200:
            continue
        # Tables that could have routed it: from the last one in force before it was sent to the last one
        # in force before it was answered.
        first = max(0, sum(1 for s in starts if s + LOG_RESOLUTION <= answer.sent) - 1)
        last = max(0, sum(1 for s in starts if s < answer.received) - 1)
        ok_versions = set().union(*(allowed(p.weight, p.total, canary) for p in periods[first:last + 1]))
        if answer.version not in ok_versions:
            wrong += 1
            if wrong <= 3:
                details.append(f"request {answer.index} answered by {answer.version!r} under weight(s) "
                               f"{[p.weight for p in periods[first:last + 1]]}")
        if first == last:
            inside.setdefault(first, []).append(answer)
            period = periods[first]
            if period.weight >= period.total and answer.version == STABLE:
                stable_at_full += 1
    split: list[tuple[int, int, int, float]] = []
    failures = 0
    min_p = 1.0
    for position, items in sorted(inside.items()):
        period = periods[position]
        if not 0 < period.weight < period.total:
            continue
        hits = sum(1 for a in items if a.version == canary)
        p = chi_square_p(len(items), hits, period.weight / period.total)
        split.append((period.weight, len(items), hits, p))
        min_p = min(min_p, p)
        if p <= P_MIN:
            failures += 1
            details.append(f"weight {period.weight}: {hits}/{len(items)} canary answers, chi-square p={p:.2g}")
    if stable_at_full:
        details.append(f"{stable_at_full} answered by the stable version while the weight was 100 %")
    return Verdict(lost, wrong, stable_at_full, failures, min_p, split, details)


# --- load process -----------------------------------------------------------------------------------


def load_main(url: str, rate: float, out: str) -> None:
    """Child process: GET url&i=N at `rate`/s open-loop until stdin closes, then write the answers."""
    import aiohttp

    answers: list[list[Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.run_in_executor(None, sys.stdin.buffer.read)
        connector = aiohttp.TCPConnector(limit=400)
        # Generous: an answer that comes late under 10x load on a loaded machine is slow, not lost.
        timeout = aiohttp.ClientTimeout(total=60)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def one(index: int) -> None:
                sent = time.time()
                status, version = 0, ""
                try:
                    async with session.get(f"{url}&i={index}") as response:
                        status = response.status
                        body = await response.read()
                        version = str(json.loads(body).get("version", "")) if status == 200 else ""
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    version = type(exc).__name__
                answers.append([index, sent, time.time(), status, version])

            began = time.monotonic()
            index = 0
            print("started", flush=True)
            while not stop.done():
                task = asyncio.create_task(one(index))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                index += 1
                delay = began + index / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            if tasks:
                await asyncio.gather(*tasks)
        Path(out).write_text(json.dumps({"sent": index, "answers": answers}))

    asyncio.run(main())


class LoadProcess:
    def __init__(self, url: str, rate: float, out: Path) -> None:
        self.out = out
        self.process = subprocess.Popen([sys.executable, __file__, "--load", url, str(rate), str(out)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"started":
            raise RuntimeError("the load process did not start")
        self.began = time.time()

    def finish(self) -> tuple[int, list[Answer]]:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=120)
        data = json.loads(self.out.read_text())
        return int(data["sent"]), [Answer(int(i), float(s), float(r), int(c), str(v))
                                   for i, s, r, c, v in data["answers"]]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# --- runs -------------------------------------------------------------------------------------------


def served_indexes(access_log: Path, run_tag: str, offset: int = 0) -> set[int]:
    """Request indexes of this run in the proxy's access log (`... GET /?run=TAG&i=N 200 ...`)."""
    pattern = re.compile(rf" GET /\?run={re.escape(run_tag)}&i=(\d+) ")
    try:
        with access_log.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return set()
    return {int(m[1]) for m in pattern.finditer(text)}


def _last_routes_line(log_path: Path) -> int:
    """The offset of the log's last `routes updated` line (the table in force now), or its end."""
    data = log_path.read_bytes()
    found = data.rfind(b"ingress: routes updated:")
    return data.rfind(b"\n", 0, found) + 1 if found >= 0 else len(data)


def _percentile(answers: list[Answer], q: float) -> float:
    latencies = sorted(a.received - a.sent for a in answers if a.status == 200)
    return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0


def _wait(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def one_run(ctl: Any, store: Any, port: int, number: int, seed: int, period: float, workdir: Path) -> Any:
    from chaoslib import Outcome
    from rollouts.api import actions

    began = time.monotonic()
    tag = f"s{seed}r{number}"
    canary = f"v-{tag}"
    log_path = ctl.home / "logs" / "apiserver.log"
    access_log = ctl.home / "logs" / "ingress.log"
    # Earlier runs' lines are never read again; the line in force at the start is looked up once.
    offset, access_offset = _last_routes_line(log_path), access_log.stat().st_size
    load = LoadProcess(f"http://127.0.0.1:{port}/?run={tag}", RATE, workdir / f"answers-{tag}.json")
    try:
        since = load.began
        time.sleep(min(1.0, period))
        store.patch("Rollout", "default", "shop", {"spec": {
            "template": {"spec": {"containers": [{"name": "shop", "image": f"rollouts-demo:{canary}"}]}},
            "strategy": {"canary": {"steps": steps(period)}}}})

        def weight_periods() -> list[Period]:
            with log_path.open("rb") as log:  # from this run's start: the log grows with every run
                log.seek(offset)
                return read_periods(log.read().decode(errors="replace"), since)

        _wait(lambda: any(p.weight == 100 for p in weight_periods()), 60 + 5 * period, "weight 100")
        time.sleep(period)
        actions.abort(store, "default", "shop")
        _wait(lambda: weight_periods()[-1].weight == 0, 30, "weight 0 after the abort")
        time.sleep(period)
        sent, answers = load.finish()
    finally:
        load.kill()
    periods = weight_periods()
    verdict = judge(answers, sent, served_indexes(access_log, tag, access_offset), periods, canary)
    status = store.get("Rollout", "default", "shop").get("status") or {}
    seen = [p.weight for p in periods]
    wall = (answers[-1].sent - answers[0].sent) if answers else 0.0
    ok = not (verdict.lost or verdict.wrong or verdict.split_failures) and seen[-1] == 0 and 100 in seen
    split = ", ".join(f"{w}%: {h}/{n} p={p:.2g}" for w, n, h, p in verdict.periods)
    return Outcome(
        family=FAMILY,
        fault=f"{RATE:.0f} req/s through the ingress for {wall:.0f}s while weights {seen} (abort at 100)",
        final=f"{status.get('phase', '?')} abort={bool(status.get('abort'))} weight {seen[-1]}",
        ok=ok,
        wrong_routes=verdict.lost + verdict.wrong,
        seconds=time.monotonic() - began,
        detail="; ".join([f"{sent} sent, {len(answers)} answered, latency p50 {_percentile(answers, 0.5):.3f}s "
                          f"p99 {_percentile(answers, 0.99):.3f}s; split {split}", *verdict.details]),
        extra={"requests": float(sent), "rate": sent / wall if wall else 0.0, "min_p": verdict.min_p,
               "p50_ms": _percentile(answers, 0.5) * 1e3, "p99_ms": _percentile(answers, 0.99) * 1e3,
               "lost": float(verdict.lost), "misrouted": float(verdict.wrong),
               "stable_at_100": float(verdict.stable_at_full)},
    )


def run(runs: int, seed: int, workdir: Path, *, long_seconds: float = 60.0, period: float = 1.0) -> list[Any]:
    """`runs` releases under load on one local cluster + operator; the first loads for `long_seconds`
    (five weight periods), the others for periods of `period` seconds (0: every run short)."""
    for folder in Path(__file__).resolve().parents[1:3]:  # bench/ (chaoslib) and the repository (tests.e2e)
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    from tests.e2e.harness import ControllerProcess

    from chaoslib import Outcome
    from rollouts.cli.connection import connect

    workdir = Path(workdir) / FAMILY
    workdir.mkdir(parents=True, exist_ok=True)
    ctl = ControllerProcess(workdir / f"home-{seed}")
    outcomes: list[Any] = []
    ctl.start()
    try:
        path = workdir / "shop.yaml"
        path.write_text(manifest())
        ctl.cli("apply", "-f", str(path))
        ctl.cli("status", "shop", "--timeout", "90s")
        port = ctl.ingress_port("shop")
        store = connect(ctl.home)
        try:
            for number in range(runs):
                length = long_seconds / 5 if number == 0 and long_seconds > 0 else period
                try:
                    outcomes.append(one_run(ctl, store, port, number, seed, length, workdir))
                except Exception as exc:  # noqa: BLE001 - one run that cannot finish is one failed outcome
                    outcomes.append(Outcome(FAMILY, f"release {number} under load", "did not finish", False,
                                            detail=f"{type(exc).__name__}: {exc}\n{ctl.tail(15)}"))
        finally:
            store.close()
    finally:
        ctl.stop_leaving_no_pods()
    return outcomes


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--load":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    load_main(sys.argv[2], float(sys.argv[3]), sys.argv[4])
