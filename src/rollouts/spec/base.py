"""The base model every manifest type derives from: Argo's camelCase names, unknown fields refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """An immutable manifest fragment.

    Python attributes are snake_case; the wire names are Argo's camelCase (aliases). Unknown keys are
    refused so that a typo in a manifest is an error rather than a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        protected_namespaces=(),
    )

    def to_dict(self) -> dict[str, Any]:
        """The manifest form: camelCase keys, unset fields left out."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class LooseModel(Model):
    """A fragment whose unknown keys are kept (status written by other controllers, free-form configs)."""

    model_config = ConfigDict(extra="allow")
