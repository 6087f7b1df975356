"""Shared vocabulary of the chaos bench (`bench/chaos.py`): one Outcome per fault tried, and the table.

Each fault family is a module of this package exposing

    FAMILY: str                                   # e.g. "operator-kill"
    def run(runs: int, seed: int, workdir: Path) -> list[Outcome]

`bench/chaos.py` imports every family, runs each `--runs` times with its own seed, and prints one table.
A family decides per run what "safe" means for its fault and records it in the Outcome counters, which the
table sums. Every counter except `runs` must be zero on a good run: the bench exits 1 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Outcome:
    """What one run of one fault did. `fault` says exactly what was injected and when ("SIGKILL operator
    during analysis at step 2"); `final` the end state observed ("Healthy rev 2", "Degraded aborted");
    `detail` anything a reader needs to reproduce or judge it."""

    family: str
    fault: str
    final: str
    ok: bool
    lost_writes: int = 0          # an acknowledged write (abort, promote, status) later missing
    unsafe_promotions: int = 0    # promoted / advanced without the evidence the gates required
    double_actions: int = 0       # two actors (operators, workers) acting on one object at once
    corrupted_stores: int = 0     # PRAGMA integrity_check not "ok", or a half-written object
    wrong_routes: int = 0         # a request lost, or sent to a revision no longer in the weights
    seconds: float = 0.0
    detail: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return (self.lost_writes + self.unsafe_promotions + self.double_actions + self.corrupted_stores
                + self.wrong_routes + (0 if self.ok else 1))


COLUMNS = ("family", "runs", "ok", "lost writes", "unsafe promotions", "double actions", "corrupted stores",
           "wrong routes", "mean s")


def table(outcomes: Iterable[Outcome]) -> list[tuple[str, ...]]:
    """Rows per family (in first-seen order) plus a total row: the figures the closing note quotes."""
    by_family: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_family.setdefault(outcome.family, []).append(outcome)
    rows: list[tuple[str, ...]] = []
    everything: list[Outcome] = []
    for family, items in [*by_family.items(), ("total", [])]:
        items = items or everything
        if family != "total":
            everything.extend(items)
        rows.append((family, str(len(items)), str(sum(o.ok for o in items)),
                     str(sum(o.lost_writes for o in items)), str(sum(o.unsafe_promotions for o in items)),
                     str(sum(o.double_actions for o in items)), str(sum(o.corrupted_stores for o in items)),
                     str(sum(o.wrong_routes for o in items)),
                     f"{sum(o.seconds for o in items) / max(1, len(items)):.1f}"))
    return rows


def render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(COLUMNS[i]), *(len(row[i]) for row in rows)) for i in range(len(COLUMNS))]
    lines = ["  ".join(name.ljust(w) for name, w in zip(COLUMNS, widths, strict=True))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)
