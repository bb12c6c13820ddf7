#!/usr/bin/env python
"""Write the synthetic multi-modal scene datasets (M3FD and MSRS layouts).

Layouts written under --out:

  m3fd/  (--task det)  Ir/NNNNN.png (IR, 3-channel gray), Vis/NNNNN.png (colour),
                       Annotation/NNNNN.xml (Pascal VOC; People, Car, Bus, Motorcycle, Lamp, Truck)
  msrs/  (--task seg)  {train,test}/{ir,vi,Segmentation_labels}/NNNNN{D,N}.png, about 3:1
                       train/test; label ids 0..8 = unlabelled, car, person, bike, curve,
                       car_stop, guardrail, color_cone, bump; D = day, N = night

Day and night street scenes in which warm objects (people, running vehicles) show in IR
and hardly in night VI, and cold objects (parked vehicles, lamps, cones, painted curbs and
bumps, guardrails, car stops) show in VI but not in IR. Each object's measured visibility
per modality is stored (VOC <visibility><ir>..</ir><vi>..</vi></visibility>; MSRS
{split}/synthetic_objects.json). Same --seed, same bytes.
"""

from __future__ import annotations

import argparse
import time

from fusion_perception.cli import tool_main
from fusion_perception.data.synthetic import generate, summarize


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x256, not {text!r}") from None
    return w, h


@tool_main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder (gets m3fd/ and/or msrs/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--count", type=int, default=200, help="pairs per task (default 200)")
    p.add_argument("--size", type=_size, default=(320, 256), help="WIDTHxHEIGHT (default 320x256)")
    p.add_argument("--task", choices=("det", "seg", "both"), default="both",
                   help="det: M3FD layout, seg: MSRS layout, both (default)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace sets in --out made with other arguments (default: refuse; same arguments: kept)")
    a = p.parse_args(argv)
    start = time.perf_counter()
    written = generate(a.out, task=a.task, count=a.count, size=a.size, seed=a.seed, progress=True,
                       overwrite=a.overwrite)
    print(summarize(written))
    print(f"wrote {a.count} pairs per task ({', '.join(written)}) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
