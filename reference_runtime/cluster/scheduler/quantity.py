"""Kubernetes resource quantities (``resource.Quantity``) as exact numbers.

A quantity is a signed decimal number with an optional suffix: binary (``Ki`` ``Mi`` ``Gi``
``Ti`` ``Pi`` ``Ei``), decimal (``n`` ``u`` ``m`` ``k`` ``M`` ``G`` ``T`` ``P`` ``E``) or a
decimal exponent (``e3``, ``E-2``). JSON numbers are quantities too. ``milli_value`` and
``value`` round up to whole units, as ``Quantity.MilliValue()`` and ``Value()`` do, so a
request is never under-counted: ``milli_value("100m") == 100``, ``value("1Gi") == 2**30``,
``value("0.5") == 1``.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from .errors import QuantityError

__all__ = ["milli_value", "parse_quantity", "value"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)
_cache: dict[str, Fraction] = {}


def parse_quantity(quantity: Any) -> Fraction:
    """The exact value of ``quantity`` (a string or a JSON number); ``QuantityError`` if bad."""
    if isinstance(quantity, bool):
        raise QuantityError(f"a quantity is a string like '100m' or a number, not {quantity!r}")
    if isinstance(quantity, int):
        return Fraction(quantity)
    if isinstance(quantity, float):
        if not math.isfinite(quantity):
            raise QuantityError(f"a quantity must be finite, not {quantity!r}")
        return Fraction(str(quantity))
    if not isinstance(quantity, str):
        raise QuantityError(f"a quantity is a string like '100m' or a number, not {quantity!r}")
    cached = _cache.get(quantity)
    if cached is not None:
        return cached
    match = _QUANTITY.match(quantity.strip())
    if match is None:
        raise QuantityError(
            f"quantities must match the regular expression"
            f" '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$', not {quantity!r}"
        )
    number = Fraction(match["number"])
    if match["exponent"]:
        result = number * Fraction(10) ** int(match["exponent"][1:])
    else:
        suffix = match["suffix"] or ""
        result = number * (_BINARY[suffix] if suffix in _BINARY else _DECIMAL[suffix])
    if len(_cache) < 4096:  # the same few strings come back in every pod: remember them
        _cache[quantity] = result
    return result


def value(quantity: Any) -> int:
    """Whole units, rounded up (bytes for memory, cores for cpu, a count for pods)."""
    return math.ceil(parse_quantity(quantity))


def milli_value(quantity: Any) -> int:
    """Thousandths of a unit, rounded up (millicores for cpu)."""
    return math.ceil(parse_quantity(quantity) * 1000)
