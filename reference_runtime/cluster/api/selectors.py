"""Label and field selectors, as the Kubernetes API parses and matches them.

Label selectors (``labelSelector=``): comma-separated requirements ``k``, ``!k``,
``k=v``, ``k==v``, ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``, ``k>n``, ``k<n``; ``!=``
and ``notin`` also match objects without the key. Field selectors (``fieldSelector=``):
``f=v``, ``f==v``, ``f!=v`` over the fields each resource supports (``metadata.name`` and
``metadata.namespace`` always); ``\\,``, ``\\=`` and ``\\\\`` escape in values. Parse errors
raise ``BadRequestError``. ``LabelSelector`` objects (``matchLabels`` and
``matchExpressions``) convert to the same requirements.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import BadRequestError
from .validation import label_key_errors, label_value_errors

__all__ = [
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "parse_field_selector",
    "parse_label_selector",
    "selector_from_object",
]

_TOKEN = re.compile(r"\s*(\(|\)|,|==|!=|=|!|>|<|[^\s(),=!<>]+)")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key`` ``op`` ``values``."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", ">", "<"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key, "")
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present:
            return False
        try:
            number, bound = int(value), int(self.values[0])
        except ValueError:
            return False
        return number > bound if self.op == ">" else number < bound

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(sorted(self.values))})"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True)
class LabelSelector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _bad(text: str, why: str) -> BadRequestError:
    return BadRequestError(f"unable to parse requirement: {why} (in selector {text!r})")


def parse_label_selector(text: str) -> LabelSelector:
    """Parse a ``labelSelector`` query value; raises ``BadRequestError`` on bad syntax."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos:].strip() == "":
                break
            raise _bad(text, f"unexpected character at {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    requirements: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(tokens):
            raise _bad(text, "unexpected end")
        i += 1
        return tokens[i - 1]

    while i < len(tokens):
        token = take()
        if token == "!":
            key = _check_key(text, take())
            requirements.append(Requirement(key, "!"))
        else:
            key = _check_key(text, token)
            op = tokens[i] if i < len(tokens) else ","
            if op == ",":
                requirements.append(Requirement(key, "exists"))
            elif op in ("=", "==", "!=", ">", "<"):
                i += 1
                value = tokens[i] if i < len(tokens) and tokens[i] not in ",()" else ""
                if value:
                    i += 1
                if op in (">", "<") and not re.fullmatch(r"-?\d+", value):
                    raise _bad(text, f"for {op!r}, the value must be an integer, not {value!r}")
                _check_value(text, value)
                requirements.append(Requirement(key, "=" if op == "==" else op, (value,)))
            elif op in ("in", "notin"):
                i += 1
                if take() != "(":
                    raise _bad(text, f"expected '(' after {op!r}")
                values: list[str] = []
                while True:
                    token = take()
                    if token == ")":
                        break
                    if token == ",":
                        continue
                    values.append(_check_value(text, token))
                if op == "in" and not values:
                    raise _bad(text, "for 'in', the set of values must not be empty")
                requirements.append(Requirement(key, op, tuple(values)))
            else:
                raise _bad(text, f"expected an operator after {key!r}, found {op!r}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise _bad(text, f"expected ',' but found {tokens[i]!r}")
            i += 1
            if i == len(tokens):
                raise _bad(text, "trailing ','")
    return LabelSelector(tuple(requirements))


def _check_key(text: str, key: str) -> str:
    errors = label_key_errors(key)
    if errors or key in "(),=!<>":
        raise _bad(text, f"invalid label key {key!r}: {'; '.join(errors) or 'not a key'}")
    return key


def _check_value(text: str, value: str) -> str:
    errors = label_value_errors(value)
    if errors:
        raise _bad(text, f"invalid label value {value!r}: {'; '.join(errors)}")
    return value


def selector_from_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` object (already validated) as a ``LabelSelector``."""
    if not selector:
        return LabelSelector()
    requirements = [
        Requirement(k, "=", (v,)) for k, v in sorted((selector.get("matchLabels") or {}).items())
    ]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        requirements.append(
            Requirement(expr["key"], ops[expr["operator"]], tuple(expr.get("values") or ()))
        )
    return LabelSelector(tuple(requirements))


# -- field selectors -----------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSelector:
    """A conjunction of ``field op value`` terms over a resource's selectable fields."""

    terms: tuple[tuple[str, str, str], ...] = ()

    def matches(self, fields: Callable[[str], str]) -> bool:
        return all((fields(f) == v) == (op == "=") for f, op, v in self.terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def value_of(self, field: str) -> str | None:
        """The value an ``=`` term requires of ``field``, if there is one."""
        for f, op, v in self.terms:
            if f == field and op == "=":
                return v
        return None


def parse_field_selector(text: str, supported: frozenset[str]) -> FieldSelector:
    """Parse a ``fieldSelector`` query value against the resource's ``supported`` fields."""
    terms: list[tuple[str, str, str]] = []
    for part in _split_unescaped(text, ","):
        if not part.strip():
            continue
        match = re.match(r"^([^=!]+)(==|!=|=)(.*)$", part)
        if match is None:
            raise BadRequestError(f"invalid field selector: {part!r} is not field=value")
        field, op, value = match.group(1).strip(), match.group(2), _unescape(match.group(3))
        if field not in supported:
            raise BadRequestError(f'field label not supported: "{field}"')
        terms.append((field, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(terms))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts, current, escaped = [], [], False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise BadRequestError(f"invalid field selector: {text!r} ends in an unfinished escape")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise BadRequestError(f"invalid field selector value {value!r}: bad escape \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "=":
            raise BadRequestError(f"invalid field selector value {value!r}: unescaped '='")
        else:
            out.append(ch)
    return "".join(out)
