"""Reading a report file back: ``load`` and ``from_json`` validate it against the schema
and say in one line (``ReportError``) what is wrong and where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .reportmodel import (
    CATALOGUE_FIELDS,
    OUTCOMES,
    SCHEMA,
    STATUSES,
    VERSION,
    Report,
    ReportError,
    RequirementResult,
    TestResult,
)
from .requirements import LEVELS


def load(path: Path) -> Report:
    """Read and validate a report file; ``ReportError`` with a one-line message."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not JSON: not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path}: not JSON: {exc.msg} at line {exc.lineno}") from None
    return from_json(data, str(path))


def from_json(data: Any, where: str = "report") -> Report:
    """Validate ``data`` (a parsed report file) and return the Report."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ReportError(
            f"{where}: not a pytest-containers report (schema {found!r}, expected {SCHEMA!r})"
        )
    version = data.get("version")
    if version != VERSION:
        raise ReportError(
            f"{where}: report version {version!r} is not supported "
            f"(this pytest-containers reads version {VERSION}; upgrade it to read newer ones)"
        )
    system = _strings(_get(data, "system", dict, where), f"{where}: system")
    for key in ("name", "version"):
        _get(system, key, str, f"{where}: system")
    run = _get(data, "run", dict, where)
    _get(run, "started", str, f"{where}: run")
    _get(run, "duration", float, f"{where}: run")
    requirements = []
    for i, item in enumerate(_get(data, "requirements", list, where)):
        requirements.append(_requirement(item, f"{where}: requirements[{i}]"))
    return Report(
        system=system,
        environment=_strings(_get(data, "environment", dict, where), f"{where}: environment"),
        run=run,
        requirements=tuple(requirements),
    )


def _requirement(item: Any, where: str) -> RequirementResult:
    if not isinstance(item, dict):
        raise ReportError(f"{where}: expected an object, got {type(item).__name__}")
    fields = {k: _get(item, k, str, where) for k in CATALOGUE_FIELDS}
    _choice(fields["level"], LEVELS, f"{where}.level")
    status = _choice(_get(item, "status", str, where), STATUSES, f"{where}.status")
    tests = []
    for j, t in enumerate(_get(item, "tests", list, where)):
        tw = f"{where}.tests[{j}]"
        if not isinstance(t, dict):
            raise ReportError(f"{tw}: expected an object, got {type(t).__name__}")
        tests.append(
            TestResult(
                nodeid=_get(t, "nodeid", str, tw),
                outcome=_choice(_get(t, "outcome", str, tw), OUTCOMES, f"{tw}.outcome"),
                message=_get(t, "message", str, tw, ""),
                duration=float(_get(t, "duration", float, tw, 0.0)),
                example=_get(t, "example", str, tw, ""),
                reproduce=_get(t, "reproduce", str, tw, ""),
                worker=_get(t, "worker", str, tw, ""),
            )
        )
    reason = _get(item, "reason", str, where, "")
    return RequirementResult(**fields, status=status, reason=reason, tests=tuple(tests))


_MISSING = object()
_KIND_NAMES = {str: "a string", float: "a number", list: "a list", dict: "an object"}


def _get(obj: dict[str, Any], key: str, kind: type, where: str, default: Any = _MISSING) -> Any:
    if key not in obj:
        if default is _MISSING:
            raise ReportError(f"{where}: {key!r} is missing")
        return default
    value = obj[key]
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, kind)
    if not ok or isinstance(value, bool):
        raise ReportError(
            f"{where}.{key}: expected {_KIND_NAMES[kind]}, got {type(value).__name__}"
        )
    return value


def _choice(value: str, choices: tuple[str, ...], where: str) -> str:
    if value not in choices:
        raise ReportError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return value


def _strings(obj: dict[str, Any], where: str) -> dict[str, str]:
    for key, value in obj.items():
        if not isinstance(value, str):
            raise ReportError(f"{where}.{key}: expected a string, got {type(value).__name__}")
    return dict(obj)
