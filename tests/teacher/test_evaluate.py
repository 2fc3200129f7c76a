"""rckd teacher eval writes dice/aji/pq; post-processing tuning picks the best AJI setting."""

import json

import numpy as np
from PIL import Image

from rckd.config import from_dict
from rckd.teacher.evaluate import TeacherEvalConfig, evaluate_teacher


def _tree(root):
    for d in ("images", "instance_masks"):
        (root / d).mkdir(parents=True)
    img = np.full((64, 64, 3), 235, np.uint8)
    inst = np.zeros((64, 64), np.uint16)
    for k, (y, x) in enumerate([(10, 10), (10, 40), (40, 20)], start=1):
        img[y:y + 12, x:x + 12] = (70, 40, 130)
        inst[y:y + 12, x:x + 12] = k
    Image.fromarray(img).save(root / "images" / "a.png")
    Image.fromarray(inst).save(root / "instance_masks" / "a_instances.png")


def test_eval_json_keys_and_values(tmp_path, capsys):
    _tree(tmp_path / "m")
    cfg = from_dict(TeacherEvalConfig, {"teacher": "classical", "data": str(tmp_path / "m"),
                                        "json": str(tmp_path / "s.json")})
    assert evaluate_teacher(cfg) == 0
    res = json.loads((tmp_path / "s.json").read_text())
    for key in ("dice", "aji", "pq"):
        assert 0.8 < res[key] <= 1.0, (key, res[key])  # three clean square nuclei
    assert res["images"] == ["a"] and res["per_image"]["a"]["tp"] == 3
    assert "dice" in capsys.readouterr().out
