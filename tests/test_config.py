"""Tests for rckd.config: YAML and key=value overrides, CLI generation."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rckd.config import (ConfigError, RunConfig, add_config_arguments, apply_overrides,
                         config_from_args, load_config, option, parse_args, save_config, to_dict)


@dataclasses.dataclass
class Inner:
    lr: float = 0.1
    steps: int = 10


@dataclasses.dataclass
class Cfg(RunConfig):
    inputs: list[str] = option(default_factory=list, positional=True, help="inputs")
    patch_size: int = option(256, help="tile size")
    tissue_detection: bool = option(True, help="detect tissue")
    mpp: float | None = option(None, help="mpp")
    optim: Inner = dataclasses.field(default_factory=Inner)


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, Cfg)
    return config_from_args(Cfg, parse_args(parser, argv))


def test_defaults_options_overrides_and_positionals():
    cfg = _parse(["a.svs", "b.svs", "--patch-size", "512", "--no-tissue-detection",
                  "optim.lr=0.5", "mpp=0.25"])
    assert cfg.inputs == ["a.svs", "b.svs"]
    assert cfg.patch_size == 512 and cfg.tissue_detection is False
    assert cfg.optim.lr == 0.5 and cfg.optim.steps == 10 and cfg.mpp == 0.25


def test_yaml_then_options_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("patch_size: 128\noptim:\n  steps: 3\nseed: 7\n")
    cfg = _parse(["--config", str(path), "--seed", "9", "optim.steps=4"])
    assert (cfg.patch_size, cfg.seed, cfg.optim.steps) == (128, 9, 4)


def test_unknown_key_and_bad_type_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        apply_overrides(Cfg(), ["nope=1"])
    with pytest.raises(ConfigError, match="expected int"):
        apply_overrides(Cfg(), ["patch_size=big"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Cfg, tmp_path / "missing.yaml")


def test_saved_config_round_trips(tmp_path):
    cfg = apply_overrides(Cfg(), ["optim.lr=0.01", "inputs=[x.svs]"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(Cfg, path) == cfg
    assert to_dict(cfg)["optim"] == {"lr": 0.01, "steps": 10}
