"""Folder scanning the dataset layouts share: sub-folders by name, modality words, pairing two
image folders by file stem (every file without its partner becomes a reported problem), split
lists, and the capture condition a name says."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Callable

from fusion_perception.data.layouts.base import PairCandidate, PairListing
from fusion_perception.files import IMAGE_EXTENSIONS, is_image_file
from fusion_perception.errors import DatasetError

# Folder names that say "this is the infrared / the visible modality" (first word, lower case).
IR_WORDS = frozenset(("ir", "infrared", "thermal", "lwir", "inf"))
VI_WORDS = frozenset(("vi", "vis", "visible", "rgb", "color", "colour", "optical"))
SPLITS: tuple[str, ...] = ("train", "val", "test")
SPLIT_LISTS: tuple[tuple[str, str], ...] = (("train.txt", "train"), ("val.txt", "val"), ("test.txt", "test"))


def subdirs(folder: Path) -> dict[str, Path]:
    """Non-hidden sub-folders keyed by lower-case name (layout folder names vary in case)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() and not p.name.startswith("."):
            out.setdefault(p.name.lower(), p)
    return out


def has_images(folder: Path) -> bool:
    return any(is_image_file(p) and not p.name.startswith(".") for p in folder.iterdir())


def no_images(*folders: Path) -> str:
    """``"hold no images"``, and what they hold instead when it is image files of a format the
    readers do not take (``"hold no images (4 .gif, 2 .webp: formats not read here; ...)"``)."""
    return f"{'hold' if len(folders) > 1 else 'holds'} no images{other_formats(*folders)}"


def other_formats(*folders: Path) -> str:
    """``" (4 .gif, 2 .webp: formats not read here; read here: .png, ...)"`` for the image files of
    formats the readers do not take in ``folders``; ``""`` when there are none."""
    other = Counter(p.suffix.lower() for d in folders if d.is_dir() for p in d.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in _OTHER_IMAGE_FORMATS)
    if not other:
        return ""
    held = ", ".join(f"{n} {ext}" for ext, n in other.most_common())
    return f" ({held}: formats not read here; read here: {', '.join(IMAGE_EXTENSIONS)})"


# Image formats people keep datasets in that the readers do not take (named when a folder holds only them).
_OTHER_IMAGE_FORMATS = frozenset((".gif", ".webp", ".jp2", ".j2k", ".heic", ".heif", ".avif", ".pgm", ".ppm",
                                  ".pnm", ".pbm", ".exr", ".hdr", ".raw", ".dng", ".ico", ".jfif", ".jxl"))


def image_dirs(folder: Path) -> list[Path]:
    return [p for p in subdirs(folder).values() if has_images(p)]


def first_word(name: str) -> str:
    return re.split(r"[^a-z0-9]+", name.lower())[0]


def modality_order(p: Path) -> tuple[int, str]:
    """Sort key: infrared-like folders first, visible-like last, others by name between."""
    word = first_word(p.name)
    return (0 if word in IR_WORDS else 2 if word in VI_WORDS else 1), p.name


def split_dirs(root: Path) -> dict[str, Path]:
    subs = subdirs(root)
    return {s: subs[s] for s in SPLITS if s in subs}


def files_by_stem(folder: Path, problems: list[DatasetError],
                  keep: Callable[[Path], bool] = is_image_file) -> dict[str, Path]:
    """The folder's files that ``keep`` accepts, by stem; a second file with one stem is a problem."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        # a broken symbolic link stays in: its pair then fails validation naming the link
        if not (p.is_file() or p.is_symlink()) or p.name.startswith(".") or not keep(p):
            continue
        if p.stem in out:
            problems.append(DatasetError(p, f"has the same name as {out[p.stem].name}; "
                                            "each pair needs exactly one file per name"))
            continue
        out[p.stem] = p
    return out


def pair_candidates(ir_dir: Path, vi_dir: Path, problems: list[DatasetError],
                    split: str | None = None) -> list[PairCandidate]:
    """Match the two folders' images by stem; every unmatched file becomes a problem."""
    ir, vi = files_by_stem(ir_dir, problems), files_by_stem(vi_dir, problems)
    candidates = []
    for stem in sorted(ir.keys() | vi.keys()):
        if stem in ir and stem in vi:
            candidates.append(PairCandidate(stem, ir[stem], vi[stem], split))
        else:
            have, other = (ir[stem], vi_dir) if stem in ir else (vi[stem], ir_dir)
            problems.append(DatasetError(have, f"has no partner image: no {stem}.<image> in {other}"))
    return candidates


def attach_files(candidates: list[PairCandidate], folder: Path, problems: list[DatasetError], what: str,
                 keep: Callable[[Path], bool], ext: str, attr: str | Callable[[PairCandidate, Path], None],
                 partner_dirs: str) -> list[PairCandidate]:
    """Attach one file per pair from ``folder`` (annotations, masks) as attribute ``attr`` (or by
    calling ``attr(pair, file)``); a pair without its file and a file without its pair are
    problems. Returns the pairs that got one."""
    files = files_by_stem(folder, problems, keep)
    kept = []
    for c in candidates:
        f = files.pop(c.name, None)
        if f is None:
            problems.append(DatasetError(folder / f"{c.name}{ext}",
                                         f"{what} missing for the pair {c.name} "
                                         "(expected this file)"))
            continue
        if callable(attr):
            attr(c, f)
        else:
            setattr(c, attr, f)
        kept.append(c)
    names = {c.name for c in candidates}
    for stem, f in files.items():
        if stem not in names:
            problems.append(DatasetError(f, f"{what} without an image pair in {partner_dirs}"))
    return kept


def condition_from_name(name: str) -> str | None:
    """``"day"`` / ``"night"`` for an MSRS-style name ending in ``D`` / ``N``, else None."""
    return {"D": "day", "N": "night"}.get(name[-1:])


def read_split_lists(folder: Path, listing: PairListing, known: set[str], image_dirs: str,
                     lists: tuple[tuple[str, str], ...] = SPLIT_LISTS) -> set[str]:
    """Set each candidate's split from the name lists in ``folder`` (``lists``: file name, split);
    returns the names listed in two splits (their pairs are left out, each reported once as a
    problem). A listed name not in ``known`` is a problem."""
    by_name: dict[str, PairCandidate] = {c.name: c for c in listing.candidates}
    first_list: dict[str, Path] = {}
    conflicted: set[str] = set()
    for fname, split in lists:
        path = folder / fname
        if not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            entry = line.strip()
            if not entry:
                continue
            stem = Path(entry).stem
            if stem not in known:
                listing.problems.append(DatasetError(
                    path, f"line {n} lists {entry!r} but {image_dirs} hold no such image"))
                continue
            c = by_name.get(stem)
            if c is None:  # its missing partner is already reported
                continue
            if c.split is not None and c.split != split:
                listing.problems.append(DatasetError(
                    path, f"line {n}: {entry!r} is also listed in {first_list[stem].name}; "
                          "train, val and test must not overlap"))
                conflicted.add(stem)
                continue
            c.split = split
            first_list.setdefault(stem, path)
    return conflicted


def apply_split_lists(folder: str | Path, listing: PairListing) -> None:
    """The split of every candidate from the lists in ``folder`` (a layout's ``split_lists`` option),
    in place of the layout's own: each pair must be listed once."""
    folder = Path(folder)
    names = [f for f, _ in SPLIT_LISTS]
    if not folder.is_dir() or not any((folder / f).is_file() for f in names):
        listing.problems.append(DatasetError(folder, f"split lists not found (looked for {', '.join(names)})"))
        return
    for c in listing.candidates:
        c.split = None
    conflicted = read_split_lists(folder, listing, {c.name for c in listing.candidates}, "the dataset's pairs")
    unlisted = [c.name for c in listing.candidates if c.split is None and c.name not in conflicted]
    if unlisted:
        shown = ", ".join(unlisted[:10]) + (", ..." if len(unlisted) > 10 else "")
        listing.problems.append(DatasetError(folder, f"{len(unlisted)} pair(s) are in none of {', '.join(names)}: "
                                                     f"{shown}"))
    listing.candidates = [c for c in listing.candidates if c.split is not None]
