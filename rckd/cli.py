"""The ``rckd`` command line: parse arguments into a config dataclass, call one function.

Each verb names its config class (``module:Class``) and its function in
:mod:`rckd.commands.verbs`. Modules are imported only for the verb that runs, so ``rckd --help``,
``rckd --version`` and ``rckd tile`` start without torch. Options come from the config's field
declarations (:mod:`rckd.commands.arguments`). Bad input (a ``ValueError`` such as
:class:`~rckd.config.ConfigError`, an ``OSError`` or a ``KeyError``) ends with one line naming the
problem and exit code 2; ``RCKD_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable, NamedTuple, Sequence

from rckd import __version__
from rckd.commands.arguments import add_options, config_from_args, parse_args

__all__ = ["main", "VERBS", "Verb", "build_parser"]


class Verb(NamedTuple):
    """A subcommand: its config class, its function in rckd.commands.verbs, its one-line help."""

    config: str  # "module:ConfigClass"
    run: str  # function name in rckd.commands.verbs
    help: str
    config_argument: bool = False  # the first free argument is a YAML config file (a grid)


VERBS: dict[str, Verb | dict[str, Verb]] = {
    "demo": Verb("rckd.demo:DemoConfig", "demo",
                 "whole pipeline on the synthetic world: slide, tiles, teacher, RCKD, fine-tuning"),
    "doctor": Verb("rckd.doctor:DoctorConfig", "doctor",
                   "report library versions, devices, datasets and weight files found"),
    "tile": Verb("rckd.data.wsi.pipeline:TileConfig", "tile",
                 "tile whole-slide images by microns per pixel into h5 tile sets"),
    "teacher": {
        "list": Verb("rckd.commands.verbs:TeacherListConfig", "teacher_list",
                     "list registered nuclei teachers"),
        "train": Verb("rckd.teacher.train:TeacherTrainConfig", "teacher_train",
                      "train the learned nuclei teacher on a MoNuSeg-layout root"),
        "eval": Verb("rckd.teacher.evaluate:TeacherEvalConfig", "teacher_eval",
                     "Dice, AJI and PQ of a teacher on a MoNuSeg-layout root"),
        "predict": Verb("rckd.teacher.predict:PredictConfig", "teacher_predict",
                        "cache a teacher's responses for an h5 tile set or an image folder"),
    },
    "pretrain": Verb("rckd.pretrain.run:PretrainConfig", "pretrain",
                     "pretrain a student backbone (rckd, barlow, moco, imagenet init)"),
    "finetune": Verb("rckd.finetune.run:FinetuneConfig", "finetune",
                     "fine-tune a backbone on a classification or segmentation dataset"),
    "reproduce": Verb("rckd.reproduce:ReproduceConfig", "reproduce",
                      "run a grid of experiments (GRID.yaml) and render the RCKD table", True),
}


def _config_class(verb: Verb) -> type:
    module, name = verb.config.split(":")
    return getattr(importlib.import_module(module), name)


def _function(verb: Verb) -> Callable:
    from rckd.commands import verbs

    return getattr(verbs, verb.run)


def _add_verb(subparsers: argparse._SubParsersAction, name: str, verb: Verb, argv: Sequence[str]) -> None:
    parser = subparsers.add_parser(name, help=verb.help, description=verb.help)
    parser.set_defaults(_verb=verb)
    if name not in argv:  # only the chosen verb imports its module
        return
    try:
        cls = _config_class(verb)
    except ImportError as exc:
        parser.set_defaults(_unavailable=f"'{name}' is not available: {exc}")
        return
    parser.description = (cls.__doc__ or verb.help).strip()
    add_options(parser, cls, verb.config_argument)


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full argument parser; verbs named in ``argv`` get their config options."""
    parser = argparse.ArgumentParser(prog="rckd", description="Response-based Cross-task Knowledge "
                                     "Distillation for computational pathology.")
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
    verb: Verb = args._verb
    try:
        cfg = config_from_args(_config_class(verb), args, verb.config_argument)
        code = _function(verb)(cfg)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, KeyError) as exc:
        if os.environ.get("RCKD_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
