"""One value against its declaration: the same conversion and checks for every source."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from rckd.config import Config, Overrides, option
from rckd.config.values import Invalid, check, convert, did_you_mean, key_path, merge


@pytest.mark.parametrize("value, tp, expected", [
    ("12", int, 12), (12.0, int, 12), ("1e3", int, 1000), (3, float, 3.0), ("1e-3", float, 0.001),
    ("Yes", bool, True), ("off", bool, False), (0, bool, False), (7, str, "7"),
    ("NONE", int | None, None), ("null", str | None, None), ("none", str, "none"),
    ("0,1, 2", list[int], [0, 1, 2]), ("[0, 1]", list[int], [0, 1]), (1, list[int], [1]), ("", list[int], []),
    (["0.2", 1], tuple[float, float], (0.2, 1.0)), ("{a: 1}", dict, {"a": 1}), ("[1, 2]", Any, [1, 2]),
])
def test_conversion(value, tp, expected):
    out = convert(value, tp)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value, tp, problem", [
    ("1.5", int, "expected an integer, got '1.5'"), (1.5, int, "expected an integer"),
    (True, int, "expected an integer"), ("fast", float, "expected a number"),
    ("maybe", bool, "expected true or false"), (True, str, "expected text"),
    (0.5, tuple[float, float], "expected a list of 2 values, got 0.5"),
    (None, int, "a value is required"), ("a: [", dict, "cannot read"), ([1], dict, "expected a mapping"),
])
def test_refusals(value, tp, problem):
    with pytest.raises(Invalid, match=problem.replace("[", r"\[")):
        convert(value, tp)


def test_choices_are_exact_and_misspellings_get_a_suggestion():
    meta = {"choices": ("adamw", "sgd")}
    assert check("sgd", meta) == "sgd" and check(["adamw", "sgd"], meta) == ["adamw", "sgd"]
    with pytest.raises(Invalid, match=r"expected one of adamw, sgd, got 'SGD' \(did you mean 'sgd'\?\)"):
        check("SGD", meta)
    with pytest.raises(Invalid, match=r"got 'adam' \(did you mean 'adamw'\?\)"):
        check("adam", meta)


def test_ranges_apply_to_numbers_and_list_items():
    assert check(0.5, {"ge": 0, "le": 1}) == 0.5 and check(None, {"ge": 1}) is None
    with pytest.raises(Invalid, match="must be at least 1, got 0"):
        check(0, {"ge": 1})
    with pytest.raises(Invalid, match="must be greater than 0"):
        check(0.0, {"gt": 0})
    with pytest.raises(Invalid, match="must be at most 1, got 2") as exc:
        check([0.5, 2], {"le": 1})
    assert exc.value.path == (1,)


def test_check_functions_canonicalise_or_refuse():
    meta = {"check": lambda v: v.lower() if v.lower() in ("cpu", "cuda") else (_ for _ in ()).throw(ValueError("bad device"))}
    assert check("CPU", meta) == "cpu"
    with pytest.raises(Invalid, match="bad device"):
        check("gpu", meta)


@dataclasses.dataclass
class Inner(Config):
    lr: float = option(0.1, gt=0)
    steps: int = option(10, ge=1)


def test_mappings_and_overrides_merge_key_by_key():
    assert merge({"a": 1, "b": {"c": 2}}, {"b": {"d": "3"}}, dict) == {"a": 1, "b": {"c": 2, "d": 3}}
    over = merge({"steps": 5}, {"lr": "0.01"}, Overrides[Inner])
    assert over == {"steps": 5, "lr": 0.01}
    with pytest.raises(Invalid, match="unknown option \\(did you mean 'steps'\\?\\)") as exc:
        merge({}, {"stesp": 1}, Overrides[Inner])
    assert exc.value.path == ("stesp",)
    with pytest.raises(Invalid, match="must be at least 1") as exc:
        merge({}, {"steps": 0}, Overrides[Inner])
    assert exc.value.path == ("steps",)


def test_sections_build_from_mappings_and_report_missing_options():
    @dataclasses.dataclass
    class Needs(Config):
        name: str = option(help="required")
        n: int = option(1, ge=1)

    assert merge(dataclasses.MISSING, {"name": "x"}, Needs) == Needs("x")
    with pytest.raises(Invalid, match="missing option\\(s\\) name"):
        merge(dataclasses.MISSING, {"n": 2}, Needs)
    assert merge({}, {"a": {"name": "y", "n": "3"}}, dict[str, Needs]) == {"a": Needs("y", 3)}


def test_messages_name_paths_and_near_misses():
    assert key_path(("a", "b", 0, "c")) == "a.b[0].c"
    assert did_you_mean("stesp", ["steps", "lr"]) == " (did you mean 'steps'?)"
    assert did_you_mean("zzz", ["steps", "lr"]) == " (known: lr, steps)"
