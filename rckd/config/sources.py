"""Where option values come from, and one-line errors that say so.

A config is resolved from layers laid over its defaults, each a mapping from one source
(:class:`Origin`): a YAML file (keys remember their line and column), a ``--flag``, a
``key=value`` override (text, dotted keys reach into sections and mappings) or a mapping built by
code. Every value goes through the same conversion and checks (:mod:`rckd.config.values`);
mappings merge key by key. A problem raises :class:`~rckd.config.fields.ConfigError` with one
line: where (``grid.yaml:12:5``, ``--steps``, ``steps=1.5``), the key path, and what is wrong::

    grid.yaml:12:5: pretrain_methods.rckd.stesp: unknown option (did you mean 'steps'?)
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, TypeVar

import yaml

from rckd.config.fields import Config, ConfigError, deferred_validation, to_dict
from rckd.config.values import Invalid, key_path, merge
from rckd.io import atomic_write_text

__all__ = ["Origin", "FileOrigin", "FlagOrigin", "TextOrigin", "Layer", "resolve", "read_yaml", "file_layer",
           "parse_override", "is_override", "load_config", "from_dict", "update", "apply_overrides",
           "save_config", "key_path"]

C = TypeVar("C")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


class Origin:
    """A source of option values; :meth:`where` names the place of a key path in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def where(self, path: tuple) -> str:
        return f"{self.name}: {key_path(path)}" if path else self.name

    def error(self, exc: Invalid, path: tuple = ()) -> ConfigError:
        """A one-line :class:`ConfigError` for ``exc`` found at ``path`` (plus ``exc.path``)."""
        return ConfigError(f"{self.where(tuple(path) + exc.path)}: {exc.problem}")


class FileOrigin(Origin):
    """A YAML file; ``marks`` maps key paths to ``(line, column)`` (1-based)."""

    def __init__(self, path: str | Path, marks: Mapping[tuple, tuple[int, int]]) -> None:
        super().__init__(str(path))
        self.marks = dict(marks)

    def where(self, path: tuple) -> str:
        for n in range(len(path), 0, -1):
            if path[:n] in self.marks:
                line, col = self.marks[path[:n]]
                return f"{self.name}:{line}:{col}: {key_path(path)}"
        return super().where(path)


class FlagOrigin(Origin):
    """A command-line flag (``--patch-size``): the flag names the option."""

    def __init__(self, flag: str, key: str) -> None:
        super().__init__(flag)
        self.key = key

    def where(self, path: tuple) -> str:
        return self.name if tuple(path[:1]) == (self.key,) and len(path) <= 2 else super().where(path)


class TextOrigin(Origin):
    """A ``key=value`` token: it names the option itself unless the problem lies deeper."""

    def __init__(self, token: str, path: tuple) -> None:
        super().__init__(token)
        self.path = path

    def where(self, path: tuple) -> str:
        path = tuple(path)
        own = path[:len(self.path)] == self.path and all(isinstance(p, int) for p in path[len(self.path):])
        return self.name if own else super().where(path)


@dataclasses.dataclass(frozen=True)
class Layer:
    """One source's values (a possibly nested mapping) and where they come from."""

    values: Mapping[str, Any]
    origin: Origin


def resolve(cls: type[C], layers: Iterable[Layer], base: C | None = None) -> C:
    """``base`` (default: ``cls()``) with each layer merged over it, in order.

    Each value is checked as its layer is merged (errors name that layer); relations between
    options (:meth:`Config.validate`) are checked once, on the result.
    """
    with deferred_validation():
        cfg = base if base is not None else cls()
        for layer in layers:
            try:
                cfg = merge(cfg, layer.values, cls)
            except Invalid as exc:
                raise layer.origin.error(exc) from None
    if isinstance(cfg, Config):
        cfg.check_relations()
    return cfg


def _one_line(exc: yaml.YAMLError) -> tuple[str, Any]:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return (f"{context}, {problem}" if context else problem), getattr(exc, "problem_mark", None)


def _marks(node: yaml.Node, path: tuple, out: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (path + (key_node.value,))
            out[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _marks(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _marks(item, path + (i,), out)


def read_yaml(path: str | Path) -> tuple[Any, FileOrigin]:
    """The data of a YAML file and a :class:`FileOrigin` remembering where each key is.

    Raises ``ConfigError`` (missing file, or invalid YAML with its line and column).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    loader = yaml.SafeLoader(path.read_text(encoding="utf-8"))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        problem, mark = _one_line(exc)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
    marks: dict = {}
    if node is not None:
        _marks(node, (), marks)
    return data, FileOrigin(path, marks)


def file_layer(path: str | Path) -> Layer:
    """A YAML file of overrides (a mapping at the top level) as a layer."""
    data, origin = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return Layer(data, origin)


def is_override(token: str) -> bool:
    """Whether a command-line token has the form ``key=value`` with a (dotted) identifier key."""
    key, sep, _ = token.partition("=")
    return bool(sep) and bool(_KEY.fullmatch(key))


def parse_override(token: str) -> Layer:
    """``a.b=text`` as the layer ``{"a": {"b": "text"}}`` (the text is converted by the option)."""
    key, sep, text = token.partition("=")
    if not sep or not _KEY.fullmatch(key):
        raise ConfigError(f"{token}: expected key=value (key a name, dotted for nested options)")
    parts = tuple(key.split("."))
    value: Any = text
    for part in reversed(parts):
        value = {part: value}
    return Layer(value, TextOrigin(token, parts))


def load_config(cls: type[C], path: str | Path | None = None, overrides: Iterable[str] = (),
                base: C | None = None) -> C:
    """Defaults of ``cls`` (or ``base``), then the YAML file at ``path``, then ``key=value``s."""
    layers = [file_layer(path)] if path else []
    layers += [parse_override(t) for t in overrides]
    return resolve(cls, layers, base)


def from_dict(cls: type[C], data: Mapping[str, Any], where: str = "config") -> C:
    """``cls`` from a (possibly partial, nested) mapping, checked like any other source."""
    return resolve(cls, [Layer(data, Origin(where))])


def update(cfg: C, data: Mapping[str, Any], where: str = "update") -> C:
    """``cfg`` with a (nested) mapping merged over it: sections and mappings key by key."""
    return resolve(type(cfg), [Layer(data, Origin(where))], cfg)


def apply_overrides(cfg: C, overrides: Iterable[str]) -> C:
    """``cfg`` with ``key=value`` overrides applied (dotted keys for nested options)."""
    return resolve(type(cfg), [parse_override(t) for t in overrides], cfg)


def save_config(cfg: Any, path: str | Path) -> Path:
    """Write the resolved config as YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))
