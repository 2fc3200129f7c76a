"""The RCKD table rendered from results files: cells, averages, the paper's values, and paired
differences of RCKD against each other init."""

import math

import pytest

from rckd.io import write_json
from rckd.report import (PAPER, Column, collect, paired_differences, render_csv, render_markdown,
                         render_paired, summarise)

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


def test_render_from_results_files(tmp_path):
    cols = [Column("bach", "BACH", "classification", paper="BACH"),
            Column("glas", "GlaS", "segmentation", paper="GlaS")]
    for seed, (acc, miou) in enumerate([(0.80, 0.90), (0.90, 0.92)]):
        write_json(tmp_path / f"r{seed}" / "results.json", {
            "metrics": {"test": {"accuracy": acc}}, "grid": {"backbone": "csat", "init": "rckd", "dataset": "bach", "seed": seed}})
        write_json(tmp_path / f"s{seed}" / "results.json", {
            "metrics": {"test": {"miou": miou}}, "grid": {"backbone": "csat", "init": "rckd", "dataset": "glas", "seed": seed}})
    write_json(tmp_path / "untagged" / "results.json", {"metrics": {}})
    rows = collect(tmp_path.rglob("results.json"))
    assert len(rows) == 4
    summary = summarise(rows, cols, ["csat"], ["random", "rckd"])
    cell = summary[1]["cells"]["bach"]
    assert cell["mean"] == pytest.approx(85.0) and cell["std"] == pytest.approx(math.sqrt(50))
    assert cell["n"] == 2 and cell["paper"] == PAPER[("csat", "rckd")]["BACH"] == 90.6
    assert summary[1]["avg_segmentation"] == pytest.approx(0.91)
    assert summary[0]["cells"]["glas"]["n"] == 0 and math.isnan(summary[0]["avg_classification"])
    md = render_markdown(summary, cols, "t")
    assert "| csat | RCKD | 85.0 ± 7.1 (n=2) [90.6] | 85.0 | 0.910 ± 0.014 (n=2) [0.912] | 0.910 |" in md
    assert "| csat | random | n/a [41.3] | — | n/a [0.872] | — |" in md
    assert render_csv(summary, cols).splitlines()[3] == "csat,rckd,bach,accuracy,85,7.07107,2,90.6"
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        collect([tmp_path / "bad.json"])
