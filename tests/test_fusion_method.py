"""A run resolves its fusion method once: the method, its label, its weights and their sha256, its
cache folder, the fuser built once; every step after receives that value (fusion/method.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fusion_perception
from fusion_perception.errors import ConfigError

PACKAGE = Path(fusion_perception.__file__).resolve().parent


def _callers(name: str) -> list[str]:
    """The package's modules that call ``name(...)`` (as a bare name or an attribute)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                if called == name:
                    found.append(str(path.relative_to(PACKAGE)))
    return sorted(set(found))


def test_the_method_and_its_weights_are_resolved_in_one_place():
    """On the run path (fusing, the tasks, the comparison, the tools) only fusion/method.py builds a
    fuser and resolves its weights; EMMA's training builds its pseudo ground truth's fusers itself."""
    training = "emma/training/"
    assert [m for m in _callers("build_fuser") if not m.startswith(training)] == ["fusion/method.py"]
    assert [m for m in _callers("resolve_weights") if not m.startswith(training)] == ["fusion/method.py"]


def test_a_resolved_method_knows_its_label_weights_and_cache_folder(tmp_path):
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS
    from fusion_perception.files import file_sha256
    from fusion_perception.fusion.method import resolve_method

    emma = resolve_method("emma")  # the synthetic default: the toolkit's checkpoint
    assert (emma.name, emma.label, emma.cache_label) == ("emma", "emma", "emma")
    assert emma.weights == DEFAULT_EMMA_WEIGHTS and emma.weights_sha256 == file_sha256(DEFAULT_EMMA_WEIGHTS)
    assert emma.settings() == {"fuser": emma.fuser.config(), "fusion_weights_sha256": emma.weights_sha256}
    assert resolve_method("emma") is emma  # a method with weights: once per process
    folder = resolve_method(f"folder:CDD={tmp_path}")
    assert (folder.name, folder.label, folder.weights, folder.cache_label) == ("folder", "CDD", None, "CDD")
    with pytest.raises(ConfigError, match=r"unknown fusion method 'lapacian' \(did you mean 'laplacian'\?\)"):
        resolve_method("lapacian")
    with pytest.raises(ConfigError, match="emma needs weights"):
        resolve_method("emma", data=tmp_path)  # not the synthetic scenes: the user chooses


@pytest.mark.slow
def test_a_run_reads_and_hashes_the_checkpoint_once(synthetic_root, tmp_path, monkeypatch):
    """A segmentation run with EMMA (fuse, train, test) loads the checkpoint once and hashes it once;
    a second run in the same process loads and hashes nothing more."""
    from fusion_perception.emma import checkpoint, fuser
    from fusion_perception.emma.weights import DEFAULT_EMMA_WEIGHTS
    from fusion_perception.fusion import method
    from fusion_perception.segmentation.task import run_segmentation

    loads, hashes = [], []
    load, sha = checkpoint.load_state_dict_file, fuser.file_sha256
    monkeypatch.setattr(checkpoint, "load_state_dict_file", lambda path, *a, **k: loads.append(path) or load(path, *a, **k))
    monkeypatch.setattr(fuser, "file_sha256", lambda path: hashes.append(path) or sha(path))
    monkeypatch.setattr(method, "_RESOLVED", {})  # as in a new process
    kw = dict(config="small_cpu", epochs=1, batch=8, device="cpu", progress=False, num_pred_images=0)
    first = run_segmentation(synthetic_root / "msrs", "emma", tmp_path / "a", **kw)
    assert len(loads) == 1 and len(hashes) == 1 and Path(hashes[0]) == DEFAULT_EMMA_WEIGHTS.resolve()
    second = run_segmentation(synthetic_root / "msrs", "emma", tmp_path / "b", seed=1, **kw)
    assert len(loads) == 1 and len(hashes) == 1
    assert first["settings"]["fusion_weights_sha256"] == second["settings"]["fusion_weights_sha256"] == sha(
        DEFAULT_EMMA_WEIGHTS)
