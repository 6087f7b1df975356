"""Pydantic mirrors of the views' dataclasses, so the OpenAPI document describes RolloutInfo field by field
while the views stay its only definition. Keys are camelCase, as the views' `to_dict()` writes them."""

from __future__ import annotations

import dataclasses
import types
import typing
from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model
from pydantic.alias_generators import to_camel


class _Mirror(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


def _convert(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return mirror(annotation)
    if origin is tuple:
        item = args[0] if args else Any
        return list[_convert(item)]  # type: ignore[misc]
    if origin is list:
        return list[_convert(args[0])]  # type: ignore[misc]
    if origin is dict:
        return dict[_convert(args[0]), _convert(args[1])]  # type: ignore[misc]
    if origin in (typing.Union, types.UnionType):
        converted = [_convert(arg) for arg in args]
        result = converted[0]
        for part in converted[1:]:
            result = result | part
        return result
    return annotation


@cache
def mirror(cls: type) -> type[BaseModel]:
    """A frozen pydantic model with the dataclass's fields (camelCase aliases), defaults kept."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        annotation = _convert(hints[item.name])
        if item.default is not dataclasses.MISSING:
            fields[item.name] = (annotation, item.default)
        elif item.default_factory is not dataclasses.MISSING:
            fields[item.name] = (annotation, item.default_factory())
        else:
            fields[item.name] = (annotation, ...)
    doc = cls.__doc__ if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}(") else None
    model: type[BaseModel] = create_model(cls.__name__, __base__=_Mirror, __doc__=doc, **fields)
    return model
