"""rckd teacher eval writes dice/aji/pq; post-processing tuning picks the best AJI setting."""

import json

import numpy as np
from PIL import Image

from rckd.cli import main
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


def test_eval_json_keys_and_values(tmp_path):
    _tree(tmp_path / "m")
    cfg = from_dict(TeacherEvalConfig, {"teacher": "classical", "data": str(tmp_path / "m"),
                                        "json": str(tmp_path / "s.json")})
    result = evaluate_teacher(cfg)
    res = json.loads((tmp_path / "s.json").read_text())
    for key in ("dice", "aji", "pq"):
        assert 0.8 < res[key] <= 1.0, (key, res[key])  # three clean square nuclei
        assert result[key] == res[key]
    assert res["images"] == ["a"] and res["per_image"]["a"]["tp"] == 3


def test_eval_command_prints_one_summary_line(tmp_path, capsys):
    _tree(tmp_path / "m")
    assert main(["teacher", "eval", "--teacher", "classical", "data=" + str(tmp_path / "m")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("classical: dice ") and "aji" in line and "(1 images" in line
