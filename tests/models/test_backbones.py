"""create_backbone: one interface (pyramid, embedding, classifier) and strict weight loading."""

from __future__ import annotations

import pytest
import timm
import torch

import rckd  # noqa: F401  (registers CSAT)
from rckd.models import Classifier, create_backbone, save_weights

RCKD_MODELS = timm.list_models(module="csat")
# declared pyramid per backbone: channels, strides
EXPECTED = {
    "csat": ((32, 48, 128, 288), (4, 8, 16, 32), 288),
    "csat_tiny": ((16, 24, 64, 144), (4, 8, 16, 32), 144),
    "resnet18": ((64, 128, 256, 512), (4, 8, 16, 32), 512),
    "efficientnet_b0": ((24, 40, 112, 320), (4, 8, 16, 32), 1280),
    "convnextv2_atto": ((40, 80, 160, 320), (4, 8, 16, 32), 320),
    "csatv2": ((32, 72, 168, 386), (8, 16, 32, 64), 386),
}


def test_rckd_models_are_registered():
    assert set(RCKD_MODELS) == {"csat", "csat_tiny"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_pyramid_declared_shapes(name):
    torch.manual_seed(0)
    bb = create_backbone(name).eval()
    channels, strides, dim = EXPECTED[name]
    assert bb.channels == channels and bb.strides == strides and bb.num_features == dim
    assert bb.name == name and len(bb.mean) == 3 and len(bb.std) == 3
    for size in (256, 384):
        with torch.no_grad():
            pyramid = bb.forward_pyramid(torch.randn(1, 3, size, size))
        assert [tuple(p.shape) for p in pyramid] == [(1, c, size // s, size // s)
                                                     for c, s in zip(channels, strides)]
    with torch.no_grad():
        emb = bb(torch.randn(2, 3, 128, 128))
    assert emb.shape == (2, dim) and torch.isfinite(emb).all()


@pytest.mark.parametrize("size", [(224, 224), (160, 288), (32, 64)])
def test_csat_any_size_divisible_by_32(size):
    bb = create_backbone("csat_tiny").eval()
    with torch.no_grad():
        pyramid = bb.forward_pyramid(torch.randn(1, 3, *size))
    assert pyramid[-1].shape[-2:] == (size[0] // 32, size[1] // 32)


def test_classifier_attaches_a_head():
    bb = create_backbone("csat_tiny")
    clf = bb.classifier(5)
    assert isinstance(clf, Classifier) and clf.backbone is bb
    assert clf(torch.randn(2, 3, 64, 64)).shape == (2, 5)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", ["resnet18", "csat_tiny"])
def test_weights_round_trip(tmp_path, name):
    torch.manual_seed(1)
    bb = create_backbone(name)
    path = save_weights(bb, tmp_path / "bb", {"architecture": name})
    assert _same(create_backbone(name, weights=path).model, bb.model)
    # a whole student (backbone + decoder) checkpoint: the backbone part is found by its prefix
    student = torch.nn.ModuleDict({"backbone": bb, "decoder": torch.nn.Conv2d(3, 1, 1)})
    path2 = save_weights(student, tmp_path / "student", {})
    assert _same(create_backbone(name, weights=path2).model, bb.model)
    assert _same(create_backbone(name, weights=path2, prefix="backbone.model.").model, bb.model)


def test_timm_format_state_dict_with_classifier_loads(tmp_path):
    full = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    torch.save(full.state_dict(), tmp_path / "resnet18_imagenet.pth")
    bb = create_backbone("resnet18", weights=tmp_path / "resnet18_imagenet.pth")
    ref = {k: v for k, v in full.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(bb.model.state_dict()[k], v) for k, v in ref.items())


def test_mismatched_checkpoint_lists_keys(tmp_path):
    path = save_weights(create_backbone("resnet18"), tmp_path / "r18", {})
    with pytest.raises(ValueError) as err:
        create_backbone("csat_tiny", weights=path)
    msg = str(err.value)
    assert "r18.safetensors" in msg and "missing keys" in msg and "unexpected keys" in msg
    assert "stem.0.weight" in msg and "conv1.weight" in msg
    # one tensor of the right name but the wrong shape
    bb = create_backbone("csat_tiny")
    state = bb.export_state_dict()
    state["stem.0.weight"] = torch.zeros(1)
    del state["head.norm.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = save_weights(state, tmp_path / "bad", {})
    with pytest.raises(ValueError, match=r"1 missing keys \[head.norm.bias\].*1 unexpected keys "
                                         r"\[extra.weight\].*stem.0.weight"):
        create_backbone("csat_tiny", weights=path)


def test_missing_file_and_bad_names(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        create_backbone("csat_tiny", weights=tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("not_a_model")
    with pytest.raises(ValueError, match="pretrained"):
        create_backbone("resnet18", pretrained=True)
