"""Table rendering: paired differences of RCKD against each other init, by hand."""

import pytest

from rckd.report import Column, paired_differences, render_paired

COLS = [Column("lym", "Lymph", "classification"), Column("glas", "GlaS", "segmentation")]


def _row(init, dataset, seed, value):
    key = "accuracy" if dataset == "lym" else "miou"
    return {"backbone": "csat", "init": init, "dataset": dataset, "seed": seed,
            "metrics": {"test": {key: value}}}


def test_paired_differences_by_hand():
    rows = [_row("rckd", "lym", s, v) for s, v in enumerate((0.80, 0.70, 0.90))]
    rows += [_row("random", "lym", s, v) for s, v in enumerate((0.50, 0.75, 0.60))]
    rows += [_row("rckd", "glas", 0, 0.70), _row("random", "glas", 0, 0.60), _row("random", "glas", 1, 0.9)]
    (rec,) = paired_differences(rows, COLS, ["csat"], ["random", "rckd"])
    lym = rec["cells"]["lym"]  # differences 30, -5, 30 points
    assert lym["n"] == 3 and lym["wins"] == 2 and lym["mean"] == pytest.approx(55 / 3)
    assert lym["std"] == pytest.approx(((30 - 55 / 3) ** 2 * 2 + (-5 - 55 / 3) ** 2) ** 0.5 / 2 ** 0.5)
    glas = rec["cells"]["glas"]  # seed 1 has no RCKD partner: not paired
    assert glas["n"] == 1 and glas["mean"] == pytest.approx(0.1)
    text = render_paired([rec], COLS)
    assert "| csat | random | +18.3 ± 20.2 (2/3 seeds) | +0.100 ± 0.000 (1/1 seeds) |" in text
