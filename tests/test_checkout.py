"""The checkout is the package: its folders are what the tests import, whichever way the package
was installed (editable or from a wheel), and the top-level folders refuse to load a second copy."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_tests_import_the_checkout():
    import vitr_qdrant
    import vitr_qdrant.connectors
    import vitr_qdrant.encoders

    for module, folder in ((vitr_qdrant, "vitr_qdrant"), (vitr_qdrant.connectors, "connectors"),
                           (vitr_qdrant.encoders, "encoders")):
        assert Path(module.__file__).resolve().parent == ROOT / folder


@pytest.mark.parametrize("name", ["connectors", "connectors.query", "encoders", "encoders.model"])
def test_a_top_level_folder_refuses_to_load_a_second_copy(name):
    out = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    package = "vitr_qdrant." + name.split(".")[0]
    assert out.returncode == 1 and f"this folder is the package {package}: import that" in out.stderr, out.stderr
