"""Typed access to fields of ``linux.resources``, raising ConfigError for a wrong type.

Each controller module validates its own section with these helpers, so every message
has the same shape: the field's full JSON path, what it must be, and what it was.
"""

from __future__ import annotations

from reference_runtime.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PREFIX = "linux.resources"

Write = tuple[str, str]
"""One cgroup file write: (file name inside the cgroup directory, value to write)."""


def section(resources: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    """Return ``resources[key]`` when it is an object, None when absent or null."""
    __tracebackhide__ = True
    value = resources.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{PREFIX}.{key} must be an object, got {value!r}")
    return value


def optional_int(
    obj: Mapping[str, Any], key: str, where: str, *, minimum: int | None = None
) -> int | None:
    """Return ``obj[key]`` as an int (None when absent or null); bools are not ints here."""
    __tracebackhide__ = True
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{PREFIX}.{where}.{key} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{PREFIX}.{where}.{key} must be >= {minimum}, got {value}")
    return value


def optional_bool(obj: Mapping[str, Any], key: str, where: str) -> bool | None:
    """Return ``obj[key]`` as a bool (None when absent or null)."""
    __tracebackhide__ = True
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"{PREFIX}.{where}.{key} must be true or false, got {value!r}")
    return value


def optional_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    """Return ``obj[key]`` as a str (None when absent or null)."""
    __tracebackhide__ = True
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{PREFIX}.{where}.{key} must be a string, got {value!r}")
    return value
