#!/usr/bin/env python
"""The fixed split of the real-data benchmark: the 300 MSRS pairs of ``../shared/data/msrs_det``.

Made once, by this seeded rule, and stored in ``benchmarks/msrs_det_split/{train,val,test}.txt``
(one pair name a line), which the tools read with ``--split-lists benchmarks/msrs_det_split``:

- stratified by condition: the 149 day and the 151 night pairs are split on their own, so each
  part keeps the day / night shares;
- 10:3:7, i.e. 150 train / 45 val / 105 test: a test part of over 90 pairs, large enough to tell
  methods apart, and a validation part for choosing the detector config without the test part;
- blocks of 4 consecutive names (neighbouring frames of MFNet's sequences, more alike than two
  frames taken at random: median gray difference 37 against 64) go to a part together, so that
  few test pairs have a near twin in training (14 of 105, against 77 with single names);
- seed 0, never searched (:func:`fusion_perception.detection.data.make_split`).

    python benchmarks/make_msrs_det_split.py            # checks the stored split is this rule's
    python benchmarks/make_msrs_det_split.py --write    # writes it (where missing)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fusion_perception.data.layouts.scan import condition_from_name  # noqa: E402
from fusion_perception.detection.data import SPLITS, make_split, read_split, write_split  # noqa: E402

SPLIT_DIR = REPO / "benchmarks" / "msrs_det_split"
SEED, RATIO, BLOCK = 0, (10.0, 3.0, 7.0), 4


def benchmark_split(names: list[str]) -> dict[str, list[str]]:
    """The rule above, on the pairs' names (their condition is their last letter, D or N)."""
    return make_split(names, SEED, RATIO, strata={n: condition_from_name(n) for n in names}, block=BLOCK)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "msrs_det"), help="the 300 pairs")
    p.add_argument("--out", default=str(SPLIT_DIR), help=f"where the lists go (default {SPLIT_DIR})")
    p.add_argument("--write", action="store_true", help="write the lists where there are none yet")
    a = p.parse_args(argv)
    from fusion_perception.data.readers import load_dataset

    ds = load_dataset(a.data)
    split = benchmark_split([r.name for r in ds.records])
    stored = read_split(a.out)
    if stored is None and a.write:
        write_split(a.out, split)
        stored = split
    if stored != split:
        sys.exit(f"{a.out}: " + ("no split stored (--write writes it)" if stored is None
                                 else "the stored split is not this rule's on this data"))
    condition = {r.name: r.condition for r in ds.records}
    for s in SPLITS:
        night = sum(condition[n] == "night" for n in split[s])
        print(f"{s}: {len(split[s])} pairs ({len(split[s]) - night} day, {night} night)")
    print(f"the split in {a.out} is this rule's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
