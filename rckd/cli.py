"""The ``rckd`` command line: parse arguments into a config dataclass, call one function.

Each verb names ``module:ConfigClass:function``. The module is imported only when its verb runs,
so ``rckd --help`` stays fast. Options are generated from the config's fields
(:mod:`rckd.config`); the function takes the resolved config and returns an exit code or None.
Bad input (``ValueError``, ``OSError``, ``KeyError``) ends with one line naming the problem and
a non-zero exit code; ``RCKD_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable, NamedTuple, Sequence

from rckd import __version__
from rckd.config import add_config_arguments, config_from_args, parse_args

__all__ = ["main", "VERBS"]


class Verb(NamedTuple):
    """Where a subcommand's config and function live, and its one-line help."""

    target: str  # "module:ConfigClass:function"
    help: str


VERBS: dict[str, Verb | dict[str, Verb]] = {
    "demo": Verb("rckd.demo:DemoConfig:run_demo",
                 "whole pipeline on the synthetic world: slide, tiles, teacher, RCKD, fine-tuning"),
    "doctor": Verb("rckd.doctor:DoctorConfig:run_doctor",
                   "report library versions, devices, datasets and weight files found"),
    "tile": Verb("rckd.data.wsi.pipeline:TileConfig:run_tiling",
                 "tile whole-slide images by microns per pixel into h5 tile sets"),
    "teacher": {
        "list": Verb("rckd.models.teachers.registry:TeacherListConfig:list_teachers",
                     "list registered nuclei teachers"),
        "train": Verb("rckd.teacher.train:TeacherTrainConfig:train_teacher",
                      "train the learned nuclei teacher on a MoNuSeg-layout root"),
        "eval": Verb("rckd.teacher.evaluate:TeacherEvalConfig:evaluate_teacher",
                     "Dice, AJI and PQ of a teacher on a MoNuSeg-layout root"),
        "predict": Verb("rckd.teacher.predict:PredictConfig:predict_responses",
                        "cache a teacher's responses for an h5 tile set or an image folder"),
    },
    "pretrain": Verb("rckd.pretrain.run:PretrainConfig:pretrain",
                     "pretrain a student backbone (rckd, barlow, moco, imagenet init)"),
    "finetune": Verb("rckd.finetune.run:FinetuneConfig:finetune",
                     "fine-tune a backbone on a classification or segmentation dataset"),
    "reproduce": Verb("rckd.reproduce:ReproduceConfig:reproduce",
                      "run a grid of experiments and render the RCKD table"),
}


def _resolve(target: str) -> tuple[type, Callable]:
    module_name, cls_name, fn_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name), getattr(module, fn_name)


def _add_verb(subparsers: argparse._SubParsersAction, name: str, verb: Verb, argv: Sequence[str]) -> None:
    parser = subparsers.add_parser(name, help=verb.help, description=verb.help)
    parser.set_defaults(_target=verb.target)
    if name not in argv:  # only the chosen verb imports its module
        return
    try:
        cls, _ = _resolve(verb.target)
    except ImportError as exc:
        parser.set_defaults(_unavailable=f"'{name}' is not available: {exc}")
        return
    parser.description = (cls.__doc__ or verb.help).strip()
    add_config_arguments(parser, cls)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full argument parser; verbs named in ``argv`` get their config options."""
    parser = argparse.ArgumentParser(prog="rckd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rckd {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    for name, verb in VERBS.items():
        if isinstance(verb, Verb):
            _add_verb(sub, name, verb, argv)
            continue
        group = sub.add_parser(name, help=f"{name} commands: {', '.join(verb)}")
        inner = group.add_subparsers(dest="action", metavar="ACTION", required=True)
        for action, v in verb.items():
            _add_verb(inner, action, v, argv)
    return parser


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log to stderr: INFO by default, DEBUG with -v, WARNING with -q."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rckd`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(build_parser(argv), argv)
    setup_logging(args.verbose, args.quiet)
    prog = "rckd " + " ".join(a for a in (args.verb, getattr(args, "action", None)) if a)
    if getattr(args, "_unavailable", None):
        print(f"{prog}: error: {args._unavailable}", file=sys.stderr)
        return 2
    try:
        cls, fn = _resolve(args._target)
        cfg = config_from_args(cls, args)
        code = fn(cfg)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as exc:
        if os.environ.get("RCKD_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0  # functions may return a result object


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
