"""Rules the test suite keeps so that it cannot pass by accident: the project's own modules
import (an import error fails, it is never skipped), and the real data is found only through
conftest's fixtures, which honour FUSION_PERCEPTION_SHARED."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import fusion_perception

TESTS = Path(__file__).resolve().parent


def test_every_module_of_the_package_imports():
    names = [m.name for m in pkgutil.walk_packages(fusion_perception.__path__, "fusion_perception.")]
    assert len(names) > 30
    for name in names:
        importlib.import_module(name)  # an ImportError fails here instead of skipping tests


def test_no_test_skips_on_an_import_error_of_the_project():
    pattern = re.compile(r"importorskip\(\s*[\"']fusion_perception")
    offenders = [p.name for p in TESTS.glob("test_*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_shared_data_is_found_only_through_conftest():
    pattern = re.compile(r"""[/(]\s*["']shared["']""")  # a path joined with the folder name itself
    offenders = [p.name for p in TESTS.glob("test_*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_fusion_perception_shared_moves_the_real_data(tmp_path):
    """Pointed at an empty folder, the tests that need ../shared skip instead of reading it anyway."""
    env = {**os.environ, "FUSION_PERCEPTION_SHARED": str(tmp_path), "PYTHONPATH": str(TESTS.parent)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "published_listing",
                        str(TESTS / "test_models.py")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "2 skipped" in r.stdout and "passed" not in r.stdout, r.stdout[-2000:]
