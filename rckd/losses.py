"""Pretraining losses as plain functions on tensors.

* :func:`soft_bce` and :func:`kl_distill`: response-based distillation of a teacher's per-pixel
  probability map (RCKD). Which one the paper used is not known; soft BCE is our assumed
  default, KL with a temperature (Hinton et al. 2015, scaled by ``T**2``) the option.
* :func:`barlow_twins_loss`: Zbontar et al. 2021, ``sum_i (1 - C_ii)^2 + lambda sum_{i!=j} C_ij^2``
  with ``C`` the cross-correlation of the two views' embeddings, each standardised over the
  batch.
* :func:`info_nce`: MoCo v2 (He et al. 2020; Chen et al. 2020): cross-entropy of the positive
  key against a queue of negatives, at temperature ``T``.

Cross-rank reductions go through :func:`gather`, which uses ``torch.distributed.nn`` so gradients
flow back to every rank; in one process it is the identity. Computing a loss on gathered
tensors and letting DDP average the parameter gradients gives exactly the single-process
gradient of the full batch (tested with two processes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

__all__ = ["gather", "soft_bce", "kl_distill", "barlow_twins_loss", "info_nce", "off_diagonal"]


def gather(x: Tensor) -> Tensor:
    """Concatenate ``x`` from every rank along dim 0, autograd-aware; identity in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous()), dim=0)


def soft_bce(student_logits: Tensor, teacher_probs: Tensor, weight: Tensor | None = None) -> Tensor:
    """Binary cross-entropy of student logits against soft teacher probabilities in [0, 1].

    ``-[t log sigmoid(s) + (1 - t) log(1 - sigmoid(s))]`` averaged over every element (or
    weighted by ``weight``). Computed in float32 from logits, so it is stable under autocast.
    """
    s, t = student_logits.float(), teacher_probs.float().clamp(0, 1)
    if weight is None:
        return F.binary_cross_entropy_with_logits(s, t)
    per = F.binary_cross_entropy_with_logits(s, t, reduction="none") * weight
    return per.sum() / weight.sum().clamp_min(1e-12)


def _binary_to_two_class(logits: Tensor) -> Tensor:
    """Bernoulli logits ``z`` (B, 1, ...) -> two-class logits ``[0, z]`` (B, 2, ...)."""
    return torch.cat([torch.zeros_like(logits), logits], dim=1)


def kl_distill(student_logits: Tensor, teacher: Tensor, temperature: float = 1.0,
               teacher_is_prob: bool = True, eps: float = 1e-6) -> Tensor:
    """``T^2 KL(softmax(t / T) || softmax(s / T))`` over the channel dim, mean over pixels/batch.

    One channel (B, 1, H, W) is read as a Bernoulli per pixel (logit ``z`` == two-class logits
    ``[0, z]``). ``teacher`` holds probabilities when ``teacher_is_prob`` (converted to logits
    by ``log``), else logits.
    """
    s = student_logits.float()
    t = teacher.float()
    if teacher_is_prob:
        if t.shape[1] == 1:
            t = t.clamp(eps, 1 - eps)
            t = torch.log(t) - torch.log1p(-t)  # logit
        else:
            t = torch.log(t.clamp_min(eps))
    if s.shape[1] == 1:
        s, t = _binary_to_two_class(s), _binary_to_two_class(t)
    log_p_s = F.log_softmax(s / temperature, dim=1)
    log_p_t = F.log_softmax(t / temperature, dim=1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)
    return kl.mean() * temperature ** 2


def off_diagonal(m: Tensor) -> Tensor:
    """The off-diagonal elements of a square matrix, flattened."""
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def barlow_twins_loss(z1: Tensor, z2: Tensor, lambd: float = 0.0051, eps: float = 1e-5,
                      distributed: bool = True) -> Tensor:
    """Barlow Twins redundancy-reduction loss of two views' embeddings (B, D).

    Each embedding is standardised over the (global, when ``distributed``) batch as by a
    non-affine BatchNorm (biased variance), ``C = z1n.T @ z2n / N``, and the loss is
    ``sum_i (1 - C_ii)^2 + lambd * sum_{i != j} C_ij^2``.
    """
    if distributed:
        z1, z2 = gather(z1), gather(z2)
    z1, z2 = z1.float(), z2.float()
    n = z1.shape[0]
    z1n = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2n = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = z1n.T @ z2n / n
    on_diag = (torch.diagonal(c) - 1).pow(2).sum()
    off_diag = off_diagonal(c).pow(2).sum()
    return on_diag + lambd * off_diag


def info_nce(q: Tensor, k: Tensor, queue: Tensor | None, temperature: float = 0.2) -> Tensor:
    """MoCo InfoNCE: ``-log exp(q.k+/T) / (exp(q.k+/T) + sum_n exp(q.n/T))``, mean over the batch.

    ``q``, ``k``: (B, D) queries and their positive keys (L2-normalised here); ``queue``:
    (K, D) negatives (normalised here; ``None`` for no negatives beyond the positive).
    ``k`` and ``queue`` receive no gradient.
    """
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1).detach()
    l_pos = (q * k).sum(dim=1, keepdim=True)
    if queue is not None and queue.numel():
        l_neg = q @ F.normalize(queue.float(), dim=1).detach().T
        logits = torch.cat([l_pos, l_neg], dim=1)
    else:
        logits = l_pos
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits / temperature, labels)
