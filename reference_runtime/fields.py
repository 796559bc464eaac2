"""Typed readers for the fields of a decoded JSON document (config.json).

Each takes the value and where it sits (``process.user.uid``) and returns it typed, or
raises ``ConfigError`` with one line that says where and what was wrong.
"""

from __future__ import annotations

from .errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def obj(value: Any, where: str) -> dict[str, Any]:
    __tracebackhide__ = True
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be an object, got {kind(value)}")
    return value


def string(value: Any, where: str) -> str:
    __tracebackhide__ = True
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, got {kind(value)}")
    return value


def opt_string(value: Any, where: str) -> str | None:
    __tracebackhide__ = True
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {kind(value)}")
    return value


def boolean(value: Any, where: str) -> bool:
    __tracebackhide__ = True
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {kind(value)}")
    return value


def integer(value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
    __tracebackhide__ = True
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {kind(value)}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{where} = {value} is out of range [{lo}, {hi}]")
    return value


def str_list(value: Any, where: str) -> tuple[str, ...]:
    __tracebackhide__ = True
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(value)


def abs_list(value: Any, where: str) -> tuple[str, ...]:
    __tracebackhide__ = True
    paths = str_list(value, where)
    for path in paths:
        if not path.startswith("/"):
            raise ConfigError(f"{where} entry {path!r} must be an absolute path")
    return paths


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def list_of(value: Any, where: str) -> list[Any]:
    __tracebackhide__ = True
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list")
    return value
