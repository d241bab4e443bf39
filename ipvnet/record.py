"""Plain data classes without the cost of `dataclasses` on a cold start.

`import dataclasses` pulls in `inspect` (with ast, tokenize, ...), and every
@dataclass compiles its methods with exec: together about a quarter of a
cold `ipvnet attach` on a fast host, and more in a UML guest. ipvnet needs
little of it: fields with defaults or factories, frozen instances, equality,
hashing, repr, `replace`, `fields` and `asdict`. This module gives those with
the same names and signatures, built from closures (no exec, no inspect).
`dataclass_transform` tells type checkers to treat it like dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

_T = TypeVar("_T")
_MISSING: Any = object()


class FrozenInstanceError(AttributeError):
    """Assignment to a field of a frozen record (as dataclasses.FrozenInstanceError)."""


class Field:
    __slots__ = ("name", "default", "default_factory", "compare", "repr")

    def __init__(self, default: Any = _MISSING, default_factory: Any = _MISSING, compare: bool = True,
                 repr: bool = True) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare
        self.repr = repr


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | Any = _MISSING, compare: bool = True,
          hash: bool | None = None, repr: bool = True) -> Any:  # noqa: A002 - dataclasses' own names
    return Field(default, default_factory, compare, repr)


def _is_classvar(annotation: Any) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _collect(cls: type) -> tuple[Field, ...]:
    found: dict[str, Field] = {}
    for base in reversed(cls.__mro__[1:]):
        for f in getattr(base, "__record_fields__", ()):
            found[f.name] = f
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if _is_classvar(annotation):
            continue
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, Field) else Field(default=value)
        f.name = name
        if f.default is _MISSING:
            if name in cls.__dict__:
                delattr(cls, name)
        else:
            setattr(cls, name, f.default)
        found[name] = f
    return tuple(found.values())


def _init(fields_: tuple[Field, ...], frozen: bool) -> Callable[..., None]:
    names = {f.name for f in fields_}
    setter = object.__setattr__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(fields_):
            raise TypeError(f"{type(self).__name__}() takes {len(fields_)} arguments, {len(args)} given")
        unknown = set(kwargs) - names
        if unknown:
            raise TypeError(f"{type(self).__name__}() got an unexpected argument {sorted(unknown)[0]!r}")
        for i, f in enumerate(fields_):
            if i < len(args):
                if f.name in kwargs:
                    raise TypeError(f"{type(self).__name__}() got multiple values for {f.name!r}")
                value = args[i]
            elif f.name in kwargs:
                value = kwargs[f.name]
            elif f.default is not _MISSING:
                value = f.default
            elif f.default_factory is not _MISSING:
                value = f.default_factory()
            else:
                raise TypeError(f"{type(self).__name__}() missing argument {f.name!r}")
            setter(self, f.name, value)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    return __init__


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _methods(cls: type, fields_: tuple[Field, ...], frozen: bool) -> None:
    compared = tuple(f.name for f in fields_ if f.compare)
    shown = tuple(f.name for f in fields_ if f.repr)

    def key(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in compared)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    def __repr__(self: Any) -> str:
        return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    cls.__init__ = _init(fields_, frozen)  # type: ignore[misc]
    cls.__eq__ = __eq__  # type: ignore[method-assign,assignment]
    if "__repr__" not in cls.__dict__:
        cls.__repr__ = __repr__  # type: ignore[method-assign,assignment]
    def __hash__(self: Any) -> int:
        return hash(key(self))

    if frozen:
        cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
        cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign,assignment]
        cls.__delattr__ = _frozen_delattr  # type: ignore[method-assign,assignment]
    elif "__hash__" not in cls.__dict__:
        cls.__hash__ = None  # type: ignore[assignment]  # mutable and comparable: unhashable, as dataclasses


@dataclass_transform(field_specifiers=(field,))
def dataclass(cls: type[_T] | None = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
    """@dataclass and @dataclass(frozen=True), as far as ipvnet uses them."""

    def wrap(c: type[_T]) -> type[_T]:
        fields_ = _collect(c)
        c.__record_fields__ = fields_  # type: ignore[attr-defined]
        _methods(c, fields_, frozen)
        return c

    return wrap if cls is None else wrap(cls)


def fields(obj: Any) -> tuple[Field, ...]:
    return tuple(getattr(obj, "__record_fields__", ()))


def replace(obj: _T, /, **changes: Any) -> _T:
    values = {f.name: getattr(obj, f.name) for f in fields(obj)}
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: Any) -> Any:
    if hasattr(obj, "__record_fields__"):
        return {f.name: asdict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(asdict(x) for x in obj)
    if isinstance(obj, dict):
        return {k: asdict(v) for k, v in obj.items()}
    return obj
