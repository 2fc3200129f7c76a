"""Declaring options: :func:`option` fields on :class:`Config` dataclasses.

A config is a dataclass whose fields are options. Each option is declared once, with its type,
default, help and constraints, and nothing else restates them: the command line, YAML files,
``key=value`` overrides and grid files are all read against these declarations
(:mod:`rckd.config.sources`), and constructing a config in Python checks them too::

    @dataclasses.dataclass
    class MyConfig(RunConfig):
        DEFAULTS = {"out": "runs/mine"}           # inherited options, other defaults

        steps: int = option(100, ge=1, help="optimizer steps")
        eval_every: int | None = option(None, ge=1, help="evaluate every N steps (none: off)")
        loss: str = option("bce", choices=("bce", "kl"), help="loss")
        teacher: TeacherOptions = section(TeacherOptions)   # nested options: teacher.name=...

``X | None`` with a None default is the one way to say "off" or "automatic". A subclass changes
an inherited option's default through ``DEFAULTS`` (type, help and constraints stay those of the
declaration it inherits).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from rckd.config.values import Invalid, key_path, merge, options_of

__all__ = ["ConfigError", "Config", "RunConfig", "option", "section", "to_dict", "options_of",
           "device_spec", "deferred_validation", "equivalent"]

_DEFERRED = contextvars.ContextVar("rckd_config_deferred", default=False)


class ConfigError(ValueError):
    """An option that does not fit its declaration; the message is one line naming where."""


def option(default: Any = dataclasses.MISSING, *, help: str = "",
           default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
           choices: tuple | None = None, ge: float | None = None, gt: float | None = None,
           le: float | None = None, lt: float | None = None,
           check: Callable[[Any], Any] | None = None, positional: bool = False,
           cli: bool = True) -> Any:
    """A config field: default, help and the constraints every source is checked against.

    Args:
        default, default_factory: as for :func:`dataclasses.field`.
        help: one line shown by ``--help``.
        choices: allowed values (exact spelling; a near miss is refused with a suggestion).
        ge, gt, le, lt: bounds of numbers (of each item for lists).
        check: ``fn(value) -> canonical value`` raising ``ValueError`` for other formats.
        positional: filled from the command line's free arguments.
        cli: ``False`` keeps the option off the ``--flags`` (YAML and ``key=value`` still set it).
    """
    meta = {"help": help, "choices": tuple(choices) if choices else None, "ge": ge, "gt": gt,
            "le": le, "lt": lt, "check": check, "positional": positional, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls: type, help: str = "") -> Any:
    """A nested config (its options are set as ``name.option=value`` or a YAML mapping)."""
    return dataclasses.field(default_factory=cls, metadata={"help": help or (cls.__doc__ or "").strip(),
                                                            "cli": False})


def _inherited(cls: type, name: str) -> tuple[dataclasses.Field, Any]:
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            for f, tp in options_of(base):
                if f.name == name:
                    return f, tp
    raise TypeError(f"{cls.__name__}.DEFAULTS: {name!r} is not an inherited option")


class Config:
    """Base of every config dataclass: ``DEFAULTS`` overrides and checks on construction.

    ``DEFAULTS`` (a plain class attribute, not a field) maps inherited option names to this
    class's defaults. Every construction (``MyConfig(...)``, :func:`dataclasses.replace`)
    converts and checks each option against its declaration and raises :class:`ConfigError`
    naming the option; values come out canonical (``"CPU"`` becomes ``"cpu"``). Relations between
    options are checked by :meth:`validate`.
    """

    DEFAULTS: Mapping[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("DEFAULTS", {})
        if not own:
            return
        annotations = cls.__dict__.get("__annotations__")
        if annotations is None:
            annotations = {}
            cls.__annotations__ = annotations
        for name, value in own.items():
            parent, tp = _inherited(cls, name)
            annotations[name] = tp
            if callable(value) and not isinstance(value, (str, int, float, bool, type(None))):
                field = dataclasses.field(default_factory=value, metadata=parent.metadata)
            else:
                field = dataclasses.field(default=value, metadata=parent.metadata)
            setattr(cls, name, field)

    def __post_init__(self) -> None:
        for f, tp in options_of(type(self)):
            value = getattr(self, f.name)
            try:
                fixed = merge(dataclasses.MISSING, value, tp, f.metadata)
            except Invalid as exc:
                raise ConfigError(f"{key_path((f.name, *exc.path))}: {exc.problem}") from None
            if fixed is not value:
                object.__setattr__(self, f.name, fixed)
        if not _DEFERRED.get():
            self.check_relations()

    def validate(self) -> None:
        """Check relations between options (override; raise ``ValueError`` naming the options)."""

    def check_relations(self) -> None:
        """:meth:`validate` of this config and of the configs it holds (sections, and configs in
        lists or mappings), as :class:`ConfigError`."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            held = value.values() if isinstance(value, Mapping) else value if isinstance(value, (list, tuple)) else [value]
            for item in held:
                if isinstance(item, Config):
                    item.check_relations()
        try:
            self.validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@contextlib.contextmanager
def deferred_validation():
    """Within the block, configs check each option but not their relations (:meth:`Config.validate`):
    a config resolved from several sources may pass through combinations no source meant."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def device_spec(value: str) -> str:
    """A device name in canonical spelling: auto, cpu, cuda, cuda:N or mps (any case)."""
    name = value.strip().lower()
    if not _DEVICE.fullmatch(name):
        raise ValueError(f"expected auto, cpu, cuda, cuda:N or mps, got {value!r}")
    return name


@dataclasses.dataclass
class RunConfig(Config):
    """Options every command shares: output folder, device and seed."""

    out: str = option("runs/out", help="output folder")
    device: str = option("auto", check=device_spec,
                         help="auto (CUDA when available, else CPU), cpu, cuda, cuda:N or mps")
    seed: int = option(0, ge=0, help="random seed")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(cfg: Any) -> dict:
    """A config as a plain nested dict (YAML/JSON friendly): sections become mappings."""
    return {f.name: _plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def equivalent(saved: Any, current: Any) -> bool:
    """Whether a value saved with an earlier run means what ``current`` means now.

    Equal values do; so do the spellings of "off"/"automatic" used before ``none`` became the
    only one (``0`` or ``""`` saved where the option is now None), and a relative path saved by an
    earlier run that names the same existing file or folder as the path used now. Mappings
    compare key by key over the keys both have (an option added later does not count).
    """
    if saved == current:
        return True
    if current is None and not isinstance(saved, bool) and saved in (0, ""):
        return True
    if isinstance(saved, Mapping) and isinstance(current, Mapping):
        return all(equivalent(saved[k], current[k]) for k in set(saved) & set(current))
    if isinstance(saved, str) and isinstance(current, str) and saved and current:
        a, b = Path(saved).expanduser(), Path(current).expanduser()
        return a.exists() and b.exists() and a.resolve() == b.resolve()
    return False
