import json

import pytest
import torch

from rckd.finetune.run import FinetuneConfig, finetune, knn_predict
from rckd.finetune.tasks import SegmentationTask, predict_segmentation
from rckd.models.backbones import create_backbone
from rckd.models.weights import save_weights

TINY = dict(device="cpu", threads=1, image_size=32, steps=2, batch_size=4, workers=0, log_every=1,
            tensorboard=False, eval_batch_size=16,
            dataset_options={"size": 32, "sizes": {"train": 8, "val": 4, "test": 4}})


def test_knn_by_hand():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    pred = knn_predict(train, labels, torch.tensor([[1.0, 0.05], [0.1, 1.0]]), 2, k=1)
    assert pred.tolist() == [0, 1]


def test_finetune_classification_writes_results(tmp_path):
    res = finetune(FinetuneConfig(out=str(tmp_path / "c"), **TINY))
    saved = json.loads((tmp_path / "c" / "results.json").read_text())
    assert saved["split_sizes"] == {"train": 8, "val": 4, "test": 4} == res["split_sizes"]
    assert saved["metrics"]["test"]["n"] == 4 and 0 <= saved["metrics"]["test"]["accuracy"] <= 1
    assert saved["seed"] == 0 and saved["steps"] == 2 and len(saved["git"]) >= 7
    assert {"train_s", "eval_s", "total_s"} <= set(saved["timings"])
    assert saved["config"]["dataset"] == "synthetic"
    assert not (tmp_path / "c" / "checkpoints").exists()  # save_model=False
    assert (tmp_path / "c" / "metrics.jsonl").is_file()


def test_linear_probe_keeps_backbone_and_init_from_checkpoint(tmp_path):
    torch.manual_seed(3)
    bb = create_backbone("resnet18")
    ref = {k: v.clone() for k, v in bb.model.state_dict().items()}
    path = save_weights(bb.model.state_dict(), tmp_path / "bb", {"arch": "resnet18"})
    res = finetune(FinetuneConfig(out=str(tmp_path / "l"), mode="linear", init=str(path),
                                  save_model=True, **TINY))
    assert res["metrics"]["val"]["n"] == 4
    from rckd.engine import latest_checkpoint, load_checkpoint
    state, _, _ = load_checkpoint(latest_checkpoint(tmp_path / "l"))
    for k, v in ref.items():
        if v.is_floating_point():
            assert torch.equal(state[f"backbone.model.{k}"], v), k  # frozen, BN stats included


def test_finetune_segmentation_and_knn(tmp_path):
    res = finetune(FinetuneConfig(out=str(tmp_path / "s"), dataset="synthetic_seg", eval_splits=["test"], **TINY))
    assert set(res["metrics"]) == {"test"}
    m = res["metrics"]["test"]
    assert res["task"] == "segmentation" and {"miou", "miou_fg", "dice"} <= set(m)
    knn = finetune(FinetuneConfig(out=str(tmp_path / "k"), mode="knn", knn_k=3, **TINY))
    assert knn["steps"] == 0 and knn["metrics"]["test"]["n"] == 4


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        finetune(FinetuneConfig(out=str(tmp_path / "x"), init=str(tmp_path / "nope"), **TINY))
    with pytest.raises(ValueError, match="imagenet_weights"):
        finetune(FinetuneConfig(out=str(tmp_path / "x"), init="imagenet", **TINY))
    with pytest.raises(ValueError, match="knn needs a classification"):
        finetune(FinetuneConfig(out=str(tmp_path / "x"), mode="knn", dataset="synthetic_seg", **TINY))
    with pytest.raises(ValueError, match=r"eval_splits\[0\]: expected one of val, test"):
        finetune(FinetuneConfig(out=str(tmp_path / "x"), eval_splits=["dev"], **TINY))
    with pytest.raises(ValueError, match="multiple of 32"):
        finetune(FinetuneConfig(out=str(tmp_path / "x"), **{**TINY, "image_size": 48}))


def test_predict_segmentation_stitches_to_native_size():
    task = SegmentationTask(create_backbone("resnet18"), 3).eval()
    pred = predict_segmentation(task, torch.zeros(3, 40, 70, dtype=torch.uint8), 32, (80, 140),
                                torch.device("cpu"))
    assert pred.shape == (80, 140) and pred.dtype == torch.int64 and int(pred.max()) < 3


def test_linear_probe_head_sees_standardised_embeddings():
    """MAE-style: a BatchNorm without affine before the head, so the embedding's scale is moot."""
    from rckd.finetune.tasks import ClassificationTask

    torch.manual_seed(0)
    task = ClassificationTask(create_backbone("csat_tiny"), 3, linear=True)
    assert isinstance(task.norm, torch.nn.BatchNorm1d) and not task.norm.affine
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    task.train()
    loss, _ = task({"image": images, "label": torch.arange(8) % 3})
    loss.backward()
    assert task.norm.num_batches_tracked == 1 and task.head.weight.grad is not None
    assert all(p.grad is None for p in task.backbone.parameters())
    with torch.no_grad():
        feats = task.backbone(torch.zeros(8, 3, 32, 32).normal_())
        task.train()
        z = task.norm(feats * 1000.0)
    assert abs(float(z.mean())) < 1e-3 and abs(float(z.std(0).mean()) - 1) < 0.1
    assert isinstance(ClassificationTask(create_backbone("csat_tiny"), 3).norm, torch.nn.Identity)
