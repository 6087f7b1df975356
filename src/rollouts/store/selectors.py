"""Kubernetes label and field selectors: parsing (with precise errors) and matching; pure.

Label selector grammar: requirements joined by ",", each one of `key`, `!key`, `key=value`,
`key==value`, `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`. As in Kubernetes, `!=` and `notin`
also match objects that do not carry the label. Field selectors support `=`, `==` and `!=` on a fixed
set of fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rollouts.store.protocol import Invalid

LabelOp = Literal["exists", "!", "=", "!=", "in", "notin"]

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SPECIAL = set(",()=!")

FIELD_SELECTABLE: tuple[str, ...] = (
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "reason",
    "type",
    "status.phase",
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: LabelOp
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "=":
            return present and labels[self.key] == self.values[0]
        if self.op == "!=":
            return not present or labels[self.key] != self.values[0]
        if self.op == "in":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        found = labels or {}
        return all(req.matches(found) for req in self.requirements)


def _validate_key(key: str, selector: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        raise Invalid(
            f'label selector "{selector}": key prefix "{prefix}" must be a DNS subdomain '
            f"(lowercase alphanumerics, '-' and '.', at most 253 characters)"
        )
    if not name or len(name) > 63 or not _NAME.match(name):
        raise Invalid(
            f'label selector "{selector}": key "{key}" must be at most 63 characters of alphanumerics, '
            f"'-', '_' or '.', starting and ending with an alphanumeric"
        )


def _validate_value(value: str, selector: str) -> None:
    if value and (len(value) > 63 or not _NAME.match(value)):
        raise Invalid(
            f'label selector "{selector}": value "{value}" must be empty or at most 63 characters of '
            f"alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric"
        )


def _tokens(selector: str) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(selector):
        ch = selector[i]
        if ch.isspace():
            i += 1
        elif selector.startswith(("!=", "=="), i):
            out.append(selector[i : i + 2])
            i += 2
        elif ch in _SPECIAL:
            out.append(ch)
            i += 1
        else:
            start = i
            while i < len(selector) and not selector[i].isspace() and selector[i] not in _SPECIAL:
                i += 1
            out.append(selector[start:i])
    return out


def _is_word(token: str | None) -> bool:
    return token is not None and token not in _SPECIAL and token not in ("!=", "==")


def parse_label_selector(selector: str | None) -> LabelSelector:
    """Parse a label selector string; an empty or missing selector matches everything."""
    if selector is None or not selector.strip():
        return LabelSelector()
    tokens = _tokens(selector)
    pos = 0
    reqs: list[Requirement] = []

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str | None:
        nonlocal pos
        token = peek()
        pos += 1
        return token

    def fail(what: str) -> Invalid:
        found = peek()
        at = f'"{found}"' if found is not None else "the end"
        return Invalid(f'label selector "{selector}": expected {what}, found {at}')

    while True:
        if peek() == "!":
            take()
            if not _is_word(peek()):
                raise fail("a label key after '!'")
            key = str(take())
            _validate_key(key, selector)
            reqs.append(Requirement(key, "!"))
        elif _is_word(peek()):
            key = str(take())
            _validate_key(key, selector)
            token = peek()
            if token is None or token == ",":
                reqs.append(Requirement(key, "exists"))
            elif token in ("=", "==", "!="):
                take()
                value = str(take()) if _is_word(peek()) else ""
                _validate_value(value, selector)
                reqs.append(Requirement(key, "!=" if token == "!=" else "=", (value,)))
            elif token in ("in", "notin"):
                take()
                if take() != "(":
                    pos -= 1
                    raise fail(f"'(' after '{token}'")
                values: list[str] = []
                while True:
                    value = str(take()) if _is_word(peek()) else ""
                    _validate_value(value, selector)
                    values.append(value)
                    sep = take()
                    if sep == ")":
                        break
                    if sep != ",":
                        pos -= 1
                        raise fail("',' or ')' in a value list")
                reqs.append(Requirement(key, "in" if token == "in" else "notin", tuple(values)))
            else:
                raise fail("one of '=', '==', '!=', 'in', 'notin', ',' or the end")
        else:
            raise fail("a label key or '!key'")
        if peek() is None:
            return LabelSelector(tuple(reqs))
        if take() != ",":
            pos -= 1
            raise fail("',' between requirements")


def label_selector_from_spec(spec: Mapping[str, Any]) -> str:
    """Render a `{matchLabels, matchExpressions}` selector (as in Rollout.spec.selector) as a string."""
    parts = [f"{k}={v}" for k, v in sorted((spec.get("matchLabels") or {}).items())]
    for expr in spec.get("matchExpressions") or []:
        key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            raise Invalid(
                f'selector.matchExpressions: operator "{op}" is not one of In, NotIn, Exists, DoesNotExist'
            )
    return ",".join(parts)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    negate: bool
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return (field_value(obj, self.field) == self.value) != self.negate


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(req.matches(obj) for req in self.requirements)

    def equals(self, field: str) -> str | None:
        """The value a positive requirement pins `field` to, if any (lets a store narrow its query)."""
        for req in self.requirements:
            if req.field == field and not req.negate:
                return req.value
        return None


def field_value(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return "" if node is None else str(node)


def parse_field_selector(selector: str | None) -> FieldSelector:
    if selector is None or not selector.strip():
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    for raw in selector.split(","):
        part = raw.strip()
        match = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", part)
        if not match:
            raise Invalid(
                f'field selector "{selector}": "{part}" is not of the form field=value or field!=value'
            )
        field, op, value = match.group(1), match.group(2), match.group(3).strip()
        if field not in FIELD_SELECTABLE:
            raise Invalid(
                f'field selector "{selector}": field "{field}" is not supported; '
                f"valid fields: {', '.join(FIELD_SELECTABLE)}"
            )
        reqs.append(FieldRequirement(field, op == "!=", value))
    return FieldSelector(tuple(reqs))
