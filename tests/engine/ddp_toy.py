"""Entry point for the two-process engine test: ``torchrun ... ddp_toy.py OUT BATCH``."""

import dataclasses
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from toy import ToyDataset, ToyTask  # noqa: E402

from rckd.engine import TrainConfig, fit  # noqa: E402
from rckd.runtime import seed_everything  # noqa: E402


def main(out: str, batch_size: int) -> None:
    torch.set_num_threads(1)
    cfg = dataclasses.replace(TrainConfig(), out=out, device="cpu", steps=6, batch_size=batch_size, lr=3e-2,
                              warmup_steps=1, workers=0, log_every=1, ckpt_every=3, channels_last=False)
    seed_everything(0)
    fit(ToyTask(noise=0.0), ToyDataset(), cfg)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
