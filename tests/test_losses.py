"""Losses against their published formulas, written out element by element."""

from __future__ import annotations

import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from rckd.losses import barlow_twins_loss, info_nce, kl_distill, off_diagonal, soft_bce


def test_soft_bce_formula():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 1, 4, 4, generator=g)
    t = torch.rand(2, 1, 4, 4, generator=g)
    p = 1 / (1 + np.exp(-s.numpy().astype(np.float64)))
    tt = t.numpy().astype(np.float64)
    expected = -(tt * np.log(p) + (1 - tt) * np.log(1 - p)).mean()
    assert soft_bce(s, t).item() == pytest.approx(expected, rel=1e-5)
    w = torch.zeros_like(t)
    w[0] = 1
    expected_w = -(tt[0] * np.log(p[0]) + (1 - tt[0]) * np.log(1 - p[0])).mean()
    assert soft_bce(s, t, weight=w).item() == pytest.approx(expected_w, rel=1e-5)


def test_soft_bce_gradient_vanishes_at_teacher_logit():
    t = torch.tensor([[[[0.2, 0.9, 0.5]]]])
    s = torch.log(t / (1 - t)).requires_grad_(True)
    soft_bce(s, t).backward()
    assert torch.allclose(s.grad, torch.zeros_like(s), atol=1e-7)
    s2 = torch.zeros_like(t, requires_grad=True)
    soft_bce(s2, t).backward()  # d/ds mean BCE = (sigmoid(s) - t) / n
    assert torch.allclose(s2.grad, (0.5 - t) / 3, atol=1e-7)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kl_distill_bernoulli_formula(temperature):
    g = torch.Generator().manual_seed(1)
    s = torch.randn(3, 1, 2, 2, generator=g).double()
    pt = torch.rand(3, 1, 2, 2, generator=g).double() * 0.98 + 0.01
    zt = torch.log(pt / (1 - pt))
    # Hinton: T^2 KL(p_t^T || p_s^T) with p^T = sigmoid(z / T), per pixel Bernoulli
    a, b = torch.sigmoid(zt / temperature), torch.sigmoid(s / temperature)
    kl = a * torch.log(a / b) + (1 - a) * torch.log((1 - a) / (1 - b))
    expected = (kl.mean() * temperature ** 2).item()
    assert kl_distill(s, pt, temperature).item() == pytest.approx(expected, rel=1e-4)
    assert kl_distill(zt, pt, temperature).item() == pytest.approx(0.0, abs=1e-5)


def test_kl_distill_multiclass_logits():
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(2, 3, 2, 2, generator=g), torch.randn(2, 3, 2, 2, generator=g)
    T = 3.0
    ps, pt = torch.softmax(s / T, 1), torch.softmax(t / T, 1)
    expected = ((pt * (pt.log() - ps.log())).sum(1).mean() * T * T).item()
    assert kl_distill(s, t, T, teacher_is_prob=False).item() == pytest.approx(expected, rel=1e-4)


def _barlow_reference(z1: np.ndarray, z2: np.ndarray, lambd: float) -> float:
    n, d = z1.shape
    z1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
    z2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
    loss = 0.0
    for i in range(d):
        for j in range(d):
            c = sum(z1[b, i] * z2[b, j] for b in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lambd * c ** 2
    return loss


def test_barlow_twins_formula():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    expected = _barlow_reference(z1.double().numpy(), z2.double().numpy(), 0.0051)
    assert barlow_twins_loss(z1, z2, 0.0051).item() == pytest.approx(expected, rel=1e-4)
    # identical, decorrelated views reach ~0
    from scipy.linalg import hadamard
    z = torch.tensor(hadamard(8)[:, 1:6], dtype=torch.float32)  # zero-mean, orthogonal columns
    assert barlow_twins_loss(z, z).item() < 1e-3


def test_off_diagonal():
    m = torch.arange(9.0).view(3, 3)
    assert off_diagonal(m).tolist() == [1, 2, 3, 5, 6, 7]


def test_info_nce_formula():
    g = torch.Generator().manual_seed(4)
    q, k, queue = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g), torch.randn(10, 6, generator=g)
    T = 0.2
    qn, kn = q / q.norm(dim=1, keepdim=True), k / k.norm(dim=1, keepdim=True)
    nn_ = queue / queue.norm(dim=1, keepdim=True)
    losses = []
    for i in range(4):
        pos = math.exp((qn[i] @ kn[i]).item() / T)
        neg = sum(math.exp((qn[i] @ nn_[j]).item() / T) for j in range(10))
        losses.append(-math.log(pos / (pos + neg)))
    assert info_nce(q, k, queue, T).item() == pytest.approx(np.mean(losses), rel=1e-4)
    q.requires_grad_(True)
    k.requires_grad_(True)
    info_nce(q, k, queue, T).backward()
    assert q.grad is not None and k.grad is None  # keys are stop-gradient


# --------------------------------------------------------------------------- two processes

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, x: torch.Tensor, w0: torch.Tensor, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    w = w0.clone().requires_grad_(True)
    local = x.view(2, -1, x.shape[1])[rank]  # rank r holds half the global batch
    z1, z2 = local @ w, torch.tanh(local @ w)
    loss = barlow_twins_loss(z1, z2)
    loss.backward()
    torch.distributed.all_reduce(w.grad)  # what DDP does: average the parameter gradients
    out[rank] = (loss.item(), (w.grad / 2).clone())
    torch.distributed.destroy_process_group()


def test_barlow_gather_two_processes_equals_full_batch():
    g = torch.Generator().manual_seed(5)
    x, w0 = torch.randn(16, 6, generator=g), torch.randn(6, 4, generator=g)
    w = w0.clone().requires_grad_(True)
    loss = barlow_twins_loss(x @ w, torch.tanh(x @ w))
    loss.backward()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.start_processes(_worker, args=(_free_port(), x, w0, out), nprocs=2, start_method="fork")
        results = dict(out)
    for rank in (0, 1):
        assert results[rank][0] == pytest.approx(loss.item(), rel=1e-5)
        assert torch.allclose(results[rank][1], w.grad, rtol=1e-4, atol=1e-6)
