"""One value against its declaration: type conversion, then the option's constraints.

Every source (``--flags``, YAML files, ``key=value``, grid files, Python code) goes through
:func:`convert` and :func:`check`, so a value is accepted or refused by one set of rules:

- **Types.** ``int`` takes integers and integral text or floats (``"12"``, ``12.0``), never
  ``1.5`` (nothing is truncated) nor booleans; ``float`` takes numbers and numeric text
  (``"1e-3"``); ``bool`` takes ``true/false/yes/no/on/off/1/0`` in any case; ``str`` takes text
  (or a number, written as text). ``X | None``: ``none`` or ``null`` (any case) means None, the one
  spelling of "off" and "automatic". Lists take a list, comma-separated text (``0,1,2``) or a
  single value (a list of one); fixed-length tuples (``tuple[float, float]``) insist on their
  length. Mappings take a mapping (or YAML text of one). Text headed for an undeclared type
  (``dict`` values, ``Any``) is read as YAML.
- **Choices** (``option(choices=...)``): exactly one of the choices; anything else (``SGD`` for
  ``sgd`` included) is refused, naming the choices and suggesting the closest one.
- **Ranges** (``option(ge=, gt=, le=, lt=)``): numbers, and each number of a list, must lie in the
  range.
- **Checks** (``option(check=fn)``): ``fn(value)`` returns the canonical value or raises
  ``ValueError`` with the problem.

Problems are raised as :class:`Invalid`, carrying the key path below the value that failed;
:mod:`rckd.config.sources` turns them into one-line :class:`~rckd.config.fields.ConfigError`
messages naming the source.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Annotated, Iterable, Mapping, Sequence

import yaml

__all__ = ["Invalid", "Overrides", "convert", "check", "merge", "mapping", "options_of", "unwrap",
           "did_you_mean", "describe", "is_mapping_type", "key_path", "NONE_WORDS"]

NONE_WORDS = frozenset({"none", "null", "~"})
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class Invalid(ValueError):
    """A value that does not fit its declaration; ``path`` locates it below the value checked."""

    def __init__(self, problem: str, path: tuple = ()) -> None:
        super().__init__(problem)
        self.problem, self.path = problem, tuple(path)

    def below(self, *keys: object) -> "Invalid":
        """The same problem located ``keys`` deeper (keys are prepended to the path)."""
        return Invalid(self.problem, (*keys, *self.path))


@dataclasses.dataclass(frozen=True)
class _OverridesOf:
    target: type


class Overrides:
    """Annotation for a mapping of some options of a config class: ``Overrides[PretrainConfig]``.

    Each key must be an option of the class and each value must pass that option's conversion and
    checks (nested sections recursively); the value stays a plain ``dict`` of what was given, so
    it can later be laid over other overrides and built into the full config.
    """

    def __class_getitem__(cls, target: type) -> Any:
        return Annotated[dict, _OverridesOf(target)]


def unwrap(tp: Any) -> tuple[Any, bool, Any]:
    """``(base type, optional?, overrides target or None)`` of an annotation."""
    target = None
    if typing.get_origin(tp) is Annotated:
        tp, *extras = typing.get_args(tp)
        target = next((e.target for e in extras if isinstance(e, _OverridesOf)), None)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            inner, _, target2 = unwrap(args[0])
            return inner, True, target or target2
    return tp, False, target


@functools.lru_cache(maxsize=None)
def options_of(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """``(field, resolved annotation)`` of every option of a config class, in order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def is_mapping_type(tp: Any) -> bool:
    """Whether values of annotation ``tp`` are mappings merged key by key."""
    base = unwrap(tp)[0]
    return base is dict or typing.get_origin(base) is dict


def key_path(path: Iterable[object]) -> str:
    """``("a", "b", 0, "c")`` as ``a.b[0].c``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, else the known names listed."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (known: {', '.join(known)})" if known else ""


def describe(tp: Any) -> str:
    """A short human name of an annotation (``an integer``, ``a list of numbers``...)."""
    base, optional, target = unwrap(tp)
    if target is not None:
        text = f"a mapping of {target.__name__} options"
    elif base is bool:
        text = "true or false"
    elif base is int:
        text = "an integer"
    elif base is float:
        text = "a number"
    elif base is str:
        text = "text"
    elif typing.get_origin(base) in (list, tuple) or base in (list, tuple):
        args = typing.get_args(base)
        if typing.get_origin(base) is tuple and args and args[-1] is not Ellipsis:
            text = f"{len(args)} values"
        else:
            text = "a list"
    elif is_mapping_type(base) or dataclasses.is_dataclass(base):
        text = "a mapping"
    else:
        text = getattr(base, "__name__", str(base))
    return text + (" or none" if optional else "")


def _yaml(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise Invalid(f"cannot read {text!r} as YAML ({getattr(exc, 'problem', None) or exc})") from None


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise Invalid(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    number = value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                raise Invalid(f"expected an integer, got {value!r}") from None
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        return int(number)
    raise Invalid(f"expected an integer, got {value!r}")


def _float(value: Any) -> float:
    if isinstance(value, bool):
        raise Invalid(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise Invalid(f"expected a number, got {value!r}")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise Invalid(f"expected true or false, got {value!r}")


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise Invalid(f"expected text, got {value!r}")


def _items(value: Any) -> list:
    """A list from a list/tuple, comma-separated (or YAML ``[...]``) text, or one value."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = _yaml(text)
        else:
            return [v.strip() for v in text.split(",") if v.strip()] if text else []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Mapping):
        raise Invalid(f"expected a list, got a mapping {dict(value)!r}")
    return [value]


def _sequence(value: Any, base: Any) -> list | tuple:
    origin = typing.get_origin(base) or base
    args = typing.get_args(base)
    items = _items(value)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(items) != len(args):
            raise Invalid(f"expected a list of {len(args)} values, got {value!r}")
        return tuple(_at(i, convert, v, a) for i, (v, a) in enumerate(zip(items, args)))
    item_tp = args[0] if args else Any
    out = [_at(i, convert, v, item_tp) for i, v in enumerate(items)]
    return tuple(out) if origin is tuple else out


def _at(key: object, fn, *args: Any) -> Any:
    """``fn(*args)`` with any :class:`Invalid` located below ``key``."""
    try:
        return fn(*args)
    except Invalid as exc:
        raise exc.below(key) from None


def mapping(value: Any) -> Mapping:
    """A mapping from a mapping or from YAML text of one."""
    if isinstance(value, str):
        value = _yaml(value) if value.strip() else {}
    if not isinstance(value, Mapping):
        raise Invalid(f"expected a mapping, got {value!r}")
    return value


def convert(value: Any, tp: Any) -> Any:
    """``value`` converted to annotation ``tp`` (see the module docstring), or :class:`Invalid`.

    Mappings and config sections are built by :func:`merge` over nothing.
    """
    base, optional, _ = unwrap(tp)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        if optional or base is Any:
            return None
        raise Invalid(f"a value is required: expected {describe(tp)}")
    if base is Any:
        return _yaml(value) if isinstance(value, str) else value
    if base is bool:
        return _bool(value)
    if base is int:
        return _int(value)
    if base is float:
        return _float(value)
    if base is str:
        return _str(value)
    origin = typing.get_origin(base)
    if origin in (list, tuple) or base in (list, tuple):
        return _sequence(value, base)
    if is_mapping_type(base) or dataclasses.is_dataclass(base):
        return merge(dataclasses.MISSING, value, tp)
    if isinstance(base, type) and isinstance(value, base):
        return value
    raise Invalid(f"expected {describe(tp)}, got {value!r}")


def _choice(value: Any, choices: Sequence) -> Any:
    """Exactly one of ``choices``: a misspelling (case included) is refused, never run as something
    else, with the intended spelling suggested."""
    if value in choices:
        return value
    import difflib

    words = [c for c in choices if isinstance(c, str)]
    same = [c for c in words if isinstance(value, str) and c.lower() == value.strip().lower()]
    near = same or difflib.get_close_matches(str(value), words, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise Invalid(f"expected one of {', '.join(map(str, choices))}, got {value!r}{hint}")


def _in_range(value: Any, meta: Mapping) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if meta.get("ge") is not None and not value >= meta["ge"]:
        raise Invalid(f"must be at least {meta['ge']}, got {value!r}")
    if meta.get("gt") is not None and not value > meta["gt"]:
        raise Invalid(f"must be greater than {meta['gt']}, got {value!r}")
    if meta.get("le") is not None and not value <= meta["le"]:
        raise Invalid(f"must be at most {meta['le']}, got {value!r}")
    if meta.get("lt") is not None and not value < meta["lt"]:
        raise Invalid(f"must be less than {meta['lt']}, got {value!r}")


def _check_one(value: Any, meta: Mapping) -> Any:
    if meta.get("choices"):
        value = _choice(value, meta["choices"])
    _in_range(value, meta)
    if meta.get("check") is not None:
        try:
            value = meta["check"](value)
        except Invalid:
            raise
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    return value


def check(value: Any, meta: Mapping) -> Any:
    """``value`` (already converted) against an option's choices, range and check.

    Lists and tuples are checked item by item; None (an optional option left unset) passes.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = [_at(i, _check_one, v, meta) for i, v in enumerate(value)]
        return type(value)(items)
    return _check_one(value, meta)


def _is_none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)


def merge(current: Any, value: Any, tp: Any, meta: Mapping | None = None) -> Any:
    """``value`` laid over ``current`` (``dataclasses.MISSING``: nothing yet) for annotation ``tp``.

    Config sections and mappings merge key by key (so ``a.x=1`` then ``a.y=2`` keeps both);
    anything else is replaced by ``value``, converted and checked against ``meta``.
    """
    base, optional, target = unwrap(tp)
    if optional and _is_none(value):
        return None
    if target is not None:
        return _merge_options(current if isinstance(current, Mapping) else {}, value, target, partial=True)
    if dataclasses.is_dataclass(base):
        if isinstance(value, base):
            return value
        return _merge_options(current, value, base, partial=False)
    if is_mapping_type(base):
        args = typing.get_args(base)
        value_tp = args[1] if len(args) == 2 else Any
        out = dict(current) if isinstance(current, Mapping) else {}
        for key, item in mapping(value).items():
            out[key] = _at(key, merge, out.get(key, dataclasses.MISSING), item, value_tp)
        return out
    if base is Any and isinstance(value, Mapping):  # undeclared nested mappings merge too
        return merge(current, value, dict)
    return check(convert(value, tp), meta or {})


def _merge_options(current: Any, value: Any, cls: type, partial: bool) -> Any:
    """Options of config class ``cls`` from ``value`` over ``current``.

    ``partial``: ``current`` and the result are plain dicts of some options (``Overrides``);
    otherwise they are ``cls`` instances (``MISSING``: built from ``value`` alone).
    """
    fields = {f.name: (f, tp) for f, tp in options_of(cls)}
    changes = {}
    for key, item in mapping(value).items():
        if key not in fields:
            raise Invalid(f"unknown option{did_you_mean(str(key), fields)}", (key,))
        f, ftp = fields[key]
        if partial:
            prev = current.get(key, dataclasses.MISSING)
            if dataclasses.is_dataclass(unwrap(ftp)[0]):  # a nested section: still partial
                ftp = Overrides[unwrap(ftp)[0]]
        else:
            prev = getattr(current, key) if current is not dataclasses.MISSING else dataclasses.MISSING
        changes[key] = _at(key, merge, prev, item, ftp, f.metadata)
    if partial:
        return {**current, **changes}
    if current is dataclasses.MISSING:
        missing = [n for n, (f, _) in fields.items() if n not in changes
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise Invalid(f"missing option(s) {', '.join(missing)}")
        return cls(**changes)
    return dataclasses.replace(current, **changes)
