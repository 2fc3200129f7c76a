"""The training engine: one loop for pretraining, fine-tuning and teacher training.

Public API (import from ``rckd.engine``)::

    from rckd.engine import Task, TrainConfig, fit

    @dataclasses.dataclass
    class MyConfig(TrainConfig):          # TrainConfig inherits RunConfig (out, device, seed)
        width: int = option(64, help="...")

    class MyTask(Task):                   # an nn.Module holding every trainable part
        def forward(self, batch):         # batch: collated sample dict, already on the device
            x = batch["image"]            # uint8 (B, 3, H, W): normalise/augment on the device
            loss = ...
            return loss, {"acc": acc.detach()}   # logs: scalar tensors -> "train/acc"

    seed_everything(cfg.seed)             # before building the task: identical init on every rank
    result = fit(MyTask(...), dataset, cfg, collate_fn=None,
                 evaluate=lambda task, step: {"val/acc": ...},  # every cfg.eval_every steps
                 meta={"arch": "resnet18"})                      # extra JSON saved with checkpoints
    result.step, result.checkpoint, result.history, result.images_per_s

``fit`` does, in this order: start the process group when launched by ``torchrun`` (gloo on
CPU, nccl on CUDA; one process otherwise), seed ``cfg.seed + rank``, move the task to the
device (``channels_last`` when asked), call ``task.setup(device)``, build AdamW/SGD over
``task.param_groups(weight_decay)``, resume from ``<out>/checkpoints`` when one exists and the
saved config matches (otherwise ``ValueError`` naming the differing keys; keys in
``RESUME_IGNORED`` may differ), optionally ``torch.compile`` ``task.compile_targets()``, wrap
in DDP, and run ``cfg.steps`` optimizer steps of ``cfg.accum_steps`` micro-batches each under
autocast (``precision``: auto = bf16 on CUDA when supported else fp16 with a GradScaler, fp32
on CPU; bf16 also works on CPU), with a linear warm-up + cosine learning rate, gradient
clipping, ``task.after_step(step, total)`` after each step, scalars every ``log_every`` steps
(``train/loss``, ``train/lr``, ``train/<log>``, ``perf/images_per_s``,
``perf/data_fraction``) to TensorBoard (``<out>/tb``) and ``<out>/metrics.jsonl``, image
panels from ``task.panels(batch)`` every ``image_every`` steps, and atomic checkpoints every
``ckpt_every`` steps and at the end (only rank 0 writes). A NaN/inf loss raises
:class:`NonFiniteLossError` at the next log or checkpoint step, naming the step and the last
good checkpoint, which is never overwritten by the bad state. A task whose loss leaves some
trainable parameters unused sets ``find_unused_parameters = True`` (DDP needs to know).

Data: ``dataset`` is any map-style dataset of sample dicts. The loop builds the DataLoader
(``workers`` processes, pinned memory on CUDA, persistent workers) over
:class:`StepBatchSampler`: step ``k`` uses the same samples whatever the number of processes
(global batch = ``batch_size x world_size x accum_steps``) and a resumed run continues at the
exact step, with every rank's RNG state restored.

Modules: :mod:`~rckd.engine.loop` (``fit``, ``Task``, ``TrainConfig``),
:mod:`~rckd.engine.checkpoint` (``save_checkpoint``, ``load_checkpoint``,
``latest_checkpoint``), :mod:`~rckd.engine.schedule` (``cosine_with_warmup``),
:mod:`~rckd.engine.distributed` (``init_distributed``, ``is_main``, ``all_reduce_mean``,
``reduce_dict``, ``barrier``, ``StepBatchSampler``), :mod:`~rckd.engine.logging`
(``RunLogger``, ``read_metrics``).
"""

from rckd.engine.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rckd.engine.distributed import (StepBatchSampler, all_reduce_mean, barrier, init_distributed,
                                     is_main, reduce_dict)
from rckd.engine.logging import RunLogger, read_metrics
from rckd.engine.loop import (RESUME_IGNORED, FitResult, NonFiniteLossError, Task, TrainConfig,
                              autocast_dtype, fit)
from rckd.engine.schedule import cosine_with_warmup

__all__ = ["Task", "TrainConfig", "fit", "FitResult", "NonFiniteLossError", "RESUME_IGNORED",
           "autocast_dtype", "cosine_with_warmup", "save_checkpoint", "load_checkpoint",
           "latest_checkpoint", "init_distributed", "is_main", "all_reduce_mean", "reduce_dict",
           "barrier", "StepBatchSampler", "RunLogger", "read_metrics"]
