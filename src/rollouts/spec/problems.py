"""The one error type manifest loading and validation produce: a located, user-facing problem."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

# A path into a manifest: mapping keys and list indexes, e.g. ("spec", "strategy", "canary", "steps", 2).
FieldPath = tuple[str | int, ...]


def format_path(path: FieldPath) -> str:
    """Argo's spelling of a field path: `spec.strategy.canary.steps[2].setWeight`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """Something wrong (error) or worth knowing (warning) about one manifest object or input file."""

    file: str
    line: int
    kind: str
    name: str
    path: str
    message: str
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def format(self) -> str:
        """One line: `FILE:LINE: Kind/name: field.path: message`, warnings suffixed `(warning)`."""
        parts = [f"{self.file}:{self.line}" if self.line else self.file]
        if self.kind:
            parts.append(f"{self.kind}/{self.name or '<unnamed>'}")
        if self.path:
            parts.append(self.path)
        text = ": ".join(parts) + ": " + self.message
        return text + " (warning)" if self.severity == "warning" else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """A problem found inside one object before it is given its file and line."""

    path: FieldPath
    message: str
    severity: Severity = "error"
    # Findings from the structural (schema) pass; semantic findings at the same place are dropped.
    structural: bool = field(default=False, compare=False)


def error(path: FieldPath, message: str) -> Finding:
    return Finding(path, message, "error")


def warning(path: FieldPath, message: str) -> Finding:
    return Finding(path, message, "warning")
