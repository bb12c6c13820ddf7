"""DIDFuse, TarDAL and SeAFusion against their authors' own outputs on 7 real pairs
(``../shared/fixtures/learned_fusers``, made by the authors' code with the authors' weights in
``../shared/weights``): the raw luminance within 1e-4 of the authors' float output, and the PNGs the
fuse stage writes within 1 gray level of the authors' files, at most 1e-4 of the values differing
(``astype(uint8)`` truncation flips a value that lands within float rounding of an integer)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fusion_perception.data.image_io import read_image
from fusion_perception.fusion.base import build_fuser
from fusion_perception.fusion.stage import fuse_dataset

# pair -> the folder of ../shared/data holding it (RoadScene's are JPEGs, MSRS's PNGs)
PAIRS = {"FLIR_00211": "roadscene", "FLIR_00977": "roadscene", "FLIR_01130": "roadscene",
         "00008N": "msrs_det", "00012N": "msrs_det", "00055D": "msrs_det", "00081D": "msrs_det"}
# the authors' weights as the user passes them (DIDFuse: the folder of its two files), and their sha256
WEIGHTS = {"seafusion": "seafusion.pth", "tardal": "tardal.pt", "didfuse": "."}
SHA256 = {"seafusion": "8d65a7f9a50f36349803368cf9920f40420776995e7e8cc8a56d8d30e499431d",
          "tardal": "e0fa61e25cffa9fb14ff17b47ea7ba237a6e8c6f37e1b9b115d63354ff0f13e1",
          # the encoder's bytes then the decoder's
          "didfuse": "17f7636abb9e8531411c92fd495fa325bf8c12ea07965141f655c2b5da518f94"}
METHODS = tuple(WEIGHTS)


@pytest.fixture(scope="module")
def learned(shared_dir: Path) -> tuple[Path, Path]:
    """(the fixtures folder, the weights folder)."""
    fixtures, weights = shared_dir / "fixtures" / "learned_fusers", shared_dir / "weights"
    if not (fixtures / "README.md").is_file() or not (weights / "tardal.pt").is_file():
        pytest.skip(f"the learned fusers' fixtures or weights are not in {shared_dir}")
    return fixtures, weights


@pytest.fixture(scope="module")
def pairs_folder(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 7 pairs as one pair folder (``ir/``, ``vi/``) of links to the real files."""
    root = tmp_path_factory.mktemp("learned_pairs")
    for modality in ("ir", "vi"):
        (root / modality).mkdir()
        for name, folder in PAIRS.items():
            src = next((shared_data / folder / modality).glob(f"{name}.*"))
            (root / modality / src.name).symlink_to(src)
    return root


def _inputs(path_ir: Path, path_vi: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``u8 / 255`` tensors, as the stage gives them to a fuser."""
    ir, vi = read_image(path_ir), read_image(path_vi)
    return (torch.from_numpy(ir).float().div(255)[None, None],
            torch.from_numpy(vi).permute(2, 0, 1).float().div(255)[None])


@pytest.mark.parametrize("method", METHODS)
def test_raw_luminance_is_the_authors(method, learned, pairs_folder):
    fixtures, weights = learned
    fuser = build_fuser(method, "cpu", weights=str(weights / WEIGHTS[method]))
    cases = [(fuser, method, name) for name in PAIRS if (fixtures / method / f"{name}_y.npy").is_file()]
    if method == "didfuse":  # the authors' original fusion rule, 'Sum'
        cases.append((build_fuser(method, "cpu", weights=str(weights / "."), rule="sum"), "didfuse_sum", "FLIR_00977"))
    assert len(cases) >= 3
    for f, folder, name in cases:
        ir, vi = _inputs(*(next((pairs_folder / m).glob(f"{name}.*")) for m in ("ir", "vi")))
        with torch.no_grad():
            y = f.raw_output(ir, vi)[0][0, 0].numpy()
        authors = np.load(fixtures / folder / f"{name}_y.npy")
        assert y.shape == authors.shape and np.abs(y - authors).max() <= 1e-4, (folder, name)


@pytest.mark.parametrize("method", METHODS)
def test_the_fuse_stage_writes_the_authors_images(method, learned, pairs_folder, tmp_path):
    fixtures, weights = learned
    fused = fuse_dataset(pairs_folder, method, tmp_path / method, weights=str(weights / WEIGHTS[method]),
                         progress=False)
    manifest = json.loads((tmp_path / method / "manifest.json").read_text())
    assert manifest["fusion_weights_sha256"] == SHA256[method] and len(fused) == len(PAIRS)
    for name in PAIRS:
        ours = cv2.imread(str(tmp_path / method / "fused" / f"{name}.png"))
        authors = cv2.imread(str(fixtures / method / f"{name}.png"))
        assert ours.shape == authors.shape, name
        diff = np.abs(ours.astype(int) - authors.astype(int))
        assert diff.max() <= 1 and (diff > 0).sum() <= 1e-4 * diff.size, (name, diff.max(), (diff > 0).sum())
