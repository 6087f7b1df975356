"""Argo's `get rollout` text: the summary block, then the NAME KIND STATUS AGE INFO tree, columns aligned
like Go's tabwriter (widest cell + 2 spaces). Colour is ANSI escapes, added only when asked for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from rollouts.views import glyphs
from rollouts.views.info import scale_down_info
from rollouts.views.model import AnalysisRunInfo, PodInfo, ReplicaSetInfo, RolloutInfo

LABEL_WIDTH = 17
Row = tuple[str, str, str, str, str]  # name (with tree prefix), kind, status, age, info


def paint(text: str, code: str | None, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color and code and text else text


def _status(icon: str, text: str, color: bool) -> str:
    return paint(f"{icon} {text}", glyphs.COLORS.get(icon), color)


def summary_lines(info: RolloutInfo, color: bool = False) -> list[str]:
    def line(label: str, value: object) -> str:
        return f"{label:<{LABEL_WIDTH}}{value}".rstrip()

    lines = [line("Name:", info.name), line("Namespace:", info.namespace),
             line("Status:", _status(info.icon, info.status, color))]
    if info.message:
        lines.append(line("Message:", info.message))
    lines.append(line("Strategy:", info.strategy))
    if info.strategy == "Canary":
        if info.step is not None:
            lines.append(line("  Step:", info.step))
        lines.append(line("  SetWeight:", info.set_weight))
        lines.append(line("  ActualWeight:", info.actual_weight))
    images = [f"{img.image} ({', '.join(img.tags)})" if img.tags else img.image for img in info.images]
    lines.append(line("Images:", images[0] if images else ""))
    lines.extend(" " * LABEL_WIDTH + image for image in images[1:])
    lines.append("Replicas:")
    for label, value in (("Desired", info.desired), ("Current", info.current), ("Updated", info.updated),
                         ("Ready", info.ready), ("Available", info.available)):
        lines.append(line(f"  {label}:", value))
    return lines


def replica_set_tags(rs: ReplicaSetInfo, now: datetime) -> str:
    tags = [t for t in ("canary", "stable", "active", "preview") if getattr(rs, t)]
    if rs.stable and rs.active:
        tags = ["stable", "active"]
    delay = scale_down_info(rs.scale_down_deadline, now) if rs.replicas and not tags else None
    return ",".join(tags + ([delay] if delay else []))


def run_counts(run: AnalysisRunInfo, color: bool = False) -> str:
    parts = [(glyphs.OK, run.successful), (glyphs.BAD, run.failed), (glyphs.UNKNOWN, run.inconclusive),
             (glyphs.WARNING, run.error)]
    return ",".join(paint(f"{icon} {count}", glyphs.COLORS.get(icon), color) for icon, count in parts if count)


def _pod_row(pod: PodInfo, prefix: str, color: bool) -> Row:
    info = f"ready:{pod.ready}" + (f",restarts:{pod.restarts}" if pod.restarts else "")
    return (f"{prefix}{glyphs.ICON_POD} {pod.name}", "Pod", _status(pod.icon, pod.status, color), pod.age, info)


def tree_rows(info: RolloutInfo, now: datetime, color: bool = False) -> list[Row]:
    rows: list[Row] = [(f"{glyphs.ICON_ROLLOUT} {info.name}", "Rollout", _status(info.icon, info.status, color),
                        info.age, "")]
    for i, rev in enumerate(info.revisions):
        last_rev = i == len(info.revisions) - 1
        rows.append((("└──" if last_rev else "├──") + f"{glyphs.ICON_REVISION} revision:{rev.revision}",
                     "", "", "", ""))
        indent = "   " if last_rev else "│  "
        children: list[ReplicaSetInfo | AnalysisRunInfo] = [*rev.replica_sets, *rev.analysis_runs]
        for j, child in enumerate(children):
            last = j == len(children) - 1
            branch = indent + ("└──" if last else "├──")
            if isinstance(child, ReplicaSetInfo):
                rows.append((f"{branch}{glyphs.ICON_REPLICASET} {child.name}", "ReplicaSet",
                             _status(child.icon, child.status, color), child.age, replica_set_tags(child, now)))
                pod_indent = indent + ("   " if last else "│  ")
                for k, pod in enumerate(child.pods):
                    pod_branch = pod_indent + ("└──" if k == len(child.pods) - 1 else "├──")
                    rows.append(_pod_row(pod, pod_branch, color))
            else:
                rows.append((f"{branch}{glyphs.ICON_ANALYSISRUN} {child.name}", "AnalysisRun",
                             _status(child.icon, child.phase, color), child.age, run_counts(child, color)))
    return rows


def _visible_len(text: str) -> int:
    # ANSI escapes take no columns.
    length, i = 0, 0
    while i < len(text):
        if text[i] == "\x1b":
            i = text.index("m", i) + 1
            continue
        length += 1
        i += 1
    return length


def align(rows: Iterable[tuple[str, ...]], padding: int = 2) -> list[str]:
    """Columns padded to their widest cell plus `padding`, trailing blanks trimmed (tabwriter style)."""
    table = [tuple(row) for row in rows]
    if not table:
        return []
    widths = [max(_visible_len(row[c]) for row in table) for c in range(len(table[0]))]
    lines = []
    for row in table:
        cells = [cell + " " * (widths[c] + padding - _visible_len(cell)) for c, cell in enumerate(row[:-1])]
        lines.append(("".join(cells) + row[-1]).rstrip())
    return lines


def render_rollout(info: RolloutInfo, now: datetime | None = None, color: bool = False) -> str:
    """The full `get rollout` text (summary, blank line, tree), ending with a newline."""
    moment = now or datetime.now(UTC)
    header: Row = ("NAME", "KIND", "STATUS", "AGE", "INFO")
    tree = align([header, *tree_rows(info, moment, color)])
    return "\n".join([*summary_lines(info, color), "", *tree]) + "\n"
