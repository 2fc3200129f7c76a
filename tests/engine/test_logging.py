"""Run logs: metrics.jsonl read back, torn lines handled."""

from __future__ import annotations

import pytest

from rckd.engine.logging import read_metrics


def test_torn_metrics_lines(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 0.5}\n{"step": 2, "train/lo')
    assert read_metrics(tmp_path) == [{"step": 1, "train/loss": 0.5}]  # a crash mid-line: dropped
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2, "tr\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON line"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path / "absent") == []
