import math

import pytest

from rckd.engine.schedule import cosine_with_warmup


def test_warmup_then_cosine():
    lrs = [cosine_with_warmup(s, 110, 1.0, warmup_steps=10, min_lr=0.1) for s in range(120)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.5)))
    assert lrs[110] == pytest.approx(0.1) and lrs[119] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_no_warmup_starts_at_base():
    assert cosine_with_warmup(0, 10, 2.0) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        cosine_with_warmup(0, 0, 1.0)
