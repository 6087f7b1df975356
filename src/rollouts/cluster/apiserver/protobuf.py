"""Decoding the few protobuf request bodies kubectl sends: `kubectl create configmap|secret|namespace`
use client-go's typed clients, which write `application/vnd.kubernetes.protobuf`.

The envelope is `k8s\\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}; `raw` is the object in
Kubernetes' generated.proto numbering. Only ConfigMap, Secret and Namespace are decoded (with the
ObjectMeta fields a client sets); any other kind is answered 415 so the user knows to send YAML/JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

JSONObject = dict[str, Any]


class ProtobufError(ValueError):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: varints as int, length-delimited as bytes."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, value
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ProtobufError("truncated field")
            yield number, data[at:at + size]
            at += size
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    return value.decode()


def _entry(value: int | bytes) -> tuple[str, bytes]:
    key, item = "", b""
    for number, part in fields(value if isinstance(value, bytes) else b""):
        if number == 1:
            key = _text(part)
        elif number == 2 and isinstance(part, bytes):
            item = part
    return key, item


def _owner(value: int | bytes) -> JSONObject:
    names = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}
    ref: JSONObject = {}
    for number, part in fields(value if isinstance(value, bytes) else b""):
        if number in names:
            ref[names[number]] = _text(part)
        elif number in (6, 7):
            ref["controller" if number == 6 else "blockOwnerDeletion"] = bool(part)
    return ref


def _metadata(data: bytes) -> JSONObject:
    meta: JSONObject = {}
    strings = {1: "name", 2: "generateName", 3: "namespace", 6: "resourceVersion"}
    for number, value in fields(data):
        if number in strings and _text(value):
            meta[strings[number]] = _text(value)
        elif number in (11, 12):
            key, item = _entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item.decode()
        elif number == 13:
            meta.setdefault("ownerReferences", []).append(_owner(value))
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _configmap(data: bytes) -> JSONObject:
    obj: JSONObject = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
        elif number in (2, 3):
            key, item = _entry(value)
            if number == 2:
                obj.setdefault("data", {})[key] = item.decode()
            else:
                obj.setdefault("binaryData", {})[key] = base64.b64encode(item).decode()
        elif number == 4:
            obj["immutable"] = bool(value)
    return obj


def _secret(data: bytes) -> JSONObject:
    obj: JSONObject = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
        elif number in (2, 4):
            key, item = _entry(value)
            if number == 2:
                obj.setdefault("data", {})[key] = base64.b64encode(item).decode()
            else:
                obj.setdefault("stringData", {})[key] = item.decode()
        elif number == 3 and _text(value):
            obj["type"] = _text(value)
        elif number == 5:
            obj["immutable"] = bool(value)
    return obj


def _namespace(data: bytes) -> JSONObject:
    obj: JSONObject = {}
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            obj["metadata"] = _metadata(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


DECODERS: dict[tuple[str, str], Callable[[bytes], JSONObject]] = {
    ("v1", "ConfigMap"): _configmap,
    ("v1", "Secret"): _secret,
    ("v1", "Namespace"): _namespace,
}


def decode(body: bytes) -> JSONObject:
    """The JSON form of a protobuf-encoded object; ProtobufError when it is not one we can read."""
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf envelope")
    api_version = kind = ""
    raw = b""
    for number, value in fields(body[len(MAGIC):]):
        if number == 1 and isinstance(value, bytes):
            for inner, part in fields(value):
                if inner == 1:
                    api_version = _text(part)
                elif inner == 2:
                    kind = _text(part)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = DECODERS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(f"{kind or 'this kind'} ({api_version or '?'}) in protobuf is not supported by this "
                            f"server; send it as YAML or JSON (kubectl create ... --dry-run=client -o yaml | "
                            f"kubectl apply -f -)")
    obj = decoder(raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
