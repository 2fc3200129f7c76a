"""Declaring options: constraints checked on construction, inherited defaults, device names."""

from __future__ import annotations

import dataclasses

import pytest

from rckd.config import Config, ConfigError, RunConfig, option, section, to_dict
from rckd.config.fields import device_spec


@dataclasses.dataclass
class Inner(Config):
    lr: float = option(0.1, gt=0)


@dataclasses.dataclass
class Base(RunConfig):
    steps: int = option(10, ge=1, help="optimizer steps")
    every: int | None = option(None, ge=1, help="none: off")


@dataclasses.dataclass
class Child(Base):
    DEFAULTS = {"out": "runs/child", "steps": 99}

    loss: str = option("bce", choices=("bce", "kl"))
    inner: Inner = section(Inner)
    pair: tuple[float, float] = option((0.5, 1.0), gt=0, le=1)

    def validate(self) -> None:
        if self.pair[0] > self.pair[1]:
            raise ValueError("pair: the minimum exceeds the maximum")


def test_defaults_overrides_keep_the_inherited_declaration():
    c = Child()
    assert (c.out, c.steps, c.every) == ("runs/child", 99, None)
    assert Base().steps == 10 and Base().out == "runs/out"
    (steps,) = [f for f in dataclasses.fields(Child) if f.name == "steps"]
    assert steps.metadata["ge"] == 1 and steps.metadata["help"] == "optimizer steps"
    with pytest.raises(ConfigError, match="steps: must be at least 1, got 0"):
        Child(steps=0)
    assert [f.name for f in dataclasses.fields(Child)][:4] == ["out", "device", "seed", "steps"]


def test_defaults_must_name_inherited_options():
    with pytest.raises(TypeError, match="'nope' is not an inherited option"):
        @dataclasses.dataclass
        class Bad(Base):
            DEFAULTS = {"nope": 1}


def test_construction_converts_checks_and_relates():
    c = Child(loss="kl", device="CPU", steps="7")
    assert (c.loss, c.device, c.steps) == ("kl", "cpu", 7)
    with pytest.raises(ConfigError, match=r"pair\[1\]: must be at most 1"):
        Child(pair=(0.5, 2.0))
    with pytest.raises(ConfigError, match="pair: the minimum exceeds the maximum"):
        Child(pair=(0.9, 0.2))
    with pytest.raises(ConfigError, match="device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"):
        Child(device="gpu")


def test_device_names():
    assert [device_spec(d) for d in ("AUTO", "cpu", "cuda", "Cuda:1", "mps")] == ["auto", "cpu", "cuda", "cuda:1", "mps"]
    for bad in ("gpu", "cuda:x", "cpu0", ""):
        with pytest.raises(ValueError):
            device_spec(bad)


def test_to_dict_is_plain():
    assert to_dict(Child())["inner"] == {"lr": 0.1} and to_dict(Child())["pair"] == [0.5, 1.0]


def test_no_config_of_rckd_redeclares_an_inherited_option():
    """Inherited options change their defaults through DEFAULTS, never by a second declaration."""
    import importlib
    import pkgutil

    import rckd

    for info in pkgutil.walk_packages(rckd.__path__, "rckd."):
        importlib.import_module(info.name)
    classes, seen = [Config], set()
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if cls in seen or not cls.__module__.startswith("rckd.") or not dataclasses.is_dataclass(cls):
            continue
        seen.add(cls)
        inherited = {f.name for base in cls.__mro__[1:] if dataclasses.is_dataclass(base)
                     for f in dataclasses.fields(base)}
        own = set(cls.__dict__.get("__annotations__", {})) - set(cls.__dict__.get("DEFAULTS", {}))
        assert not own & inherited, f"{cls.__qualname__} re-declares {sorted(own & inherited)}"
    assert len(seen) >= 15  # every config of the package was looked at
