"""The command line generated from config declarations, resolved like every other source."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from rckd.commands.arguments import add_options, config_from_args, parse_args
from rckd.config import Config, ConfigError, RunConfig, option, section


@dataclasses.dataclass
class Inner(Config):
    lr: float = option(0.1, gt=0, help="learning rate")


@dataclasses.dataclass
class Cfg(RunConfig):
    inputs: list[str] = option(default_factory=list, positional=True, help="inputs")
    patch_size: int = option(256, ge=1, help="tile size")
    tissue_detection: bool = option(True, help="detect tissue")
    mpp: float | None = option(None, gt=0, help="mpp")
    loss: str = option("bce", choices=("bce", "kl"), help="loss")
    optim: Inner = section(Inner)


def _parse(argv, config_argument=False):
    parser = argparse.ArgumentParser()
    add_options(parser, Cfg, config_argument)
    return config_from_args(Cfg, parse_args(parser, argv), config_argument)


def test_flags_inputs_and_overrides():
    cfg = _parse(["a.svs", "b.svs", "--patch-size", "512", "--no-tissue-detection", "optim.lr=0.5",
                  "mpp=0.25", "--loss", "kl"])
    assert cfg.inputs == ["a.svs", "b.svs"] and cfg.patch_size == 512 and cfg.tissue_detection is False
    assert cfg.optim.lr == 0.5 and cfg.mpp == 0.25 and cfg.loss == "kl"


def test_flags_go_through_the_option_checks():
    with pytest.raises(ConfigError, match=r"^--loss: expected one of bce, kl, got 'KL' \(did you mean 'kl'\?\)$"):
        _parse(["--loss", "KL"])
    with pytest.raises(ConfigError, match=r"^--patch-size: expected an integer, got '1\.5'$"):
        _parse(["--patch-size", "1.5"])
    with pytest.raises(ConfigError, match=r"^--patch-size: must be at least 1, got 0$"):
        _parse(["--patch-size", "0"])
    with pytest.raises(ConfigError, match="^--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'$"):
        _parse(["--device", "gpu"])
    assert _parse(["--device", "CPU"]).device == "cpu" and _parse(["--mpp", "none"]).mpp is None


def test_order_file_then_config_then_flags_then_overrides(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("patch_size: 64\nseed: 3\nloss: kl\n")
    conf = tmp_path / "c.yaml"
    conf.write_text("patch_size: 128\nseed: 7\n")
    cfg = _parse([str(grid), "--config", str(conf), "--seed", "9", "patch_size=32"], config_argument=True)
    assert (cfg.patch_size, cfg.seed, cfg.loss) == (32, 9, "kl")
    # an option typed equal to its default still beats the file
    assert _parse([str(grid), "--seed", "0"], config_argument=True).seed == 0


def test_an_input_with_an_equals_sign_stays_an_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slide=1.svs").write_text("")
    assert _parse(["slide=1.svs", "loss=kl"]).inputs == ["slide=1.svs"]
    with pytest.raises(ConfigError, match="^pach_size=3: no option 'pach_size' \\(did you mean 'patch_size'\\?\\), "
                                          "and no such file$"):
        _parse(["pach_size=3"])


def test_help_shows_defaults_bounds_choices_and_nested_options(capsys):
    parser = argparse.ArgumentParser()
    add_options(parser, Cfg)
    parser.print_help()
    out = capsys.readouterr().out
    assert "(default: 256; >= 1)" in out and "{bce,kl}" in out and "--no-tissue-detection" in out
    assert "optim.lr  learning rate (default: 0.1; > 0)" in out
