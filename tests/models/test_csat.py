"""CSAT: the paper's figures, timm registration (create_model, features_only, file weights)."""

from __future__ import annotations

import pytest
import timm
import torch

import rckd  # noqa: F401  (registers CSAT)
from rckd.models import create_backbone, save_weights
from rckd.models.flops import count_macs, count_params

RCKD_MODELS = timm.list_models(module="csat")


def test_csat_parameter_count_matches_paper():
    bb = create_backbone("csat")
    n = count_params(bb)
    assert n == 2_982_326  # DESIGN.md layout, head LayerNorm included, classifier excluded
    assert 2.94e6 <= n <= 3.04e6
    assert 2.8 <= n / 2**20 < 2.9  # printed "2.8M" like ResNet18's 11,176,512 -> "10.6M"
    assert count_params(create_backbone("resnet18")) == 11_176_512


def test_csat_macs_match_paper():
    kinds = count_macs(create_backbone("csat"), (3, 384, 384), attention=True, elementwise=True,
                       by_kind=True)
    macs = kinds["conv"] + kinds["linear"]  # the paper's convention (thop/fvcore)
    assert abs(macs / 1.08e9 - 1) < 0.03, macs
    assert 1.075e9 < macs < 1.081e9  # 1.0777 G measured
    # 2 blocks x 2 x 576^2 x 256 at stride 16 + 2 x 2 x 144^2 x 256 at stride 32
    # + 6 spatial-attention transformers over 49 scalar tokens
    assert kinds["attention"] == 2 * 2 * 576**2 * 256 + 2 * 2 * 144**2 * 256 + 6 * 2 * 49**2
    assert abs((macs + kinds["attention"]) / 1.45e9 - 1) < 0.03
    # ptflops-style count (biases, norms, activations, pooling) is also within 3 %
    assert abs((macs + kinds["elementwise"]) / 1.08e9 - 1) < 0.03


@pytest.mark.parametrize("name", RCKD_MODELS)
def test_timm_create_model_classifier(name):
    model = timm.create_model(name, num_classes=7).eval()
    assert model.pretrained_cfg["classifier"] == "head.fc"
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 7)
        feats = model.forward_features(torch.randn(1, 3, 96, 64))
        final, inter = model.forward_intermediates(torch.randn(1, 3, 96, 64))
    assert feats.shape == final.shape == inter[-1].shape and feats.shape[-2:] == (3, 2)
    assert [f["reduction"] for f in model.feature_info] == [4, 8, 16, 32]
    assert model.forward_head(feats, pre_logits=True).shape == (1, model.num_features)


@pytest.mark.parametrize("name", RCKD_MODELS)
def test_features_only(name):
    model = timm.create_model(name, features_only=True).eval()
    chans = model.feature_info.channels()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 128, 128))
    assert [tuple(o.shape[1:]) for o in outs] == [(c, 128 // r, 128 // r) for c, r in
                                                  zip(chans, [4, 8, 16, 32])]
    sub = timm.create_model(name, features_only=True, out_indices=(2, 3))
    assert sub.feature_info.reduction() == [16, 32]


@pytest.mark.parametrize("name", RCKD_MODELS)
def test_weights_round_trip_through_timm(tmp_path, name):
    torch.manual_seed(3)
    bb = create_backbone(name)
    path = save_weights(bb, tmp_path / "student_backbone", {"architecture": name})
    overlay = dict(file=str(path))
    headless = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay,
                                 num_classes=0)
    ref = bb.model.state_dict()
    assert all(torch.equal(headless.state_dict()[k], v) for k, v in ref.items())
    # with a classifier: the backbone loads, the head keeps its init
    clf = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=3)
    assert torch.equal(clf.state_dict()["stem.0.weight"], ref["stem.0.weight"])
    feats = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay,
                              features_only=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(feats(x), bb.eval().forward_pyramid(x)):
            assert torch.allclose(a, b, atol=1e-6)
    # a whole-student checkpoint (wrapper prefix) loads through timm too
    student = save_weights(torch.nn.ModuleDict({"backbone": bb}), tmp_path / "student", {})
    m = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(student)),
                          num_classes=0)
    assert torch.equal(m.state_dict()["stem.0.weight"], ref["stem.0.weight"])


def test_full_timm_checkpoint_loads_into_backbone(tmp_path):
    full = timm.create_model("csat_tiny", num_classes=10)
    torch.save(full.state_dict(), tmp_path / "csat_tiny_in1k.pth")
    bb = create_backbone("csat_tiny", weights=tmp_path / "csat_tiny_in1k.pth")
    assert torch.equal(bb.model.state_dict()["stages.3.1.mlp.fc2.weight"],
                       full.state_dict()["stages.3.1.mlp.fc2.weight"])


def test_training_step_with_drop_path_and_checkpointing():
    model = timm.create_model("csat_tiny", num_classes=2, drop_path_rate=0.1)
    model.set_grad_checkpointing(True)
    loss = model(torch.randn(2, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert model.stem[0].weight.grad.abs().sum() > 0


def test_prune_intermediate_layers():
    model = timm.create_model("csat_tiny").eval()
    kept = model.prune_intermediate_layers([0, 1])
    assert kept == [0, 1] and len(model.stages) == 2
    with torch.no_grad():
        out = model.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[0, 1],
                                          intermediates_only=True)
    assert [o.shape[1] for o in out] == [16, 24]


def test_no_hub_weights():
    """CSAT has no published weights: pretrained=True without a file fails instead of downloading."""
    with pytest.raises(RuntimeError, match="No pretrained weights"):
        timm.create_model("csat_tiny", pretrained=True)
