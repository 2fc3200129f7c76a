"""Sources of option values: YAML files with line numbers, key=value text, one-line errors."""

from __future__ import annotations

import dataclasses

import pytest

from rckd.config import (Config, ConfigError, Overrides, RunConfig, apply_overrides, from_dict, load_config,
                         option, save_config, section, to_dict, update)
from rckd.config.sources import parse_override, read_yaml


@dataclasses.dataclass
class Inner(Config):
    lr: float = option(0.1, gt=0)
    steps: int = option(10, ge=1)


@dataclasses.dataclass
class Cfg(RunConfig):
    steps: int = option(5, ge=1)
    seeds: list[int] = option(default_factory=lambda: [0, 1], ge=0)
    optim: Inner = section(Inner)
    opts: dict = option(default_factory=dict)
    runs: Overrides[Inner] = option(default_factory=dict)


def test_yaml_then_overrides_and_sections_merge(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\noptim:\n  steps: 3\nopts: {a: 1}\n")
    cfg = load_config(Cfg, path, ["optim.lr=0.5", "opts.b=2", "runs.steps=5", "runs.lr=0.01"])
    assert (cfg.steps, cfg.optim.steps, cfg.optim.lr) == (7, 3, 0.5)
    assert cfg.opts == {"a": 1, "b": 2} and cfg.runs == {"steps": 5, "lr": 0.01}


def test_errors_name_file_line_and_key_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 7\noptim:\n  lr: 0.1\n  stesp: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config(Cfg, path)
    assert str(exc.value) == f"{path}:4:3: optim.stesp: unknown option (did you mean 'steps'?)"
    path.write_text("runs:\n  steps: 0\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2:3: runs.steps: must be at least 1, got 0"):
        load_config(Cfg, path)
    path.write_text("seeds: [0, -1]\n")
    with pytest.raises(ConfigError, match=r"c.yaml:1:12: seeds\[1\]: must be at least 0"):
        load_config(Cfg, path)


def test_broken_yaml_keeps_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("steps: 7\noptim: {lr: 0.1\nseed: 2\n")
    with pytest.raises(ConfigError) as exc:
        read_yaml(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:3:") and "invalid YAML" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping of options"):
        load_config(Cfg, tmp_path / "list.yaml")


def test_overrides_are_text_read_by_the_option():
    with pytest.raises(ConfigError, match=r"^steps=1\.5: expected an integer, got '1\.5'$"):
        apply_overrides(Cfg(), ["steps=1.5"])
    with pytest.raises(ConfigError, match="^nope=1: unknown option"):
        apply_overrides(Cfg(), ["nope=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("3=x")
    assert apply_overrides(Cfg(), ["seeds=1"]).seeds == [1]


def test_update_and_from_dict_check_like_any_source():
    cfg = update(Cfg(), {"optim": {"lr": 0.2}})
    assert cfg.optim == Inner(0.2, 10)
    with pytest.raises(ConfigError, match="^grid: optim.lr: must be greater than 0"):
        from_dict(Cfg, {"optim": {"lr": 0}}, where="grid")


def test_saved_config_round_trips(tmp_path):
    cfg = apply_overrides(Cfg(), ["optim.lr=0.01", "seeds=[3]", "runs.steps=2"])
    path = save_config(cfg, tmp_path / "config.yaml")
    assert load_config(Cfg, path) == cfg
    assert to_dict(cfg)["optim"] == {"lr": 0.01, "steps": 10}
