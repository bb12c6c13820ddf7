"""What the tests of a careless user's commands share: the one error line a tool prints, files'
modification times, and checkpoints a user may pass (a crafted pickle, a real YOLO file)."""

from __future__ import annotations

from pathlib import Path

import torch


def one_line(err: str) -> str:
    """The single error line a tool printed: the last line on stderr, after at most the tool's own
    stage lines and progress bars (no traceback, no library warning, no terminal escapes)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("warning:")]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err and "Warning" not in err and "\x1b" not in err, err
    return errors[0]


def mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def crafted_pickle(path: Path, target: Path) -> Path:
    """A .pt file whose unpickling would create ``target`` (what a malicious checkpoint does)."""

    class Payload:
        def __reduce__(self):
            return (open, (str(target), "w"))

    torch.save({"model": Payload()}, path)
    assert not target.exists()
    return path


def real_yolo_pt(path: Path) -> Path:
    from fusion_perception.detection.model import ultralytics_offline

    ultralytics_offline()
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").save(str(path))
    return path
