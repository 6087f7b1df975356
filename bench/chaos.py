"""Chaos bench: faults injected into real releases on a real local cluster with its operator(s), one table of
what was tried and how it ended (issue #18's closing note quotes it).

Every module of `bench/chaoslib` exposing `FAMILY` and `run(runs, seed, workdir)` is a fault family (see
`chaoslib/__init__.py`); this driver runs each `--runs` times, prints `chaoslib.render(chaoslib.table(...))`,
the families' extra figures, and one line per failed outcome, and exits 1 if any counter is non-zero.

    python bench/chaos.py --runs 3 --families operator-kill,apiserver-restart --seed 1
    python bench/chaos.py --from-records WORKDIR/operator-kill/outcomes.jsonl   # a run cut short
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for `chaoslib`
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for `tests.e2e.harness`

import chaoslib  # noqa: E402


def families() -> dict[str, ModuleType]:
    """FAMILY -> module, for every module of chaoslib that is a family (helpers start with `_`)."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(chaoslib.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"chaoslib.{info.name}")
        family = getattr(module, "FAMILY", None)
        if isinstance(family, str) and callable(getattr(module, "run", None)):
            found[family] = module
    return found


def run_families(names: Sequence[str], runs: int, seed: int, workdir: Path) -> list[chaoslib.Outcome]:
    known = families()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"--families: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    outcomes: list[chaoslib.Outcome] = []
    for index, name in enumerate(names):
        started = time.monotonic()
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            found = known[name].run(runs, seed + index, folder)
        except Exception as exc:  # noqa: BLE001 - a family that breaks is a failed row, not a lost table
            found = [chaoslib.Outcome(name, "family setup", "crashed", ok=False, seconds=time.monotonic() - started,
                                      detail=f"{type(exc).__name__}: {str(exc)[:400]} ... "
                                             + "".join(traceback.format_exception(exc))[-1000:])]
        outcomes.extend(found)
        print(f"{name}: {len(found)} runs, {sum(o.failures > 0 for o in found)} failed, "
              f"{time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    return outcomes


def extras(outcomes: Sequence[chaoslib.Outcome]) -> list[str]:
    """Per family, the sum of each extra figure its outcomes carry (e.g. 409s seen and retried)."""
    sums: dict[str, dict[str, float]] = {}
    for outcome in outcomes:
        for key, value in outcome.extra.items():
            sums.setdefault(outcome.family, {}).setdefault(key, 0.0)
            sums[outcome.family][key] += value
    return [f"{family}: " + ", ".join(f"{key}={value:g}" for key, value in figures.items())
            for family, figures in sums.items()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per family (default 3)")
    parser.add_argument("--families", default="", help="comma-separated FAMILY names (default: all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="where the clusters live (default: a temporary folder)")
    parser.add_argument("--from-records", type=Path, nargs="+", metavar="JSONL",
                        help="print the table of runs already recorded (a family's outcomes.jsonl) and exit")
    args = parser.parse_args(argv)
    if args.from_records:
        recorded = [chaoslib.Outcome(**json.loads(line)) for path in args.from_records
                    for line in path.read_text().splitlines() if line.strip()]
        return report(recorded, f"recorded in {', '.join(map(str, args.from_records))}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    # SIGTERM unwinds like Ctrl-C: the families' clusters and operators are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [n.strip() for n in args.families.split(",") if n.strip()] or list(families())
    started = time.monotonic()
    if args.workdir is not None:
        outcomes = run_families(names, args.runs, args.seed, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="rollouts-chaos-") as folder:
            outcomes = run_families(names, args.runs, args.seed, Path(folder))
    return report(outcomes, f"seed {args.seed}, {time.monotonic() - started:.0f}s")


def report(outcomes: Sequence[chaoslib.Outcome], how: str) -> int:
    """Print the table, the extra figures and the failures; 1 if anything failed."""
    print(chaoslib.render(chaoslib.table(outcomes)))
    for line in extras(outcomes):
        print(line)
    failed = [o for o in outcomes if o.failures]
    for outcome in failed:
        print(f"FAILED {outcome.family}: {outcome.fault} -> {outcome.final}: {outcome.detail}")
    print(f"{len(outcomes)} runs, {len(failed)} failed, {how}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
