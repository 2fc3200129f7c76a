"""Batch augmentation on the device (kornia + torch): uint8 in, normalised float out.

Workers only decode tiles; everything here runs on whole batches where the model runs.

* :func:`to_float` - uint8 (B, 3, H, W) -> float in [0, 1].
* :func:`normalize` - per-channel mean/std, optionally to ``channels_last``.
* :func:`rgb_to_hed` / :func:`hed_to_rgb` / :func:`hed_jitter` - colour deconvolution with
  Ruifrok & Johnston's H&E-DAB matrix (as ``skimage.color.rgb2hed``) and the stain jitter of
  Tellez et al. 2018: each stain channel ``s -> s * a + b * max(s)``, ``a ~ U(1 - sigma,
  1 + sigma)``, ``b ~ U(-bias, bias)`` (the shift is relative to the image's largest stain
  value, our choice, since skimage's stain units are small).
* :class:`PairedAugment` - for distillation: random resized crop, flips and 90-degree rotations
  applied *identically* to the image and its target map; stain and colour jitter applied to the
  image only (the student input).
* :class:`ViewAugment` - one stochastic view for Barlow Twins / MoCo (crop, flips, rotations,
  colour jitter, grey, blur, solarise, stain jitter).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["to_float", "normalize", "rgb_to_hed", "hed_to_rgb", "hed_jitter", "random_dihedral",
           "PairedAugment", "ViewAugment", "RGB_FROM_HED", "HED_FROM_RGB", "OD_UNIT"]

# Ruifrok & Johnston H&E-DAB stain vectors (rows: haematoxylin, eosin, DAB), as in skimage.
RGB_FROM_HED = torch.tensor([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]],
                            dtype=torch.float64)
HED_FROM_RGB = torch.linalg.inv(RGB_FROM_HED)
#: skimage's stain unit: a stain value of 1 is an optical density (natural log) of this much
OD_UNIT = -torch.log(torch.tensor(1e-6, dtype=torch.float64)).item()


def to_float(images: Tensor) -> Tensor:
    """uint8 (B, 3, H, W) -> float32 in [0, 1]; float input is returned as float32 unchanged."""
    if images.dtype == torch.uint8:
        return images.float().div_(255.0)
    return images.float()


def normalize(x: Tensor, mean: tuple[float, ...], std: tuple[float, ...],
              channels_last: bool = False) -> Tensor:
    """``(x - mean) / std`` per channel (x in [0, 1]), optionally in channels_last layout."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    x = (x - m) / s
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def rgb_to_hed(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] (B, 3, H, W) -> stain concentrations (H, E, D), as skimage's rgb2hed
    (without its final clipping at 0, so the round trip is exact)."""
    m = HED_FROM_RGB.to(rgb.device, rgb.dtype)
    od = -torch.log(rgb.clamp_min(1e-6)) / OD_UNIT
    return torch.einsum("bchw,cd->bdhw", od, m)


def hed_to_rgb(hed: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hed`, clipped to [0, 1]."""
    m = RGB_FROM_HED.to(hed.device, hed.dtype)
    log_rgb = torch.einsum("bchw,cd->bdhw", hed * -OD_UNIT, m)
    return torch.exp(log_rgb).clamp(0, 1)


def hed_jitter(rgb: Tensor, sigma: float = 0.05, bias: float = 0.05) -> Tensor:
    """Tellez et al. stain augmentation with per-image, per-stain random scale and shift."""
    if sigma <= 0 and bias <= 0:
        return rgb
    b = rgb.shape[0]
    a = 1 + (torch.rand(b, 3, 1, 1, device=rgb.device) * 2 - 1) * sigma
    s = (torch.rand(b, 3, 1, 1, device=rgb.device) * 2 - 1) * bias
    hed = rgb_to_hed(rgb.float())
    return hed_to_rgb(hed * a + s * hed.abs().amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)).to(rgb.dtype)


def random_dihedral(x: Tensor, flips: bool = True, rot90: bool = True) -> Tensor:
    """Per-sample random horizontal/vertical flips and 90-degree rotations (exact, no resampling).

    Rotations need square inputs (skipped otherwise).
    """
    b = x.shape[0]
    if flips:
        h = torch.rand(b, device=x.device) < 0.5
        v = torch.rand(b, device=x.device) < 0.5
        x = torch.where(h.view(-1, 1, 1, 1), x.flip(-1), x)
        x = torch.where(v.view(-1, 1, 1, 1), x.flip(-2), x)
    if rot90 and x.shape[-1] == x.shape[-2]:
        k = torch.randint(0, 4, (b,), device=x.device)
        out = x.clone()
        for r in range(1, 4):
            idx = (k == r).nonzero().flatten()
            if idx.numel():
                out[idx] = torch.rot90(x[idx], r, dims=(-2, -1))
        x = out
    return x


class PairedAugment(nn.Module):
    """Geometric augmentation shared by image and target; stain/colour jitter on the image only.

    Args:
        size: output side (square); ``None`` keeps the input size.
        crop_scale: area range of the random resized crop (``(1, 1)`` disables it).
        flips, rot90: random dihedral transforms.
        hed_sigma, hed_bias: stain jitter strength (0 disables).
        brightness, contrast, saturation, hue: colour jitter strength (0 disables).
    """

    def __init__(self, size: int | None = None, crop_scale: tuple[float, float] = (0.5, 1.0),
                 flips: bool = True, rot90: bool = True, hed_sigma: float = 0.05,
                 hed_bias: float = 0.05, brightness: float = 0.1, contrast: float = 0.1,
                 saturation: float = 0.1, hue: float = 0.02) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.size, self.flips, self.rot90 = size, flips, rot90
        self.hed_sigma, self.hed_bias = hed_sigma, hed_bias
        self.crop_scale = tuple(crop_scale)
        self.crop = None
        if size is not None and self.crop_scale != (1.0, 1.0):
            self.crop = K.RandomResizedCrop((size, size), scale=self.crop_scale, ratio=(3 / 4, 4 / 3))
        self.colour = None
        if max(brightness, contrast, saturation, hue) > 0:
            self.colour = K.ColorJitter(brightness, contrast, saturation, hue, p=0.8)

    def forward(self, image: Tensor, target: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """``image`` float (B, 3, H, W) in [0, 1]; ``target`` float (B, C, H, W) or None."""
        x = image if target is None else torch.cat([image, target.to(image.dtype)], dim=1)
        if self.crop is not None:
            x = self.crop(x)
        elif self.size is not None and x.shape[-1] != self.size:
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear",
                                          align_corners=False)
        x = random_dihedral(x, self.flips, self.rot90)
        image, target = (x, None) if target is None else (x[:, :3], x[:, 3:])
        image = hed_jitter(image, self.hed_sigma, self.hed_bias)
        if self.colour is not None:
            image = self.colour(image)
        return image.clamp(0, 1), target


class ViewAugment(nn.Module):
    """One random view for joint-embedding SSL (Barlow Twins / MoCo v2 style, with stain jitter).

    ``solarize_p``/``blur_p`` follow Barlow Twins' asymmetric views (view 1: blur 1.0, solarise
    0; view 2: blur 0.1, solarise 0.2); MoCo v2 uses blur 0.5 and no solarisation.
    """

    def __init__(self, size: int, crop_scale: tuple[float, float] = (0.2, 1.0), jitter: float = 0.4,
                 hue: float = 0.1, grey_p: float = 0.2, blur_p: float = 0.5, solarize_p: float = 0.0,
                 hed_sigma: float = 0.05, hed_bias: float = 0.05) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.hed_sigma, self.hed_bias = hed_sigma, hed_bias
        k = max(3, (size // 10) | 1)
        ops = [K.RandomResizedCrop((size, size), scale=tuple(crop_scale)),
               K.ColorJitter(jitter, jitter, jitter * 0.5, hue, p=0.8),
               K.RandomGrayscale(p=grey_p)]
        if blur_p > 0:
            ops.append(K.RandomGaussianBlur((k, k), (0.1, 2.0), p=blur_p))
        if solarize_p > 0:
            ops.append(K.RandomSolarize(0.0, 0.0, p=solarize_p))
        self.ops = nn.Sequential(*ops)

    def forward(self, image: Tensor) -> Tensor:
        """float (B, 3, H, W) in [0, 1] -> a view (B, 3, size, size) in [0, 1]."""
        x = random_dihedral(image)
        x = hed_jitter(x, self.hed_sigma, self.hed_bias)
        return self.ops(x).clamp(0, 1)
