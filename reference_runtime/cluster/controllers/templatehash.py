"""``pod-template-hash``: the label that tells a Deployment's ReplicaSets apart.

The hash is FNV-1a (32 bit) over the template's canonical JSON, then over the
``collisionCount`` (4 bytes little-endian) if there is one, written as its decimal digits
mapped onto Kubernetes' safe alphabet (no vowels, no look-alike digits), as
``controller.ComputeHash`` does. (The bytes hashed differ from Kubernetes', which hashes
Go's printout of the struct, so the values differ; the properties are the same.)
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

from ..api.objects import Obj

__all__ = ["HASH_LABEL", "equal_ignoring_hash", "template_hash", "with_hash"]

HASH_LABEL = "pod-template-hash"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV_OFFSET, _FNV_PRIME = 0x811C9DC5, 0x01000193


def _fnv1a(data: bytes, value: int = _FNV_OFFSET) -> int:
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    value = _fnv1a(json.dumps(template, sort_keys=True, separators=(",", ":")).encode())
    if collision_count:
        value = _fnv1a(struct.pack("<I", collision_count & 0xFFFFFFFF), value)
    return "".join(_ALPHABET[int(digit) % len(_ALPHABET)] for digit in str(value))


def _without_hash(template: Any) -> Any:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return template


def equal_ignoring_hash(a: Obj, b: Obj) -> bool:
    """Whether two pod templates are the same but for the ``pod-template-hash`` label."""
    return bool(_without_hash(a) == _without_hash(b))


def with_hash(template: Obj, value: str) -> Obj:
    """A copy of ``template`` labelled ``pod-template-hash: value``."""
    labelled = copy.deepcopy(template)
    labelled.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = value
    return labelled
