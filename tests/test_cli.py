"""The command line: help everywhere, one-line errors before any work, a fast torch-free start."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from rckd.cli import VERBS, Verb, main
from tests.conftest import REPO, run_rckd


def _verbs():
    for name, verb in VERBS.items():
        if isinstance(verb, Verb):
            yield [name]
        else:
            yield from ([name, action] for action in verb)


@pytest.mark.parametrize("words", list(_verbs()), ids=lambda w: " ".join(w))
def test_every_verb_has_help(words, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: rckd" in out and "--config" in out


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in VERBS:
        assert name in out


# Each bad input: the command, then what its single line of error must say. The output folder
# must not exist afterwards: the input is refused before any work.
BAD = [
    (["pretrain", "batch_size=0"], "batch_size=0: must be at least 1, got 0"),
    (["pretrain", "--batch-size", "-4"], "--batch-size: must be at least 1, got -4"),
    (["pretrain", "steps=0"], "steps=0: must be at least 1, got 0"),
    (["pretrain", "steps=-3"], "steps=-3: must be at least 1, got -3"),
    (["pretrain", "steps=1.5"], "steps=1.5: expected an integer, got '1.5'"),
    (["pretrain", "accum_steps=0"], "accum_steps=0: must be at least 1, got 0"),
    (["pretrain", "pool_size=0"], "pool_size=0: must be at least 1, got 0"),
    (["pretrain", "rckd.crop_scale=0.5"], "rckd.crop_scale=0.5: expected a list of 2 values, got '0.5'"),
    (["pretrain", "method=dino"], "method=dino: expected one of rckd, barlow, moco, imagenet, got 'dino'"),
    (["pretrain", "image_size=100"], "image_size: must be a multiple of 32, got 100"),
    (["finetune", "log_every=0"], "log_every=0: must be at least 1, got 0"),
    (["finetune", "eval_batch_size=0"], "eval_batch_size=0: must be at least 1, got 0"),
    (["finetune", "optimizer=adam"], "optimizer=adam: expected one of adamw, sgd, got 'adam'"),
    (["finetune", "mode=probe"], "mode=probe: expected one of full, linear, knn, got 'probe'"),
    (["finetune", "--device", "gpu"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'gpu'"),
    (["finetune", "dataset_options.siz=3"], "dataset_options.siz: dataset 'synthetic' does not take option 'siz'"),
    (["reproduce", "seeds=-1"], "seeds=-1: must be at least 0, got -1"),
    (["tile", "slide.svs", "min_tissue=2"], "min_tissue=2: must be at most 1, got 2"),
    (["tile", "slide.svs", "--patch-size", "0"], "--patch-size: must be at least 1, got 0"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_input_is_one_line_before_any_work(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert err.startswith(f"rckd {argv[0]}: error: ")
    assert not out.exists()


def test_broken_config_file_names_line_and_column(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text("steps: 3\nlr: [0.1\n")
    assert main(["finetune", "--config", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}:3:1: invalid YAML" in err
    assert main(["doctor", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: config file not found" in capsys.readouterr().err


@pytest.mark.parametrize("option, hint", [("optimizer=SGD", "'sgd'"), ("mode=Linear", "'linear'"),
                                          ("precision=BF16", "'bf16'"), ("mode=KNN", "'knn'")])
def test_misspelled_choices_are_refused_before_any_work(tmp_path, capsys, option, hint):
    out = tmp_path / "o"
    assert main(["finetune", option, "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option.split("=")[0] in err and f"did you mean {hint}" in err
    assert not out.exists()  # refused before any work


def test_devices_take_any_case():
    from rckd.cli import build_parser
    from rckd.commands.arguments import config_from_args, parse_args
    from rckd.finetune.run import FinetuneConfig

    argv = ["finetune", "--device", "CPU"]
    assert config_from_args(FinetuneConfig, parse_args(build_parser(argv), argv)).device == "cpu"


def test_bad_initial_weights_are_one_line(tmp_path, capsys):
    bad = tmp_path / "student.safetensors"
    bad.write_bytes(b"not safetensors at all")
    argv = ["finetune", f"init={bad}", "steps=1", "--out", str(tmp_path / "o"), "--device", "cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{bad}: not a readable safetensors file" in err


def test_console_script_version_and_help_without_torch(tmp_path):
    code = textwrap.dedent("""
        import sys
        from rckd.cli import main
        for argv in (["--version"], ["--help"], ["tile", "--help"]):
            try:
                main(argv)
            except SystemExit as exc:
                assert exc.code == 0, argv
        heavy = sorted({"torch", "timm", "torchvision", "kornia"} & set(sys.modules))
        print("HEAVY", heavy, file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stderr
    assert proc.stdout.startswith("rckd ") and "usage: rckd tile" in proc.stdout
    assert run_rckd("--version", cwd=tmp_path).stdout.startswith("rckd ")


def test_tiling_never_imports_torch(tmp_path):
    """A whole ``rckd tile`` run (a slide named with '=' too) leaves torch and timm unimported."""
    from rckd.data.synthetic import write_synthetic_slide

    slide = write_synthetic_slide(tmp_path / "slide=a.tiff", 512, 512, mpp=0.5, seed=1)
    code = textwrap.dedent(f"""
        import sys
        from rckd.cli import main
        code = main(["tile", "slide=a.tiff", "--out", "tiles", "--patch-size", "128", "--no-progress",
                     "--save-images", "--workers", "2"])
        print("CODE", code, "HEAVY", sorted({{"torch", "timm"}} & set(sys.modules)), file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=slide.parent, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=300)
    assert "CODE 0 HEAVY []" in proc.stderr, proc.stderr[-2000:]
    assert [p.name for p in (tmp_path / "tiles").rglob("*.h5")] == ["slide_a.h5"]
