"""The project's registries of named classes (fusion methods, dataset layouts, tasks): mmengine's
calls and errors, and lazy registration from their locations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion_perception.registry import DATASET_LAYOUTS, FUSERS, Registry

REPO = Path(__file__).resolve().parents[1]


def test_register_get_and_duplicates():
    reg = Registry("thing")

    @reg.register_module(name="a")
    class A:
        pass

    reg.register_module(name=["b", "c"], module=A)
    assert reg.get("a") is A and reg.get("c") is A and "b" in reg and len(reg) == 3
    assert reg.get("missing") is None
    with pytest.raises(KeyError, match="thing 'a' is already registered \\(by test_registry\\)"):
        reg.register_module(name="a", module=int)
    reg.register_module(name="a", module=int, force=True)
    assert reg.get("a") is int


def test_the_registry_module_imports_nothing_of_the_project_nor_mmengine():
    code = ("import sys, fusion_perception.registry; "
            "print(sorted(m for m in sys.modules if m.startswith(('fusion_perception.', 'mmengine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['fusion_perception.registry']"


def test_registries_import_their_locations_on_first_lookup(tmp_path, monkeypatch):
    """Explicit modules first, in their order; then the rest of a ``package.*``, in name order; then
    entries registered from elsewhere. An absent location is passed over."""
    package = tmp_path / "toy_entries"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for module, names in (("zeta", "'z1', 'z2'"), ("alpha", "'a'"), ("mid", "'m'")):
        (package / f"{module}.py").write_text(
            "from toy_registry_holder import REG\n"
            f"for key in ({names},):\n    REG.register_module(name=key, module=type(key, (), {{}}))\n")
    holder = type(sys)("toy_registry_holder")
    holder.REG = Registry("toy", locations=("toy_entries.mid", "toy_absent", "toy_entries.*"), name_attr="name")
    monkeypatch.setitem(sys.modules, "toy_registry_holder", holder)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = holder.REG

    @reg.register_module(name="early")  # registered before the first lookup: listed after the locations'
    class Early:
        name = "kept"  # a class that names itself keeps its name

    try:
        assert not [m for m in sys.modules if m.startswith("toy_entries")]  # nothing imported yet
        assert reg.names() == ["m", "a", "z1", "z2", "early"]
        assert reg.get("z2").name == "z2" and Early.name == "kept"
    finally:
        for module in [m for m in sys.modules if m.startswith("toy_entries")]:
            del sys.modules[module]


def test_the_project_registries_list_the_built_in_entries():
    from fusion_perception.registry import TASKS

    assert {"ir", "vi", "mean", "max", "laplacian", "dwt", "gff", "emma", "folder"} <= set(FUSERS.names())
    assert DATASET_LAYOUTS.names()[:4] == ["pairs", "m3fd", "m3fd_tardal", "msrs"]
    assert FUSERS.get("laplacian").name == "laplacian" and DATASET_LAYOUTS.get("m3fd_tardal").name == "m3fd_tardal"
    assert TASKS.names() == ["det", "seg"]
    assert TASKS.get("det").name == "det" and TASKS.get("seg").metric == "mIoU"


def test_no_fusion_module_imports_the_methods_for_the_registry():
    """The circle is gone: ``fusion/base.py`` imports no method module; the registry does, lazily."""
    code = ("import sys, fusion_perception.registry as r; "
            "before = 'fusion_perception.fusion.classical' in sys.modules; "
            "r.FUSERS.get('mean'); r.DATASET_LAYOUTS.get('msrs'); "
            "print(before, sorted(m for m in sys.modules if m.startswith('fusion_perception.data.layouts.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.split(" ", 1)
    assert out[0] == "False"
    assert "'fusion_perception.data.layouts.msrs'" in out[1] and "'fusion_perception.data.layouts.tardal'" in out[1]
    source = (REPO / "fusion_perception" / "fusion" / "base.py").read_text()
    assert "fusion.classical" not in source and "fusion.emma" not in source and "fusion.folder" not in source
