"""The project's registry of named classes (the fusion methods' one): mmengine's calls and errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fusion_perception.registry import Registry


def test_register_get_and_duplicates():
    reg = Registry("thing")

    @reg.register_module(name="a")
    class A:
        pass

    reg.register_module(name=["b", "c"], module=A)
    assert reg.get("a") is A and reg.get("c") is A and "b" in reg and len(reg) == 3
    assert reg.get("missing") is None
    with pytest.raises(KeyError, match="a is already registered in thing"):
        reg.register_module(name="a", module=int)
    reg.register_module(name="a", module=int, force=True)
    assert reg.get("a") is int


def test_the_registry_module_imports_nothing_of_the_project_nor_mmengine():
    code = ("import sys, fusion_perception.registry; "
            "print(sorted(m for m in sys.modules if m.startswith(('fusion_perception.', 'mmengine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fusion_perception.registry']"
