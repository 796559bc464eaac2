"""Import-light stand-ins for ``dataclasses`` and ``json``, for a fast CLI start.

``reference-runtime`` is started once per verb by the tools that drive it, so its
start-up time is part of every container's lifecycle. ``dataclasses`` (through
``inspect``) and ``json`` (through ``re``) together cost several milliseconds to
import, more than the rest of the runtime. This module gives the runtime what it uses
of them at a fraction of that:

- ``dataclass``/``field``/``replace``/``asdict``: field lists from annotations, a
  generic ``__init__``, ``__repr__``, ``__eq__``; ``frozen`` forbids assignment. Type
  checkers see the real ``dataclasses`` (see the ``TYPE_CHECKING`` imports at the use
  sites), so the declarations are checked as dataclasses.
- ``loads``/``dumps``: the C scanner and encoder of ``_json``, which ``json`` itself
  uses; the pure-Python fallback is ``json`` when ``_json`` is missing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _C = TypeVar("_C", bound="StrChoice")

_MISSING = object()


class _Field:
    __slots__ = ("default", "default_factory")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING) -> None:
        self.default = default
        self.default_factory = default_factory


def field(*, default: Any = _MISSING, default_factory: Any = _MISSING) -> Any:
    return _Field(default, default_factory)


def _fields(cls: type) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []
    for klass in reversed(cls.__mro__):
        for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063 - no inspect
            value = klass.__dict__.get(name, _MISSING)
            if isinstance(value, _Field):
                entry = (name, value.default, value.default_factory)
            else:
                entry = (name, value, _MISSING)
            out = [f for f in out if f[0] != name] + [entry]
    return out


def dataclass(cls: type | None = None, /, *, frozen: bool = False) -> Any:
    def wrap(cls: type) -> type:
        fields = _fields(cls)
        names = tuple(f[0] for f in fields)
        for name, default, _ in fields:
            if isinstance(cls.__dict__.get(name), _Field):
                if default is _MISSING:
                    delattr(cls, name)
                else:
                    setattr(cls, name, default)

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            if len(args) > len(fields):
                raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, got {len(args)}")
            for i, (name, default, factory) in enumerate(fields):
                if i < len(args):
                    value = args[i]
                    if name in kwargs:
                        raise TypeError(f"{cls.__name__}() got multiple values for {name!r}")
                elif name in kwargs:
                    value = kwargs.pop(name)
                elif factory is not _MISSING:
                    value = factory()
                elif default is not _MISSING:
                    value = default
                else:
                    raise TypeError(f"{cls.__name__}() missing argument {name!r}")
                object.__setattr__(self, name, value)
            if len(args) < len(fields) and kwargs:
                raise TypeError(f"{cls.__name__}() got unexpected arguments {sorted(kwargs)}")
            post_init = getattr(self, "__post_init__", None)
            if post_init is not None:
                post_init()

        def __repr__(self: Any) -> str:
            inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in names)
            return f"{cls.__qualname__}({inner})"

        def __eq__(self: Any, other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return all(getattr(self, n) == getattr(other, n) for n in names)

        cls.__init__ = __init__  # type: ignore[misc]
        cls.__repr__ = __repr__  # type: ignore[method-assign,assignment]
        cls.__eq__ = __eq__  # type: ignore[method-assign,assignment]
        cls.__lite_fields__ = names  # type: ignore[attr-defined]
        if frozen:

            def __setattr__(self: Any, name: str, value: Any) -> None:
                raise AttributeError(f"cannot assign to field {name!r} of frozen {cls.__name__}")

            def __hash__(self: Any) -> int:
                return hash(tuple(getattr(self, n) for n in names))

            cls.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
            cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
        else:
            cls.__hash__ = None  # type: ignore[assignment]
        return cls

    return wrap if cls is None else wrap(cls)


def replace(obj: Any, **changes: Any) -> Any:
    values = {n: getattr(obj, n) for n in obj.__lite_fields__}
    values.update(changes)
    return obj.__class__(**values)


def asdict(obj: Any) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in obj.__lite_fields__}


try:
    import _json
except ImportError:  # an interpreter without the C accelerator: the real module
    import json as _pyjson

    def loads(text: str | bytes) -> Any:
        return _pyjson.loads(text)

    def dumps(obj: Any, indent: int | None = None) -> str:
        return _pyjson.dumps(obj, indent=indent)

else:

    class _Context:
        """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        memo: dict[str, str] = {}

        @staticmethod
        def parse_constant(name: str) -> float:
            return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]

    _scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _WS = " \t\n\r"

    def loads(text: str | bytes) -> Any:
        """Decode one JSON document; raises ``ValueError`` on bad input."""
        if isinstance(text, bytes):
            text = text.decode()
        start = 0
        while start < len(text) and text[start] in _WS:
            start += 1
        try:
            value, end = _scan(text, start)
        except (StopIteration, SystemError, ValueError):
            # Bad input: let ``json`` find it and raise its JSONDecodeError, with the
            # line and column (the C scanner needs ``json.decoder`` loaded to do so).
            import json as _pyjson

            return _pyjson.loads(text)
        while end < len(text) and text[end] in _WS:
            end += 1
        if end != len(text):
            import json as _pyjson

            return _pyjson.loads(text)
        return value

    def _fail(obj: Any) -> Any:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")

    _compact = _json.make_encoder(
        None, _fail, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )

    def dumps(obj: Any, indent: int | None = None) -> str:
        """Encode ``obj``; ``indent`` pretty-prints as ``json.dumps(obj, indent=...)``."""
        if indent is None:
            return "".join(_compact(obj, 0))
        return _pretty(obj, " " * indent, "")

    def _pretty(obj: Any, step: str, pad: str) -> str:
        inner = pad + step
        if isinstance(obj, dict) and obj:
            items = [
                f"{inner}{_compact(str(k), 0)[0]}: {_pretty(v, step, inner)}"
                for k, v in obj.items()
            ]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(obj, (list, tuple)) and obj:
            items = [inner + _pretty(v, step, inner) for v in obj]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return "".join(_compact(obj, 0))


class StrChoice(str):
    """A closed set of string constants (an ``enum.StrEnum`` without ``enum``).

    Subclasses declare their members with ``_define(NAME="value", ...)``; calling the
    class with a value returns the canonical member, so ``is`` comparisons hold, and
    an unknown value raises ``ValueError``.
    """

    _members: dict[str, StrChoice]

    def __new__(cls: type[_C], value: str) -> _C:
        try:
            return cls._members[value]  # type: ignore[return-value]
        except KeyError:
            choices = ", ".join(cls._members)
            raise ValueError(
                f"{value!r} is not a valid {cls.__name__} (one of {choices})"
            ) from None

    @classmethod
    def _define(cls, **members: str) -> None:
        cls._members = {}
        for name, value in members.items():
            member = str.__new__(cls, value)
            member._name = name  # type: ignore[attr-defined]
            cls._members[value] = member
            setattr(cls, name, member)

    @property
    def value(self) -> str:
        return str(self)

    @property
    def name(self) -> str:
        return self._name  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __reduce__(self) -> tuple[type, tuple[str]]:
        return (type(self), (str(self),))
