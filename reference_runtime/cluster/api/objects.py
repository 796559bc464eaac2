"""Small helpers over objects as JSON dicts: timestamps, encoding, metadata access."""

from __future__ import annotations

import datetime
import json
import secrets
from typing import Any

__all__ = [
    "Obj",
    "decode",
    "encode",
    "format_time",
    "generate_name",
    "meta",
    "parse_time",
]

Obj = dict[str, Any]

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' alphabet: no vowels, no 0/1/3
MAX_GENERATE_PREFIX = 58  # 63 - 5 random characters


def format_time(seconds: float) -> str:
    """RFC 3339 in UTC at second precision, as ``metav1.Time`` is serialized."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float | None:
    """Seconds since the epoch for an RFC 3339 timestamp, or ``None`` if it is not one."""
    try:
        value = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.timestamp()


def generate_name(prefix: str) -> str:
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))
    return prefix[:MAX_GENERATE_PREFIX] + suffix


def meta(obj: Obj) -> Obj:
    """``obj["metadata"]``, created if missing."""
    value = obj.get("metadata")
    if not isinstance(value, dict):
        value = obj["metadata"] = {}
    return value


def encode(obj: Obj) -> bytes:
    """Stored form: compact JSON without ``metadata.resourceVersion`` (the store's revision)."""
    metadata = obj.get("metadata") or {}
    if "resourceVersion" in metadata:
        obj = {**obj, "metadata": {k: v for k, v in metadata.items() if k != "resourceVersion"}}
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(value: bytes, revision: int) -> Obj:
    obj: Obj = json.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj
