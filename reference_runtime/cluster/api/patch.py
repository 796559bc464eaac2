"""The three patch formats of the Kubernetes API, applied to JSON documents.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): objects merge, ``null``
  deletes, everything else (lists too) replaces.
- Strategic merge patch (``application/strategic-merge-patch+json``, what ``kubectl
  apply`` and ``kubectl edit`` send): like a merge patch, but lists whose items have a
  merge key (``containers`` by ``name``, ``ports`` by ``containerPort``...) merge item by
  item, ``finalizers`` merge as a set, and the directives ``$patch`` (replace, delete,
  merge), ``$retainKeys``, ``$setElementOrder/<list>`` and ``$deleteFromPrimitiveList/<list>``
  are honoured.
- JSON patch (RFC 6902, ``application/json-patch+json``): add, remove, replace, move,
  copy, test, with JSON pointers.

Functions return a new document and never change their arguments. A malformed patch
raises ``BadRequestError``; one that does not apply (missing path, failed test) raises
``InvalidError``.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import BadRequestError, InvalidError

__all__ = [
    "JSON_PATCH",
    "MERGE_PATCH",
    "PATCH_TYPES",
    "STRATEGIC_MERGE_PATCH",
    "apply_patch",
    "json_merge_patch",
    "json_patch",
    "strategic_merge_patch",
]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PATCH_TYPES = (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH)

# Lists that merge item by item, by this key, in the Kubernetes types we serve.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "addresses": "type",
    "taints": "key",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "schedulingGates": "name",
}
# Lists of scalars that merge as sets.
SET_LISTS = frozenset({"finalizers"})


def apply_patch(patch_type: str, document: dict[str, Any], patch: Any) -> Any:
    if patch_type == MERGE_PATCH:
        return json_merge_patch(document, patch)
    if patch_type == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(document, patch)
    if patch_type == JSON_PATCH:
        return json_patch(document, patch)
    raise BadRequestError(f"unsupported patch type {patch_type!r}")


# -- RFC 7386 ------------------------------------------------------------------------------


def json_merge_patch(document: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -----------------------------------------------------------------


def strategic_merge_patch(document: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        raise BadRequestError("a strategic merge patch must be a JSON object")
    return _smp_map(document if isinstance(document, dict) else {}, patch)


def _smp_map(original: dict[str, Any], patch: dict[str, Any]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive not in (None, "merge"):
        raise BadRequestError(f"unknown $patch directive {directive!r}")
    result = copy.deepcopy(original)
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            if not isinstance(value, list):
                raise BadRequestError(f"{key} must be a list")
            orders[key.removeprefix("$setElementOrder/")] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.removeprefix("$deleteFromPrimitiveList/")
            if not isinstance(value, list):
                raise BadRequestError(f"{key} must be a list")
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
        elif key.startswith("$"):
            raise BadRequestError(f"unknown strategic merge patch directive {key!r}")
        elif value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = _smp_map(result[key] if isinstance(result.get(key), dict) else {}, value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise BadRequestError("$retainKeys must be a list")
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    original = original if isinstance(original, list) else []
    if field in SET_LISTS:
        return copy.deepcopy(original) + [v for v in patch if v not in original]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return [copy.deepcopy(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if any(item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(v) for v in patch if "$patch" not in v]
    result = copy.deepcopy(original)
    for item in patch:
        if key not in item:
            raise BadRequestError(f"an item of {field} has no merge key {key!r}")
        index = next(
            (i for i, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            merged = _smp_map({}, item)
            if merged is not None:
                result.append(merged)
        else:
            merged = _smp_map(result[index], item)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


def _reorder(field: str, items: list[Any], order: list[Any]) -> list[Any]:
    key = MERGE_KEYS.get(field)

    def ident(item: Any) -> Any:
        if key is not None and isinstance(item, dict):
            return repr(item.get(key))
        return repr(item)

    rank = {ident(o): i for i, o in enumerate(order)}
    ranked = [item for item in items if ident(item) in rank]
    ranked.sort(key=lambda item: rank[ident(item)])
    rest = [item for item in items if ident(item) not in rank]
    return ranked + rest


# -- RFC 6902 ------------------------------------------------------------------------------


def json_patch(document: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise BadRequestError("a JSON patch must be a list of operations")
    result = copy.deepcopy(document)
    for i, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise BadRequestError(f"JSON patch operation {i} is not an object with an 'op'")
        name = op["op"]
        path = _pointer(op, "path", i)
        if name in ("add", "replace", "test") and "value" not in op:
            raise BadRequestError(f"JSON patch operation {i} ({name}) needs a 'value'")
        if name == "add":
            result = _add(result, path, copy.deepcopy(op["value"]))
        elif name == "remove":
            result, _ = _remove(result, path)
        elif name == "replace":
            if path:
                result, _ = _remove(result, path)
            result = _add(result, path, copy.deepcopy(op["value"]))
        elif name == "move":
            source = _pointer(op, "from", i)
            result, value = _remove(result, source)
            result = _add(result, path, value)
        elif name == "copy":
            source = _pointer(op, "from", i)
            result = _add(result, path, copy.deepcopy(_get(result, source)))
        elif name == "test":
            if _get(result, path) != op["value"]:
                raise InvalidError(f"JSON patch test failed at {op['path']!r}")
        else:
            raise BadRequestError(f"JSON patch operation {i} has unknown op {name!r}")
    return result


def _pointer(op: dict[str, Any], field: str, i: int) -> list[str]:
    text = op.get(field)
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise BadRequestError(f"JSON patch operation {i} has an invalid {field!r}: {text!r}")
    if text == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/")]


def _missing(path: list[str]) -> InvalidError:
    return InvalidError(f"JSON patch: path /{'/'.join(path)} does not exist")


def _index(container: list[Any], part: str, path: list[str], *, append: bool) -> int:
    if append and part == "-":
        return len(container)
    if not part.isdigit() or (len(part) > 1 and part.startswith("0")):
        raise _missing(path)
    index = int(part)
    if index > len(container) or (index == len(container) and not append):
        raise _missing(path)
    return index


def _parent(document: Any, path: list[str]) -> Any:
    node = document
    for depth, part in enumerate(path[:-1]):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list):
            node = node[_index(node, part, path[: depth + 1], append=False)]
        else:
            raise _missing(path[: depth + 1])
    return node


def _get(document: Any, path: list[str]) -> Any:
    if not path:
        return document
    parent = _parent(document, path)
    if isinstance(parent, dict) and path[-1] in parent:
        return parent[path[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, path[-1], path, append=False)]
    raise _missing(path)


def _add(document: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _parent(document, path)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, path[-1], path, append=True), value)
    else:
        raise _missing(path)
    return document


def _remove(document: Any, path: list[str]) -> tuple[Any, Any]:
    if not path:
        raise InvalidError("JSON patch: cannot remove the whole document")
    parent = _parent(document, path)
    if isinstance(parent, dict) and path[-1] in parent:
        return document, parent.pop(path[-1])
    if isinstance(parent, list):
        return document, parent.pop(_index(parent, path[-1], path, append=False))
    raise _missing(path)
