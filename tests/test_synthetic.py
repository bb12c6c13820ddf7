"""Synthetic multi-modal scene generator: determinism, layouts, the modality visibility property, CLI."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_perception.synthetic import dataset as synthetic
from fusion_perception.data.records import M3FD_CLASSES, MSRS_CLASSES
from fusion_perception.synthetic.objects import LOW_VISIBILITY
from fusion_perception.synthetic.dataset import ensure_default, generate
from fusion_perception.errors import ConfigError, OutputError

REPO = Path(__file__).resolve().parents[1]
SMALL = (160, 128)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _images(files: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in files.items() if k.endswith(".png")}


# ----------------------------------------------------------------------------- determinism
def test_same_seed_same_bytes_and_prefix(tmp_path: Path) -> None:
    a = _files(Path(generate(tmp_path / "a", "both", count=5, size=SMALL, seed=3)["m3fd"]).parent)
    b = _files(Path(generate(tmp_path / "b", "both", count=5, size=SMALL, seed=3)["m3fd"]).parent)
    assert a == b and len(a) > 30
    # Per-image seeds: a smaller count is a byte-identical prefix of a larger one.
    c = _images(_files(generate(tmp_path / "c", "det", count=3, size=SMALL, seed=3)["m3fd"]))
    assert len(c) == 6 and all(a[f"m3fd/{k}"] == v for k, v in c.items())
    d = _images(_files(Path(generate(tmp_path / "d", "both", count=5, size=SMALL, seed=4)["m3fd"]).parent))
    same = [k for k, v in d.items() if a.get(k) == v]
    assert not same, f"seed 4 repeated seed 3's images: {same}"


def test_regenerate_replaces_atomically(tmp_path: Path) -> None:
    generate(tmp_path, "det", count=4, size=SMALL, seed=0)
    with pytest.raises(OutputError, match=r"count 4 → 2.*--overwrite"):  # never replaced unasked
        generate(tmp_path, "det", count=2, size=SMALL, seed=0)
    assert len(list((tmp_path / "m3fd" / "Ir").iterdir())) == 4
    out = generate(tmp_path, "det", count=2, size=SMALL, seed=0, overwrite=True)["m3fd"]
    assert len(list((out / "Ir").iterdir())) == 2  # old set replaced, not merged
    assert [p.name for p in tmp_path.iterdir()] == ["m3fd"]  # no temp folders left behind
    assert out.stat().st_mode & 0o055 == 0o055  # readable by others like any written folder


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="task"):
        generate("unused", task="detection")
    with pytest.raises(ConfigError, match="count"):
        generate("unused", count=0)
    with pytest.raises(ConfigError, match="size"):
        generate("unused", size=(10, 10))


# ----------------------------------------------------------------------------- layouts
def test_m3fd_layout(synthetic_root: Path) -> None:
    root = synthetic_root / "m3fd"
    names = sorted(p.stem for p in (root / "Ir").glob("*.png"))
    assert names == sorted(p.stem for p in (root / "Vis").glob("*.png")) == \
        sorted(p.stem for p in (root / "Annotation").glob("*.xml")) and len(names) == 24
    classes, times = set(), set()
    for n in names:
        ir = cv2.imread(str(root / "Ir" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
        vi = cv2.imread(str(root / "Vis" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
        assert ir.shape == vi.shape == (SMALL[1], SMALL[0], 3)
        assert np.array_equal(ir[..., 0], ir[..., 1]) and np.array_equal(ir[..., 1], ir[..., 2])  # gray as 3 channels
        xml = ET.parse(root / "Annotation" / f"{n}.xml").getroot()
        assert xml.findtext("filename") == f"{n}.png"
        assert (int(xml.findtext("size/width")), int(xml.findtext("size/height")), int(xml.findtext("size/depth"))) \
            == (SMALL[0], SMALL[1], 3)
        times.add(xml.findtext("time"))
        for obj in xml.iter("object"):
            classes.add(obj.findtext("name"))
            x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            assert 0 <= x1 < x2 <= SMALL[0] and 0 <= y1 < y2 <= SMALL[1]
            assert 0.0 <= float(obj.findtext("visibility/ir")) <= 1.0
            assert 0.0 <= float(obj.findtext("visibility/vi")) <= 1.0
            assert obj.findtext("thermal") in ("warm", "cold")
    assert classes == set(M3FD_CLASSES) and times == {"day", "night"}


def test_msrs_layout(synthetic_root: Path) -> None:
    root = synthetic_root / "msrs"
    counts = {}
    for split in ("train", "test"):
        names = sorted(p.stem for p in (root / split / "ir").glob("*.png"))
        counts[split] = len(names)
        side = json.loads((root / split / "synthetic_objects.json").read_text())
        assert sorted(side) == names
        for n in names:
            assert n[-1] in "DN" and side[n]["time"] == ("day" if n[-1] == "D" else "night")
            ir = cv2.imread(str(root / split / "ir" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
            vi = cv2.imread(str(root / split / "vi" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
            lab = cv2.imread(str(root / split / "Segmentation_labels" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
            assert ir.shape == lab.shape == (SMALL[1], SMALL[0]) and vi.shape == (SMALL[1], SMALL[0], 3)
            assert lab.dtype == np.uint8 and lab.max() < len(MSRS_CLASSES)
            # The mask paints exactly the classes of the recorded objects (occlusion may hide one).
            assert set(np.unique(lab)) - {0} <= {o["class_id"] for o in side[n]["objects"]}
            for o in side[n]["objects"]:
                assert MSRS_CLASSES[o["class_id"]] == o["class"]
    assert counts == {"train": 18, "test": 6}  # 3:1


def test_readers_load_both_layouts(synthetic_root: Path) -> None:
    from fusion_perception.data import readers

    det = readers.load_dataset(synthetic_root / "m3fd")
    assert det.layout == "m3fd" and len(det) == 24
    assert {b.label for r in det.records for b in r.boxes} == set(M3FD_CLASSES)
    seg = readers.load_dataset(synthetic_root / "msrs")
    assert seg.layout == "msrs" and len(seg.split("train")) == 18 and len(seg.split("test")) == 6
    assert {r.condition for r in seg.records} == {"day", "night"}


# ----------------------------------------------------------------------------- fusion matters
def _contrast(img: np.ndarray, obj: np.ndarray, ring: np.ndarray) -> float:
    return abs(float(img[obj].mean()) - float(img[ring].mean()))


def _ring(box_mask: np.ndarray, free: np.ndarray, k: int = 5) -> np.ndarray:
    return cv2.dilate(box_mask.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(bool) & free


def test_msrs_warm_objects_show_in_ir_cold_in_vi(synthetic_root: Path) -> None:
    """Measured from the images with the masks: warm-at-night vs cold objects, IR vs VI contrast."""
    root = synthetic_root / "msrs"
    got: dict[str, list[tuple[float, float]]] = {"warm_night": [], "cold": []}
    for split in ("train", "test"):
        side = json.loads((root / split / "synthetic_objects.json").read_text())
        for n, entry in side.items():
            ir = cv2.imread(str(root / split / "ir" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
            y = cv2.imread(str(root / split / "vi" / f"{n}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
            lab = cv2.imread(str(root / split / "Segmentation_labels" / f"{n}.png"), cv2.IMREAD_UNCHANGED)
            for o in entry["objects"]:
                x1, y1, x2, y2 = o["bbox"]
                box = np.zeros(lab.shape, bool)
                box[y1:y2, x1:x2] = True
                obj, ring = box & (lab == o["class_id"]), _ring(box, lab == 0)
                if obj.sum() < 4 or ring.sum() < 4:
                    continue
                key = "cold" if o["thermal"] == "cold" else "warm_night" if entry["time"] == "night" else None
                if key:
                    got[key].append((_contrast(ir, obj, ring), _contrast(y, obj, ring)))
    warm, cold = np.array(got["warm_night"]), np.array(got["cold"])
    assert len(warm) >= 8 and len(cold) >= 8
    assert np.median(warm[:, 0]) > 3 * np.median(warm[:, 1]), "warm objects at night must be IR-visible, VI-dark"
    assert np.median(cold[:, 1]) > 3 * np.median(cold[:, 0]), "cold objects must be VI-visible, IR-flat"


def test_m3fd_recorded_visibility(synthetic_root: Path) -> None:
    """Issue 2's acceptance, plus: the recorded values agree with the images and both groups exist."""
    root = synthetic_root / "m3fd"
    rows = []  # (night, warm, vis_ir, vis_vi, measured_ir, measured_vi)
    for xml_path in sorted((root / "Annotation").glob("*.xml")):
        xml = ET.parse(xml_path).getroot()
        ir = cv2.imread(str(root / "Ir" / f"{xml_path.stem}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
        y = cv2.imread(str(root / "Vis" / f"{xml_path.stem}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
        for obj in xml.iter("object"):
            x1, y1, x2, y2 = (int(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax"))
            box = np.zeros(ir.shape, bool)
            box[y1:y2, x1:x2] = True
            ring = _ring(box, ~box, k=3)
            rows.append((xml.findtext("time") == "night", obj.findtext("thermal") == "warm",
                         float(obj.findtext("visibility/ir")), float(obj.findtext("visibility/vi")),
                         _contrast(ir, box, ring), _contrast(y, box, ring)))
    r = np.array(rows)
    night, warm = r[:, 0] == 1, r[:, 1] == 1
    low_ir, low_vi = r[:, 2] < LOW_VISIBILITY, r[:, 3] < LOW_VISIBILITY
    assert low_vi[night & warm].mean() >= 1 / 3
    assert low_ir[night & ~warm].mean() >= 1 / 3
    # Each modality alone misses objects the other shows, by day and by night.
    for when in (night, ~night):
        assert (~low_ir & low_vi)[when].mean() >= 0.12, "too few IR-only objects"
        assert (low_ir & ~low_vi)[when].mean() >= 0.12, "too few VI-only objects"
    # Recorded visibility tracks the box contrast measured here.
    assert np.median(r[~low_ir, 4]) > 2 * np.median(r[low_ir, 4])
    assert np.median(r[~low_vi, 5]) > 2 * np.median(r[low_vi, 5])


def test_held_out_scenes_leave_the_first_count_as_they_are(tmp_path: Path) -> None:
    base = _images(_files(Path(generate(tmp_path / "a", "both", count=8, size=SMALL, seed=0)["m3fd"]).parent))
    more = _images(_files(Path(generate(tmp_path / "b", "both", count=8, size=SMALL, seed=0, held_out=4)["m3fd"]).parent))
    assert all(more[k] == v for k, v in base.items())  # training scenes untouched
    extra = sorted(set(more) - set(base))
    assert [k for k in extra if k.startswith("m3fd/Ir/")] == [f"m3fd/Ir/{i:05d}.png" for i in range(8, 12)]
    assert {k.split("/")[1] for k in extra if k.startswith("msrs/")} == {"test"}  # MSRS: test split only
    assert len([k for k in extra if k.startswith("msrs/test/ir/")]) == 4
    with pytest.raises(OutputError, match=r"held_out 4 → 0"):  # never taken for the plain set
        generate(tmp_path / "b", "det", count=8, size=SMALL, seed=0)


def test_demo_data_tests_on_more_images_and_trains_on_the_defaults(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from fusion_perception.comparison import demo
    from fusion_perception.detection.data import make_split, read_split

    monkeypatch.setattr(synthetic, "DEFAULT_COUNT", 20)
    monkeypatch.setattr(synthetic, "DEFAULT_SIZE", SMALL)
    monkeypatch.setattr(demo, "DEMO_HELD_OUT", 6)
    data = demo.demo_data(tmp_path / "out", seeds=(0, 1))
    for seed in (0, 1):
        split = read_split(tmp_path / "out" / "det" / "splits" / f"seed{seed}")
        default = make_split([f"{i:05d}" for i in range(20)], seed)  # what train_det.py makes of the default
        assert split["train"] == default["train"] and split["val"] == default["val"]
        assert split["test"] == sorted(default["test"] + [f"{i:05d}" for i in range(20, 26)])
    assert len(list((data["seg"] / "train" / "ir").iterdir())) == 15
    assert len(list((data["seg"] / "test" / "ir").iterdir())) == 5 + 6


# ----------------------------------------------------------------------------- default set and CLI
def test_ensure_default_generates_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_PERCEPTION_DATA", str(tmp_path / "default"))
    monkeypatch.setattr(synthetic, "DEFAULT_COUNT", 2)
    monkeypatch.setattr(synthetic, "DEFAULT_SIZE", SMALL)
    assert synthetic.default_root() == (tmp_path / "default").resolve()
    root = ensure_default("det")
    assert root == synthetic.default_root() and sorted(p.name for p in root.iterdir()) == ["m3fd"]
    before = _files(root)
    calls = []
    real = synthetic.generate
    monkeypatch.setattr(synthetic, "generate", lambda *a, **k: calls.append(k["task"]) or real(*a, **k))
    assert ensure_default("both") == root and calls == ["seg"]  # det reused, seg added
    assert _files(root / "m3fd") == {k[len("m3fd/"):]: v for k, v in before.items()}
    monkeypatch.setattr(synthetic, "GENERATOR_VERSION", synthetic.GENERATOR_VERSION + 1)
    ensure_default("det")  # an older generator's set is regenerated
    assert calls == ["seg", "det"]


def test_default_root_without_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FUSION_PERCEPTION_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert synthetic.default_root() == (tmp_path / "data" / "synthetic").resolve()


def _cli():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import make_synthetic
    finally:
        sys.path.pop(0)
    return make_synthetic


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # In-process (a subprocess would spend seconds importing torch for nothing new).
    assert _cli().main(["--out", str(tmp_path), "--count", "4", "--size", "160x128", "--task", "seg",
                        "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "train: 3 pairs" in out and "test: 1 pairs" in out and "day/night" in out and "visible" in out
    assert "wrote 4 pairs per task" in out
    assert len(list((tmp_path / "msrs" / "train" / "ir").glob("*.png"))) == 3 and not (tmp_path / "m3fd").exists()


def test_cli_help_and_bad_size(capsys: pytest.CaptureFixture) -> None:
    cli = _cli()
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "Segmentation_labels" in out and "Annotation" in out and "--seed" in out
    with pytest.raises(SystemExit) as e:
        cli.main(["--out", "x", "--size", "320by256"])
    assert e.value.code == 2 and "320x256" in capsys.readouterr().err
