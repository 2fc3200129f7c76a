"""Dataclass configs: defaults live in code, YAML files and ``key=value`` hold overrides only.

Every command takes a config dataclass. The command line is generated from its fields
(``patch_size`` becomes ``--patch-size``; booleans get ``--flag/--no-flag``), a YAML file given
with ``--config`` overrides the defaults, and ``key=value`` tokens (dotted keys reach nested
dataclasses) override both. The resolved config is saved beside every output with
:func:`save_config`.

Field metadata understood here (see :func:`option`): ``help``, ``positional`` (collected from the
free arguments), ``cli`` (``False`` hides a field from the command line; it stays settable from
YAML and ``key=value``), ``choices``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from rckd.io import atomic_write_text

__all__ = ["option", "RunConfig", "to_dict", "from_dict", "apply_overrides", "load_config",
           "save_config", "add_config_arguments", "config_from_args", "parse_args", "ConfigError"]

C = TypeVar("C")


class ConfigError(ValueError):
    """A config file or override that does not fit the config dataclass."""


def option(default: Any = dataclasses.MISSING, *, help: str = "", positional: bool = False,
           cli: bool = True, choices: tuple | None = None, default_factory: Any = dataclasses.MISSING):
    """A dataclass field with command-line metadata."""
    meta = {"help": help, "positional": positional, "cli": cli, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class RunConfig:
    """Options every command shares: output folder, device and seed."""

    out: str = option("runs/out", help="output folder")
    device: str = option("auto", help="'auto', 'cpu', 'cuda' or 'cuda:N'")
    seed: int = option(0, help="random seed")


# --------------------------------------------------------------------------- conversion

def to_dict(cfg: Any) -> dict:
    """Return a config dataclass as a plain nested dict (YAML/JSON friendly)."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            value = to_dict(value)
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Coerce a YAML/string value to the annotated type ``tp``."""
    tp, optional = _strip_optional(tp)
    if value is None or (optional and isinstance(value, str) and value.lower() in ("none", "null")):
        if optional or tp is Any:
            return None
        raise ConfigError(f"{where}: None is not allowed")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""] if value else []
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected a boolean, got {value!r}")
    if tp in (int, float, str):
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type[C], data: dict, where: str = "config") -> C:
    """Build ``cls`` from a (possibly partial) nested dict; unknown keys are an error."""
    return _merge(cls(), data, where)


def _merge(cfg: C, data: dict, where: str) -> C:
    hints = _hints(type(cfg))
    names = {f.name for f in dataclasses.fields(cfg)}
    changes = {}
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(sorted(names))})")
        current = getattr(cfg, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            changes[key] = _merge(current, value, f"{where}.{key}")
        else:
            changes[key] = _coerce(value, hints[key], f"{where}.{key}")
    return dataclasses.replace(cfg, **changes)


def apply_overrides(cfg: C, overrides: list[str] | tuple[str, ...]) -> C:
    """Apply ``key=value`` overrides (dotted keys for nested configs; values parsed as YAML)."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        value = yaml.safe_load(raw) if raw != "" else ""
        nested: Any = value
        for part in reversed(key.split(".")):
            nested = {part: nested}
        cfg = _merge(cfg, nested, "override")
    return cfg


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] | tuple = (),
                base: C | None = None) -> C:
    """Defaults of ``cls`` (or ``base``), then the YAML file at ``path``, then ``overrides``."""
    cfg = base if base is not None else cls()
    if path:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of overrides at the top level")
        cfg = _merge(cfg, data, str(path))
    return apply_overrides(cfg, list(overrides))


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


# --------------------------------------------------------------------------- command line

def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one option per top-level field of ``cls`` (defaults shown, values left unset).

    Options default to ``argparse.SUPPRESS`` so only what the user typed overrides the config
    file. Positional fields are filled from the free arguments by :func:`config_from_args`.
    """
    parser.add_argument("--config", metavar="YAML", help="YAML file of overrides")
    parser.add_argument("args", nargs="*", metavar="ARG",
                        help="inputs, then key=value overrides (dotted keys for nested options)")
    hints = _hints(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if not meta.get("cli", True) or meta.get("positional"):
            continue
        tp, _ = _strip_optional(hints[f.name])
        default = getattr(defaults, f.name)
        if dataclasses.is_dataclass(tp):
            continue  # nested configs: YAML or dotted key=value
        help_text = f"{meta.get('help', '')} (default: {default!r})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        if tp is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        origin = typing.get_origin(tp)
        if origin in (list, tuple):
            kwargs["nargs"] = "+"
        elif tp in (int, float):
            kwargs["type"] = tp
        if meta.get("choices"):
            kwargs["choices"] = meta["choices"]
        parser.add_argument(_flag(f.name), **kwargs)


def parse_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` letting inputs and ``key=value`` tokens stand anywhere among the options."""
    ns, extra = parser.parse_known_args(argv)
    unknown = [t for t in extra if t.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    ns.args = list(getattr(ns, "args", None) or []) + extra
    return ns


def _is_override(token: str) -> bool:
    key, sep, _ = token.partition("=")
    return bool(sep) and key.replace(".", "").replace("_", "").isalnum() and not key[0].isdigit()


def config_from_args(cls: type[C], ns: argparse.Namespace) -> C:
    """Resolve a config: defaults < ``--config`` YAML < options typed < ``key=value``."""
    cfg = load_config(cls, getattr(ns, "config", None))
    typed = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)}
    cfg = _merge(cfg, typed, "option")
    free = list(getattr(ns, "args", []) or [])
    overrides = [t for t in free if _is_override(t)]
    positional = [t for t in free if not _is_override(t)]
    pos_fields = [f for f in dataclasses.fields(cls) if f.metadata.get("positional")]
    if positional:
        if not pos_fields:
            raise ConfigError(f"unexpected argument(s): {' '.join(positional)}")
        cfg = _merge(cfg, {pos_fields[0].name: positional}, "argument")
    return apply_overrides(cfg, overrides)
