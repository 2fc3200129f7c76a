"""rckd.models: student backbones (ResNet18, CSAT, any timm model), the dense decoder, weight files.

    from rckd.models import create_backbone, list_pretrained, DenseDecoder, save_weights, load_weights
    list_pretrained()                              # the shipped RCKD students, '<arch>.<tag>'
    backbone = create_backbone("csat.rckd_he5k")  # one of them, checksums verified
    backbone = create_backbone("csat", weights="runs/rckd/backbone.safetensors")
    pyramid = backbone.forward_pyramid(x)          # 4 maps, strides backbone.strides
    decoder = DenseDecoder(backbone.channels, backbone.strides, out_channels=1)
    logits = decoder(pyramid, size=x.shape[-2:])   # (B, 1, H, W)

Teachers live in :mod:`rckd.models.teachers`.
"""

from rckd.models.backbones import (PAPER_BACKBONES, Backbone, Classifier, create_backbone,
                                   load_backbone_weights)
from rckd.models.decoders import DenseDecoder
from rckd.models.pretrained import PRETRAINED, list_pretrained
from rckd.models.weights import load_weights, read_state_dict, save_weights

__all__ = ["PAPER_BACKBONES", "Backbone", "Classifier", "create_backbone", "load_backbone_weights",
           "DenseDecoder", "save_weights", "load_weights", "read_state_dict", "PRETRAINED",
           "list_pretrained"]
