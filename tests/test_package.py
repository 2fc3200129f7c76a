"""``import rckd``: light (no torch), subpackages on first use, CSAT in timm whatever the order."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO


def _python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code).strip()], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": ""}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip()


def test_import_rckd_loads_neither_torch_nor_timm():
    assert _python("""
        import sys, rckd
        print(sorted({"torch", "timm", "numpy", "yaml"} & set(sys.modules)))
    """) == "[]"


@pytest.mark.parametrize("imports", ["import rckd, timm", "import timm, rckd", "import rckd\nimport rckd.models\nimport timm"])
def test_csat_is_in_timm_after_both_imports(imports):
    check = textwrap.dedent("""
        import importlib.util
        importlib.util.find_spec("timm")  # a mere lookup changes nothing
        print(type(timm.create_model("csat", num_classes=3)).__name__, "csat" in timm.list_models("csat*"))
    """)
    assert _python(imports + "\n" + check) == "CSAT True"


def test_subpackages_load_on_first_use():
    assert _python("""
        import rckd
        from rckd.cli import __version__
        print(rckd.models.create_backbone("resnet18").name, rckd.__version__ == __version__)
    """) == "resnet18 True"
