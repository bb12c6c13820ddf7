"""Dataset readers: layouts, detection, validation and the bad-input messages."""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from fusion_perception.data.annotations import TARDAL_CLASSES, canonical_m3fd_class
from fusion_perception.data.readers import SkippedItemWarning, describe, detect_layout, load_dataset
from fusion_perception.data.records import M3FD_CLASSES, MSRS_CLASSES
from fusion_perception.data.image_io import read_image
from fusion_perception.data.validate import probe_image
from fusion_perception.errors import ConfigError, DatasetError, ImageReadError

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- tiny layouts
def write_img(path: Path, size=(32, 24), channels: int = 1, value: int | None = None,
              dtype=np.uint8) -> Path:
    w, h = size
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    top = 65535 if dtype == np.uint16 else 255
    shape = (h, w) if channels == 1 else (h, w, channels)
    img = np.full(shape, value, dtype) if value is not None else rng.integers(0, top, shape, dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)
    return path


def make_pairs(root: Path, names=("a", "b", "c"), dirs=("ir", "vi"), size=(32, 24),
               ext=".png") -> Path:
    for n in names:
        write_img(root / dirs[0] / f"{n}{ext}", size)
        write_img(root / dirs[1] / f"{n}{ext}", size, channels=3)
    return root


def voc_xml(objects, size=(32, 24)) -> str:
    objs = "".join(
        f"<object><name>{c}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin>"
        f"<ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for c, x1, y1, x2, y2 in objects)
    sz = "" if size is None else (f"<size><width>{size[0]}</width><height>{size[1]}</height>"
                                  "<depth>3</depth></size>")
    return f"<annotation><filename>x.png</filename>{sz}{objs}</annotation>"


def make_m3fd(root: Path, annotations: dict, size=(32, 24), xml_size=(32, 24)) -> Path:
    for n, objects in annotations.items():
        write_img(root / "Ir" / f"{n}.png", size, channels=3)  # IR stored as 3-channel gray
        write_img(root / "Vis" / f"{n}.png", size, channels=3)
        (root / "Annotation").mkdir(parents=True, exist_ok=True)
        (root / "Annotation" / f"{n}.xml").write_text(voc_xml(objects, xml_size))
    return root


def make_msrs(root: Path, splits=None, size=(32, 24)) -> Path:
    splits = splits or {"train": ["00001D", "00002N", "00003N"], "test": ["00004D"]}
    for split, names in splits.items():
        for n in names:
            write_img(root / split / "ir" / f"{n}.png", size)
            write_img(root / split / "vi" / f"{n}.png", size, channels=3)
            mask = np.zeros((size[1], size[0]), np.uint8)
            mask[:8, :8] = 2  # person
            mask[-4:, -4:] = 8  # bump
            (root / split / "Segmentation_labels").mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / split / "Segmentation_labels" / f"{n}.png"), mask)
    return root


def make_tardal(root: Path, size=(40, 20)) -> Path:
    for n in ("00001", "00002", "00003", "00004"):
        write_img(root / "ir" / f"{n}.png", size)
        write_img(root / "vi" / f"{n}.png", size, channels=3)
    (root / "labels").mkdir()
    (root / "labels" / "00001.txt").write_text("0 0.5 0.5 0.5 0.5\n3 0.25 0.25 0.1 0.2\n")
    (root / "labels" / "00002.txt").write_text("4 0.5 0.5 1.0 1.0\n")
    (root / "labels" / "00003.txt").write_text("")  # an image without objects
    (root / "labels" / "00004.txt").write_text("5 0.1 0.9 0.2 0.2\n")
    (root / "meta").mkdir()
    (root / "meta" / "train.txt").write_text("00001.png\n00002.png\n")
    (root / "meta" / "val.txt").write_text("00003.png\n")
    (root / "meta" / "pred.txt").write_text("00004.png\n")
    return root


def cut(path: Path, keep: int | None = None) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: keep if keep is not None else len(data) // 2])
    return path


# --------------------------------------------------------------------------- real samples
def test_roadscene_pairs_mixed_gray_colour_odd_sizes(shared_data: Path):
    ds = load_dataset(shared_data / "roadscene")
    assert ds.layout == "pairs" and ds.modalities == ("ir", "vi") and len(ds) == 50
    assert all(r.split is None and r.boxes is None and r.mask_path is None for r in ds.records)
    assert [r.name for r in ds.records] == sorted(r.name for r in ds.records)
    for r in ds.records:
        assert r.ir_path.parent.name == "ir" and r.vi_path.parent.name == "vi"
        assert r.ir_path.stem == r.vi_path.stem == r.name
    # header sizes agree with the decoded pixels; the sample mixes gray and colour files
    ir = [read_image(r.ir_path) for r in ds.records]
    vi = [read_image(r.vi_path) for r in ds.records]
    assert [r.size for r in ds.records] == [(a.shape[1], a.shape[0]) for a in ir]
    assert [(b.shape[1], b.shape[0]) for b in vi] == [r.size for r in ds.records]
    assert {a.ndim for a in ir} == {2} and {b.ndim for b in vi} == {3}
    assert any(w % 32 or h % 32 for w, h in (r.size for r in ds.records))
    assert len({r.size for r in ds.records}) > 10
    text = describe(ds)
    assert "layout: pairs" in text and "pairs: 50" in text and "skipped: none" in text


def test_medical_pairs_keep_a_sorted_modality_order(shared_data: Path):
    ds = load_dataset(shared_data / "harvard_mri_ct")
    assert ds.layout == "pairs" and len(ds) == 21
    assert ds.modalities == ("CT", "MRI")
    assert all(r.ir_path.parent.name == "CT" and r.vi_path.parent.name == "MRI"
               for r in ds.records)
    assert {r.size for r in ds.records} == {(256, 256)}
    assert "CT/ -> ir_path" in describe(ds)


def test_flir_and_m3fd_samples(shared_data: Path):
    flir = load_dataset(shared_data / "flir_demo")
    assert len(flir) == 3 and detect_layout(shared_data / "flir_demo") == "pairs"
    m3 = load_dataset(shared_data / "m3fd_sample")  # ir/ + vi/ without labels: a pair folder
    assert m3.layout == "pairs" and [r.name for r in m3.records] == ["M3FD_00471"]
    assert m3.records[0].size == (1024, 768) and m3.records[0].boxes is None


# --------------------------------------------------------------------------- synthetic layouts
def test_synthetic_m3fd(synthetic_root: Path):
    root = synthetic_root / "m3fd"
    assert detect_layout(root) == "m3fd"
    ds = load_dataset(root)
    assert ds.layout == "m3fd" and ds.classes == M3FD_CLASSES and len(ds) == 24
    n_objects = 0
    for r in ds.records:
        assert r.split is None and r.annotation_path.stem == r.name and r.boxes is not None
        xml = ET.parse(r.annotation_path).getroot()
        n_objects += len(xml.findall("object"))
        w, h = read_image(r.ir_path).shape[1::-1]
        assert r.size == (w, h)
        for b in r.boxes:
            assert b.label in M3FD_CLASSES and 0 <= b.x1 < b.x2 <= w and 0 <= b.y1 < b.y2 <= h
    n_boxes = sum(len(r.boxes) for r in ds.records)
    assert n_boxes == n_objects > 0
    text = describe(ds)
    assert f"boxes: {n_boxes} in 24 annotated pairs" in text and "per class: People" in text


def test_synthetic_msrs(synthetic_root: Path):
    root = synthetic_root / "msrs"
    assert detect_layout(root) == "msrs"
    ds = load_dataset(root)
    assert ds.layout == "msrs" and ds.classes == MSRS_CLASSES
    assert len(ds.split("train")) > len(ds.split("test")) > 0
    assert len(ds.split("train")) + len(ds.split("test")) == len(ds)
    for r in ds.records:
        assert r.mask_path is not None and r.mask_path.parent.name == "Segmentation_labels"
        assert r.mask_path.parent.parent.name == r.split
        assert r.condition == {"D": "day", "N": "night"}[r.name[-1]]
        assert int(read_image(r.mask_path).max()) < len(MSRS_CLASSES)
    text = describe(ds)
    assert "per split: train" in text and "conditions: day" in text and "masks:" in text
    # the root holding both synthetic sets is no single dataset: the error says where to point
    with pytest.raises(DatasetError, match=r"holds several datasets: .*m3fd/ \(m3fd\).*msrs/ \(msrs\)"):
        load_dataset(synthetic_root)


# --------------------------------------------------------------------------- layouts in tmp_path
def test_m3fd_class_spellings_and_box_clipping(tmp_path: Path):
    objects = [("person", 1, 1, 10, 10), (" Motorbike ", 2, 2, 5, 6), ("truck ", 0, 0, 32.5, 24),
               ("CAR", 3, 3, 9, 9), ("Street_Lamp", 4, 4, 6, 20), ("buses", 1, 2, 3, 4)]
    make_m3fd(tmp_path / "M3FD" / "M3FD_Detection", {"0001": objects, "0002": []})
    assert detect_layout(tmp_path / "M3FD") == "m3fd"  # one wrapper folder deep
    ds = load_dataset(tmp_path / "M3FD")
    assert ds.root.name == "M3FD_Detection" and ds.modalities == ("Ir", "Vis")
    boxes = ds.records[0].boxes
    assert [b.label for b in boxes] == ["People", "Motorcycle", "Truck", "Car", "Lamp", "Bus"]
    assert boxes[2].x2 == 32.0  # half a pixel over the edge: clipped, not rejected
    assert ds.records[1].boxes == []
    assert canonical_m3fd_class("Motor-cycle") == "Motorcycle"
    with pytest.raises(KeyError):
        canonical_m3fd_class("bicycle")


def test_tardal_layout(tmp_path: Path):
    root = make_tardal(tmp_path / "tardal")
    write_img(root / "ir" / "00005.png", (40, 20))  # not in any meta list: split None
    write_img(root / "vi" / "00005.png", (40, 20), channels=3)
    (root / "labels" / "00005.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    assert detect_layout(root) == "m3fd_tardal"
    ds = load_dataset(root)
    by = {r.name: r for r in ds.records}
    assert [by[n].split for n in sorted(by)] == ["train", "train", "val", "test", None]
    b = by["00001"].boxes
    assert b[0].label == "People" and (b[0].x1, b[0].y1, b[0].x2, b[0].y2) == (10, 5, 30, 15)
    assert b[1].label == TARDAL_CLASSES[3] == "Lamp"  # TarDAL numbers Lamp before Motorcycle
    assert by["00002"].boxes[0].label == "Motorcycle"
    assert (by["00002"].boxes[0].x2, by["00002"].boxes[0].y2) == (40, 20)
    assert by["00003"].boxes == [] and by["00004"].boxes[0].label == "Truck"
    assert "per split: train 2, val 1, test 1, (no split) 1" in describe(ds)


def test_pair_folder_names_extensions_and_override(tmp_path: Path):
    root = tmp_path / "p"
    write_img(root / "color" / "x.JPG", (30, 20), channels=3)
    write_img(root / "thermal" / "x.tif", (30, 20), dtype=np.uint16)  # 16-bit thermal
    write_img(root / "color" / "y.png", (30, 20), channels=3)
    write_img(root / "thermal" / "y.PNG", (30, 20))
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not images")
    ds = load_dataset(root)
    assert ds.modalities == ("thermal", "color")  # infrared-like first, not alphabetical
    assert [(r.name, r.ir_path.name, r.vi_path.name) for r in ds.records] == [
        ("x", "x.tif", "x.JPG"), ("y", "y.PNG", "y.png")]
    # an explicit layout wins over detection: a TarDAL folder read as plain pairs
    tardal = make_tardal(tmp_path / "t")
    ds = load_dataset(tardal, layout="pairs")
    assert ds.layout == "pairs" and all(r.boxes is None and r.split is None for r in ds.records)
    with pytest.raises(ConfigError, match="unknown layout 'coco'"):
        load_dataset(tardal, layout="coco")


def test_msrs_without_label_folder_reads_pairs_only(tmp_path: Path):
    root = tmp_path / "msrs"
    make_pairs(root / "train", names=("00001D", "00002N"))
    ds = load_dataset(root)
    assert ds.layout == "msrs" and all(r.mask_path is None for r in ds.records)
    assert "masks: none" in describe(ds)


# --------------------------------------------------------------------------- bad input
def test_missing_partner(tmp_path: Path):
    root = make_pairs(tmp_path / "d")
    write_img(root / "ir" / "lonely.png")
    with pytest.raises(DatasetError, match=r"ir/lonely\.png: has no partner image: no lonely\.<image> in .*/d/vi"):
        load_dataset(root)


def test_size_mismatch(tmp_path: Path):
    root = make_pairs(tmp_path / "d")
    write_img(root / "vi" / "b.png", (30, 24), channels=3)
    with pytest.raises(DatasetError, match=r"size mismatch: .*ir/b\.png is 32x24 but .*vi/b\.png is 30x24"):
        load_dataset(root)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp"])
def test_truncated_file(tmp_path: Path, ext: str):
    root = make_pairs(tmp_path / "d", ext=ext)
    cut(root / "vi" / f"c{ext}")
    with pytest.raises(ImageReadError, match=rf"vi/c\{ext}: file is truncated"):
        load_dataset(root)


def test_truncated_tiff_with_header_first(tmp_path: Path):
    from PIL import Image

    path = tmp_path / "ir16.tif"
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64)).save(path)
    assert probe_image(path) == (64, 48)
    cut(path, path.stat().st_size - 100)
    with pytest.raises(ImageReadError, match="ir16.tif: .*truncated|ir16.tif: cannot be decoded"):
        probe_image(path)


@pytest.mark.parametrize("content, problem", [(b"", "file is empty"),
                                              (b"this is not an image" * 10, "cannot be decoded")])
def test_unreadable_file(tmp_path: Path, content: bytes, problem: str):
    root = make_pairs(tmp_path / "d")
    (root / "ir" / "a.png").write_bytes(content)
    with pytest.raises(ImageReadError, match=rf"ir/a\.png: {problem}"):
        load_dataset(root)


def test_unknown_class_in_xml(tmp_path: Path):
    root = make_m3fd(tmp_path / "m", {"1": [("Car", 1, 1, 5, 5)], "2": [("Bicycle", 1, 1, 5, 5)]})
    with pytest.raises(DatasetError, match=r"Annotation/2\.xml: object #1: unknown class 'Bicycle'"):
        load_dataset(root)


@pytest.mark.parametrize("box, problem", [((20, 5, 34, 10), "lies outside the 32x24 image"),
                                          ((-3, 5, 10, 10), "lies outside the 32x24 image"),
                                          ((10, 5, 10, 10), "is empty or inverted"),
                                          ((12, 5, 10, 10), "is empty or inverted")])
def test_bad_box_in_xml(tmp_path: Path, box, problem: str):
    root = make_m3fd(tmp_path / "m", {"1": [("People", 1, 1, 5, 5), ("Car", *box)]})
    with pytest.raises(DatasetError, match=rf"Annotation/1\.xml: object #2: box Car .* {problem}"):
        load_dataset(root)


def test_box_checked_against_image_size_when_xml_has_none(tmp_path: Path):
    root = make_m3fd(tmp_path / "m", {"1": [("Car", 20, 5, 40, 10)]}, size=(64, 24), xml_size=None)
    assert load_dataset(root).records[0].boxes[0].x2 == 40
    root = make_m3fd(tmp_path / "n", {"1": [("Car", 20, 5, 40, 10)]}, xml_size=None)
    with pytest.raises(DatasetError, match=r"1\.xml: object #1: box Car .* outside the 32x24"):
        load_dataset(root)


def test_xml_size_differs_from_image(tmp_path: Path):
    root = make_m3fd(tmp_path / "m", {"1": []}, size=(32, 24), xml_size=(64, 48))
    with pytest.raises(DatasetError, match=r"1\.xml: <size> says 64x48 but the image is 32x24"):
        load_dataset(root)


def test_missing_and_orphan_annotation(tmp_path: Path):
    root = make_m3fd(tmp_path / "m", {"1": [], "2": []})
    (root / "Annotation" / "2.xml").unlink()
    with pytest.raises(DatasetError, match=r"Annotation/2\.xml: VOC annotation missing for the pair 2"):
        load_dataset(root)
    (root / "Annotation" / "2.xml").write_text(voc_xml([]))
    (root / "Annotation" / "9.xml").write_text(voc_xml([]))
    with pytest.raises(DatasetError, match=r"9\.xml: VOC annotation without an image pair"):
        load_dataset(root)


def test_bad_yolo_labels_and_meta(tmp_path: Path):
    root = make_tardal(tmp_path / "t")
    (root / "labels" / "00002.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"labels/00002\.txt: line 1: class id 7 out of range 0\.\.5"):
        load_dataset(root)
    (root / "labels" / "00002.txt").write_text("0 0.9 0.5 0.4 0.1\n")
    with pytest.raises(DatasetError, match=r"00002\.txt: line 1: box People .* outside the 40x20"):
        load_dataset(root)
    (root / "labels" / "00002.txt").write_text("0 0.5 0.5 0.4\n")
    with pytest.raises(DatasetError, match=r"00002\.txt: line 1: expected 5 numbers"):
        load_dataset(root)
    (root / "labels" / "00002.txt").write_text("")
    (root / "meta" / "val.txt").write_text("00003.png\n00001.png\n")
    with pytest.raises(DatasetError, match=r"meta/val\.txt: line 2: '00001\.png' is also listed in train\.txt"):
        load_dataset(root)
    (root / "meta" / "val.txt").write_text("00003.png\nghost.png\n")
    with pytest.raises(DatasetError, match=r"meta/val\.txt: line 2 lists 'ghost\.png' but ir/ and vi/ hold no"):
        load_dataset(root)


def test_mask_ids_out_of_range(tmp_path: Path):
    root = make_msrs(tmp_path / "msrs")
    mask = np.zeros((24, 32), np.uint8)
    mask[0, :3] = (9, 12, 255)
    cv2.imwrite(str(root / "test" / "Segmentation_labels" / "00004D.png"), mask)
    with pytest.raises(DatasetError, match=r"test/Segmentation_labels/00004D\.png: mask holds class ids "
                                           r"out of range 0\.\.8: 9, 12, 255"):
        load_dataset(root)


def test_mask_size_mismatch_and_colour_mask(tmp_path: Path):
    root = make_msrs(tmp_path / "msrs")
    cv2.imwrite(str(root / "train" / "Segmentation_labels" / "00002N.png"), np.zeros((12, 16), np.uint8))
    with pytest.raises(DatasetError, match=r"00002N\.png: mask size 16x12 differs from the image size 32x24"):
        load_dataset(root)
    colour = np.zeros((24, 32, 3), np.uint8)
    colour[..., 2] = 7
    cv2.imwrite(str(root / "train" / "Segmentation_labels" / "00002N.png"), colour)
    with pytest.raises(DatasetError, match=r"00002N\.png: mask is a colour image"):
        load_dataset(root)


def test_missing_mask(tmp_path: Path):
    root = make_msrs(tmp_path / "msrs")
    (root / "train" / "Segmentation_labels" / "00003N.png").unlink()
    with pytest.raises(DatasetError, match=r"train/Segmentation_labels/00003N\.png: segmentation mask "
                                           r"missing for the pair 00003N \(expected this file\)"):
        load_dataset(root)


def test_empty_folder_and_missing_folder(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: the folder is empty; looked for MSRS .*M3FD .*TarDAL"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match=r"nowhere: dataset folder not found"):
        detect_layout(tmp_path / "nowhere")


def test_wrong_layout(tmp_path: Path):
    root = make_pairs(tmp_path / "pairs")
    with pytest.raises(DatasetError, match=r"pairs: this is not a 'msrs' layout folder \(found "
                                           r"sub-folders ir/, vi/\); looked for train/"):
        load_dataset(root, layout="msrs")
    with pytest.raises(DatasetError, match=r"not a 'm3fd' layout folder .*looked for Ir/ and Vis/"):
        load_dataset(root / "ir", layout="m3fd")
    # auto: a folder of images (not of image folders) and one with three unrelated folders
    with pytest.raises(DatasetError, match=r"ir: no dataset layout recognised \(found 3 file\(s\)\); "
                                           r"looked for MSRS"):
        load_dataset(root / "ir")
    make_pairs(tmp_path / "three", dirs=("a", "b"))
    make_pairs(tmp_path / "three", dirs=("c", "b"))
    with pytest.raises(DatasetError, match=r"no dataset layout recognised \(found sub-folders a/, b/, c/\)"):
        detect_layout(tmp_path / "three")


def test_duplicate_stems(tmp_path: Path):
    root = make_pairs(tmp_path / "d")
    write_img(root / "vi" / "a.jpg", channels=3)
    with pytest.raises(DatasetError, match=r"vi/a\.png: has the same name as a\.jpg"):
        load_dataset(root)


def test_skip_bad_reports_everything(tmp_path: Path):
    root = make_msrs(tmp_path / "msrs", {"train": [f"{i:05d}D" for i in range(6)], "test": ["00009N"]})
    tr = root / "train"
    write_img(tr / "ir" / "09999N.png")  # no partner, no mask
    cut(tr / "vi" / "00001D.png")  # truncated
    write_img(tr / "vi" / "00002D.png", (16, 24), channels=3)  # size mismatch
    (tr / "Segmentation_labels" / "00003D.png").unlink()  # missing mask
    cv2.imwrite(str(tr / "Segmentation_labels" / "00004D.png"), np.full((24, 32), 11, np.uint8))
    with pytest.warns(SkippedItemWarning) as caught:
        ds = load_dataset(root, skip_bad=True)
    assert sorted(r.name for r in ds.records) == ["00000D", "00005D", "00009N"]
    skipped = {s.path.name: s.problem for s in ds.skipped}
    assert set(skipped) == {"09999N.png", "00001D.png", "00002D.png", "00003D.png", "00004D.png"}
    assert "no partner" in skipped["09999N.png"] and "truncated" in skipped["00001D.png"]
    assert "size mismatch" in skipped["00002D.png"] and "missing" in skipped["00003D.png"]
    assert "out of range 0..8: 11" in skipped["00004D.png"]
    assert len(caught) == 5 and all("skipped" in str(w.message) for w in caught), [str(w.message) for w in caught]
    text = describe(ds)
    assert "skipped: 5 bad item(s)" in text
    assert all(str(s.path) in text for s in ds.skipped)
    # without skip_bad the first problem (in listing order) raises
    with pytest.raises(DatasetError, match="09999N"):
        load_dataset(root)


def test_skip_bad_with_nothing_left_still_fails(tmp_path: Path):
    root = make_pairs(tmp_path / "d", names=("a",))
    cut(root / "ir" / "a.png")
    with pytest.warns(SkippedItemWarning), pytest.raises(DatasetError, match="no usable pairs"):
        load_dataset(root, skip_bad=True)


# --------------------------------------------------------------------------- command line
def _cli():
    spec = importlib.util.spec_from_file_location("describe_dataset", REPO / "tools" / "describe_dataset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def test_describe_cli(tmp_path: Path, capsys: pytest.CaptureFixture):
    main = _cli()
    root = make_m3fd(tmp_path / "m", {"1": [("people", 1, 1, 5, 5)], "2": [("Car", 1, 1, 9, 9)]})
    assert main(["--data", str(root)]) == 0
    out = capsys.readouterr().out
    assert "layout: m3fd" in out and "per class: People 1, Car 1, Bus 0" in out
    (root / "Annotation" / "2.xml").write_text(voc_xml([("Tractor", 1, 1, 5, 5)]))
    assert main(["--data", str(root)]) == 2
    assert "2.xml: object #1: unknown class 'Tractor'" in capsys.readouterr().err
    assert main(["--data", str(root), "--layout", "m3fd", "--skip-bad"]) == 0
    out, err = capsys.readouterr()
    assert "skipped: 1 bad item(s)" in out and "pairs: 1" in out
    assert "warning: skipped" in err and "unknown class 'Tractor'" in err
    (root / "Ir" / "1.png").unlink()
    (root / "Ir" / "2.png").unlink()
    assert main(["--data", str(root), "--skip-bad"]) == 2  # nothing usable left
    assert "error: " in capsys.readouterr().err


@pytest.mark.parametrize("folders", [("Ir", "Vis", "Annotations"), ("ir", "vi", "annotation"),
                                     ("IR", "VIS", "ANNOTATIONS")])
def test_m3fd_alternative_folder_names_load_their_boxes(tmp_path: Path, folders):
    """Pinned (issue 24): Annotations/ (plural), any case, and vi/ beside an annotation folder are the
    M3FD layout, and every box is read (a folder name missed would leave the pairs without labels)."""
    root = make_m3fd(tmp_path / "m", {"1": [("People", 1, 1, 5, 5), ("Car", 10, 5, 20, 12)], "2": [("Bus", 2, 2, 30, 20)]})
    for old, new in zip(("Ir", "Vis", "Annotation"), folders):
        (root / old).rename(root / f"{new}.tmp")
        (root / f"{new}.tmp").rename(root / new)
    ds = load_dataset(root)
    assert ds.layout == "m3fd" and len(ds.records) == 2
    boxes = {r.name: [(b.label, b.x1, b.y1, b.x2, b.y2) for b in r.boxes] for r in ds.records}
    assert boxes == {"1": [("People", 1, 1, 5, 5), ("Car", 10, 5, 20, 12)], "2": [("Bus", 2, 2, 30, 20)]}
