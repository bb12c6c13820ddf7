#!/usr/bin/env python
"""Which fusions make the pseudo ground truth of EMMA's sensing nets on real images: target retention
of each candidate, from the human labels, on the benchmark's train and val parts (never its test part).

The sensing nets learn to undo what the pseudo ground truth does to a target, and EMMA's loss reaches
the fuser only through them (README, EMMA's model card): a candidate that keeps single-modality targets
at full contrast is a faithful one. Each candidate fuses every train / val pair in memory; an object
labelled in one modality only (no same-class box at IoU >= 0.3 in the other) keeps ``c(fused) /
c(source)`` of its local contrast (``fusion_perception.metrics.retention``), the mean per kind.

    python benchmarks/msrs_det_pseudo_gt.py                                     # the classical candidates
    python benchmarks/msrs_det_pseudo_gt.py --methods "laplacian(levels=6),didfuse" --weights didfuse=DIR

A candidate is a method spec, with parameters as the configs write them: ``laplacian(levels=6)``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "msrs_det"
SPLIT_LISTS = REPO / "benchmarks" / "msrs_det_split"
CANDIDATES = ("ir", "vi", "mean", "max", "dwt", "gff", "laplacian(levels=4)", "laplacian(levels=5)",
              "laplacian(levels=6)", "laplacian(levels=7)")


def parse_candidate(text: str) -> tuple[str, dict[str, int | float | str]]:
    """``"laplacian(levels=6)"`` -> ``("laplacian", {"levels": 6})``; ``"gff"`` -> ``("gff", {})``."""
    m = re.fullmatch(r"\s*([^()\s]+)\s*(?:\((.*)\))?\s*", text)
    if m is None:
        raise SystemExit(f"error: candidate {text!r}: write NAME or NAME(key=value,...)")
    params: dict[str, int | float | str] = {}
    for item in filter(None, (m.group(2) or "").split(",")):
        key, _, value = item.partition("=")
        params[key.strip()] = _number(value.strip())
    return m.group(1), params


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def retention_of(candidates: list[str], parts: list[str], weights: dict[str, str]) -> list[dict]:
    """Each candidate's mean IR-only / VI-only retention over the objects of the pairs of ``parts``."""
    import torch

    from fusion_perception.data.readers import load_dataset
    from fusion_perception.fusion.method import resolve_method
    from fusion_perception.metrics.retention import RetentionProbe
    from fusion_perception.metrics.retention_targets import TargetRule, dataset_target_records, target_pairs

    ds = load_dataset(DATA, f"msrs_det:split_lists={SPLIT_LISTS}")
    records = [r for r in dataset_target_records(ds) if r["split"] in parts]
    rule = TargetRule(mode="labels")
    probe = RetentionProbe(target_pairs(records, rule), rule)
    counts = [sum(int((item[3] == k).sum()) for item in probe.items) for k in (0, 1)]
    print(f"{len(records)} pairs ({', '.join(parts)}): {counts[0]} IR-only and {counts[1]} VI-only objects", flush=True)
    rows = []
    for text in candidates:
        name, params = parse_candidate(text)
        fuser = resolve_method(name, weights.get(name), DATA, params).fuser
        t0 = time.process_time()
        with torch.no_grad():
            scores = probe.score(lambda ir, vi: fuser.fuse(ir.float(), vi.float()), batch_size=1)
        rows.append({"candidate": text, **scores, "cpu_s": round(time.process_time() - t0, 1)})
        print(f"{text}: IR-only {scores['ir_only']:.3f}, VI-only {scores['vi_only']:.3f} "
              f"({rows[-1]['cpu_s']} CPU s)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(CANDIDATES), help="candidates, comma-separated")
    p.add_argument("--parts", default="train,val", help="parts of the stored split (never test)")
    p.add_argument("--weights", default="", help="METHOD=PATH,... for candidates with weights")
    a = p.parse_args(argv)
    parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    if "test" in parts:
        raise SystemExit("error: --parts: the pseudo ground truth is chosen without the test part")
    weights = dict(item.split("=", 1) for item in a.weights.split(",") if "=" in item)
    candidates = re.findall(r"[^,()]+(?:\([^()]*\))?", a.methods)
    rows = retention_of([c.strip() for c in candidates if c.strip()], parts, weights)
    print(f"\n| candidate ({'+'.join(parts)} parts) | IR-only | VI-only | worse of the two |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['candidate']} | {r['ir_only']:.3f} | {r['vi_only']:.3f} | {r['min']:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
