"""Validating loaded manifests: structure (schema) first, then the semantic rules for each kind, then
references between the objects given together. Pure: objects in, located `Problem`s out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.core import Ingress, Secret, Service
from rollouts.spec.experiment import Experiment
from rollouts.spec.inventory import Inventory
from rollouts.spec.kinds import FOREIGN_KINDS, KINDS, LOCAL_CONFIG_KINDS
from rollouts.spec.loader import LoadedObject, LoadResult
from rollouts.spec.problems import FieldPath, Finding, Problem, format_path, warning
from rollouts.spec.rollout import Rollout
from rollouts.spec.rules_analysis import check_analysis_spec, compiler
from rollouts.spec.rules_core import (
    check_experiment,
    check_ingress,
    check_metadata,
    check_secret,
    check_service,
)
from rollouts.spec.rules_input import check_input
from rollouts.spec.rules_rollout import check_rollout
from rollouts.spec.structure import check_structure


@dataclass
class Checked:
    """One object after validation: its model (None when its structure is too broken) and its problems."""

    obj: LoadedObject
    model: BaseModel | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)


def semantic_findings(model: BaseModel, inventory: Inventory) -> list[Finding]:
    """The semantic rules of the model's kind."""
    findings = check_metadata(model)
    expr = compiler()
    if isinstance(model, Rollout):
        findings += check_rollout(model, inventory)
    elif isinstance(model, AnalysisTemplate | ClusterAnalysisTemplate | AnalysisRun):
        findings += check_analysis_spec(model.spec, compiler=expr)
        for index, ref in enumerate(getattr(model.spec, "templates", None) or []):
            kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
            if inventory.find(kind, ref.template_name, model.metadata.namespace) is None:
                findings.append(
                    warning(("spec", "templates", index, "templateName"),
                            f'{kind} "{ref.template_name}" is not in the input (it must exist in the cluster)')
                )
    elif isinstance(model, Service):
        findings += check_service(model)
    elif isinstance(model, Ingress):
        findings += check_ingress(model, inventory)
    elif isinstance(model, Secret):
        findings += check_secret(model)
    elif isinstance(model, Experiment):
        findings += check_experiment(model)
    return findings


# Problems listed per object: past this, an object is garbage and a longer list helps nobody (and costs time).
MAX_PROBLEMS_PER_OBJECT = 100


class _Removed:
    """The parts the structural pass reported (and removed), for finding overlaps in time linear in the
    path length rather than in the number of removed parts (a hostile object can have tens of thousands)."""

    def __init__(self, removed: Sequence[FieldPath]) -> None:
        self.gone = set(removed)
        self.parents = {gone[:-1] for gone in removed}

    def overlaps(self, path: FieldPath) -> bool:
        """Whether a finding is inside a removed part, or about the mapping that lost it."""
        return path in self.parents or any(path[:end] in self.gone for end in range(len(path) + 1))


def _capped(findings: list[Finding]) -> list[Finding]:
    if len(findings) <= MAX_PROBLEMS_PER_OBJECT:
        return findings
    more = len(findings) - MAX_PROBLEMS_PER_OBJECT
    return findings[:MAX_PROBLEMS_PER_OBJECT] + [
        Finding((), f"{more} more problem(s) in this object not listed (the first {MAX_PROBLEMS_PER_OBJECT} are)")
    ]


def _problem(obj: LoadedObject, finding: Finding, kind: str) -> Problem:
    return Problem(
        obj.source, obj.line_of(finding.path), kind, obj.name, format_path(finding.path), finding.message,
        finding.severity,
    )


def _structure(obj: LoadedObject) -> tuple[BaseModel | None, list[Finding], list[FieldPath]]:
    # `obj.kind` is "" unless the manifest's kind is a string: a list or mapping there is unhashable and must
    # reach check_structure's type message, not a set lookup.
    kind = obj.kind
    if (obj.api_version, kind) in LOCAL_CONFIG_KINDS:
        return None, [], []
    if kind in FOREIGN_KINDS and (obj.api_version, kind) not in KINDS:
        return None, [warning((), f"{kind} is not used by rollouts; skipped")], []
    return check_structure(obj.data)


def validate_objects(objects: Sequence[LoadedObject]) -> list[Checked]:
    """Every object checked on its own and against the others."""
    first = [(obj, *_structure(obj)) for obj in objects]
    inventory = Inventory.of(model for _, model, _, _ in first if model is not None)
    checked: list[Checked] = []
    for obj, model, structural, removed in first:
        kind = obj.kind or "<no kind>"
        findings = list(obj.findings) + structural
        gone = _Removed(removed)
        if (obj.api_version, obj.kind) in KINDS:
            findings += [f for f in check_input(obj.data) if not gone.overlaps(f.path)]
        if model is not None:
            try:
                semantic = semantic_findings(model, inventory)
            except Exception as exc:  # a rule tripping over an odd object must not hide the others' results
                semantic = [Finding((), f"internal error while checking: {type(exc).__name__}: {exc}")]
            findings += [f for f in semantic if not gone.overlaps(f.path)]
        problems = sorted(
            (_problem(obj, f, kind) for f in _capped(findings)),
            key=lambda p: (p.line, p.severity != "error"),
        )
        checked.append(Checked(obj, model, problems))
    return checked


def validate(result: LoadResult) -> list[Problem]:
    """All problems of a load, in input order (file problems where they occurred, objects' in line order)."""
    by_object = {id(c.obj): c for c in validate_objects(result.objects)}
    problems: list[Problem] = []
    for item in result.order:
        if isinstance(item, Problem):
            problems.append(item)
        else:
            problems.extend(by_object[id(item)].problems)
    return problems
