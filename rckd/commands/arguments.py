"""The command line of one verb, generated from its config's option declarations.

Each top-level option becomes a flag (``patch_size`` -> ``--patch-size``; booleans get
``--flag/--no-flag``; lists take several values); nested sections and mappings are set with
``key=value`` or YAML and are listed under the options. Flags are read as text and converted by
the option's own declaration, exactly like YAML and ``key=value`` (:mod:`rckd.config`).

Resolution order, each source laid over the previous one::

    defaults < GRID.yaml (verbs whose first argument is a config file) < --config YAML
             < typed --flags < positional inputs < key=value overrides

Free arguments are ``key=value`` overrides when the key names an option (or when no file of that
name exists, so that a typo is reported), and inputs otherwise: a slide called ``a=b.svs`` stays
an input.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path
from typing import Any, Sequence

from rckd.config import ConfigError, Layer, file_layer, options_of, parse_override, resolve
from rckd.config.sources import FlagOrigin, Origin, is_override
from rckd.config.values import did_you_mean, is_mapping_type, unwrap

__all__ = ["add_options", "parse_args", "config_from_args", "flag_name"]


def flag_name(name: str) -> str:
    """``patch_size`` -> ``--patch-size``."""
    return "--" + name.replace("_", "-")


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) or "[]"
    return str(value)


def _bounds(meta: typing.Mapping) -> str:
    marks = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return "".join(f"; {sign} {meta[k]}" for k, sign in marks.items() if meta.get(k) is not None)


def _help(f, default: Any) -> str:
    meta = f.metadata
    text = meta.get("help", "")
    return f"{text} (default: {_shown(default)}{_bounds(meta)})".replace("%", "%%")


def _nested_lines(cls: type) -> list[str]:
    """``  name.option  help (default: ...)`` for options set with key=value or YAML only."""
    lines, defaults = [], cls()
    for f, tp in options_of(cls):
        base = unwrap(tp)[0]
        if dataclasses.is_dataclass(base):
            section = getattr(defaults, f.name)
            lines += [f"  {f.name}.{g.name}  {_help(g, getattr(section, g.name))}" for g, _ in options_of(base)]
        elif is_mapping_type(tp):
            lines.append(f"  {f.name}.KEY  {f.metadata.get('help', '')}")
        elif not f.metadata.get("cli", True):
            lines.append(f"  {f.name}  {_help(f, getattr(defaults, f.name))}")
    return [line.replace("%%", "%") for line in lines]


def add_options(parser: argparse.ArgumentParser, cls: type, config_argument: bool = False) -> None:
    """Add ``--config``, the free arguments and one flag per top-level option of ``cls``."""
    parser.add_argument("--config", metavar="YAML", help="YAML file of overrides")
    first = "GRID.yaml, then " if config_argument else ""
    parser.add_argument("args", nargs="*", metavar="ARG",
                        help=f"{first}inputs and key=value overrides (dotted keys for nested options)")
    defaults = cls()
    for f, tp in options_of(cls):
        meta = f.metadata
        base, optional, target = unwrap(tp)
        if (not meta.get("cli", True) or meta.get("positional") or target is not None
                or dataclasses.is_dataclass(base) or is_mapping_type(base)):
            continue
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                  "help": _help(f, getattr(defaults, f.name))}
        if base is bool and not optional:
            parser.add_argument(flag_name(f.name), action=argparse.BooleanOptionalAction, **kwargs)
            continue
        choices = meta.get("choices")
        kwargs["metavar"] = "{" + ",".join(map(str, choices)) + "}" if choices else f.name.upper()
        if typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            kwargs["nargs"] = "+"
        parser.add_argument(flag_name(f.name), **kwargs)
    nested = _nested_lines(cls)
    if nested:
        parser.epilog = "options set with key=value or YAML:\n" + "\n".join(nested)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` letting inputs and ``key=value`` tokens stand anywhere among the options."""
    ns, extra = parser.parse_known_args(list(argv))
    unknown = [t for t in extra if t.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    ns.args = list(getattr(ns, "args", None) or []) + extra
    return ns


def _split(cls: type, tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """Free tokens as (inputs, overrides); see the module docstring."""
    names = {f.name for f, _ in options_of(cls)}
    inputs, overrides = [], []
    for token in tokens:
        key = token.partition("=")[0].split(".")[0]
        if is_override(token) and key in names:
            overrides.append(token)
        elif is_override(token) and not Path(token).exists():
            raise ConfigError(f"{token}: no option '{key}'{did_you_mean(key, names)}, and no such file")
        else:
            inputs.append(token)
    return inputs, overrides


def config_from_args(cls: type, ns: argparse.Namespace, config_argument: bool = False) -> Any:
    """The config of one command line (resolution order in the module docstring)."""
    inputs, overrides = _split(cls, getattr(ns, "args", []) or [])
    layers: list[Layer] = []
    if config_argument and inputs:
        layers.append(file_layer(inputs.pop(0)))
    if getattr(ns, "config", None):
        layers.append(file_layer(ns.config))
    for f, _ in options_of(cls):
        if hasattr(ns, f.name):
            layers.append(Layer({f.name: getattr(ns, f.name)}, FlagOrigin(flag_name(f.name), f.name)))
    if inputs:
        fields = [f for f, _ in options_of(cls) if f.metadata.get("positional")]
        if not fields:
            raise ConfigError(f"unexpected argument(s): {' '.join(inputs)}")
        layers.append(Layer({fields[0].name: inputs}, Origin("arguments")))
    layers += [parse_override(t) for t in overrides]
    return resolve(cls, layers)
