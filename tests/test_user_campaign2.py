"""The second careless-user campaign (issue 24): nothing lost, nothing unsafe, nothing silently
wrong, nothing raced; every user error one line naming the input.

Each test names the item of the issue it covers (``i1`` ... ``i16``, ``msg`` for the paragraph on
tracebacks and unclear messages). The data is tiny and the trainings a few iterations long.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from user_tools import one_line

from fusion_perception.errors import ConfigError, OutputError
from fusion_perception.synthetic import dataset as synthetic

SMALL = (160, 128)


# ----------------------------------------------------------------------------- 1: data loss


@pytest.fixture
def tiny_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The synthetic default made small (2 pairs per task) in ``tmp_path/default``."""
    monkeypatch.setenv("FUSION_PERCEPTION_DATA", str(tmp_path / "default"))
    monkeypatch.setattr(synthetic, "DEFAULT_COUNT", 2)
    monkeypatch.setattr(synthetic, "DEFAULT_SIZE", SMALL)
    return tmp_path / "default"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_i1_the_default_is_never_made_over_a_users_folder(tiny_default: Path) -> None:
    own = tiny_default / "m3fd"  # a dataset of the user's own, where the default would go
    (own / "Ir").mkdir(parents=True)
    (own / "Ir" / "mine.png").write_bytes(b"user data")
    with pytest.raises(OutputError, match="FUSION_PERCEPTION_DATA") as err:
        synthetic.ensure_default("det")
    assert "m3fd/ (not the synthetic default: no synthetic.json)" in str(err.value)
    assert _tree(tiny_default) == {"m3fd/Ir/mine.png": b"user data"}


def test_i1_an_older_default_with_files_of_the_users_is_kept(tiny_default: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic.ensure_default("det")
    (tiny_default / "m3fd" / "Annotation" / "notes.txt").write_text("mine")
    before = _tree(tiny_default)
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    with pytest.raises(OutputError, match=r"m3fd/Annotation/notes\.txt"):
        synthetic.ensure_default("det")
    assert _tree(tiny_default) == before
    (tiny_default / "m3fd" / "Annotation" / "notes.txt").unlink()
    assert synthetic.ensure_default("det") == tiny_default.resolve()  # the generator's own files: remade


def test_i1_a_folder_of_other_things_is_not_filled_with_the_default(tiny_default: Path, tool) -> None:
    tiny_default.mkdir()
    (tiny_default / "Ir").mkdir()  # FUSION_PERCEPTION_DATA pointed at a dataset by mistake
    rc, _, err = tool("fuse_dataset", "--fusion", "mean", "--out", tiny_default.parent / "fused")
    assert rc == 2 and "FUSION_PERCEPTION_DATA" in one_line(err) and "Ir" in one_line(err)
    assert sorted(p.name for p in tiny_default.iterdir()) == ["Ir"]


# ----------------------------------------------------------------------------- 5: unsafe paths


@pytest.mark.parametrize("name", ["..", "../../escaped", "/tmp/abs", "a/b", "a\\b", "", "~user"])
def test_i5_a_method_name_never_leaves_its_folder(name: str, tmp_path: Path, tool,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from pair_folders import random_pairs

    monkeypatch.setenv("FUSION_PERCEPTION_FUSED", str(tmp_path / "cache" / "fused"))
    data = random_pairs(tmp_path / "data", n=2)
    spec = f"folder:{name}={data / 'vi'}"
    for command in (("fuse_dataset", "--data", data, "--fusion", spec),
                    ("compare_methods", "--task", "seg", "--methods", f"ir,{spec}", "--out", tmp_path / "cmp")):
        rc, _, err = tool(*command)
        line = one_line(err)
        assert rc == 2 and ("cannot name a folder" in line or "folder:NAME=PATH" in line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # nothing in the cache, nothing beside it


def test_i5_every_path_made_of_a_name_checks_it() -> None:
    from fusion_perception.config_files import find_config
    from fusion_perception.fusion.base import method_label
    from fusion_perception.fusion.cache import fused_cache_root

    for bad in ("..", "a/b", "/abs"):
        with pytest.raises(ConfigError, match="cannot name a folder"):
            method_label(f"folder:{bad}=/x")
        with pytest.raises(ConfigError, match="cannot name a folder"):
            fused_cache_root(bad)
    assert method_label("folder:CDDFuse v2=/x") == "CDDFuse v2"
    assert find_config("det", "small_cpu") is not None
