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

from fusion_perception import cli


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 320x256, not {text!r}") from None
    return w, h


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = cli.parser(prog, __doc__, raw=True)
    cli.add_out(p, "output folder (gets m3fd/ and/or msrs/)", required=True)
    cli.add_seed(p, "random seed (default 0)")
    p.add_argument("--count", type=int, default=200, help="pairs per task (default 200)")
    p.add_argument("--size", type=_size, default=(320, 256), help="WIDTHxHEIGHT (default 320x256)")
    p.add_argument("--held-out", type=cli.count(0), default=0,
                   help="further scenes for testing only, the first --count left as they are: MSRS puts them in "
                        "test/, M3FD holds them as further pairs (default 0)")
    cli.add_task(p, "det: M3FD layout, seg: MSRS layout, both (default)", tasks=("det", "seg"))  # the sets it writes
    cli.add_overwrite(p, "sets in --out")
    return p


def run(args: argparse.Namespace) -> int:
    from fusion_perception.synthetic.dataset import generate, summarize

    start = time.perf_counter()
    written = generate(args.out, task=args.task, count=args.count, size=args.size, seed=args.seed, progress=True,
                       overwrite=args.overwrite, held_out=args.held_out)
    print(summarize(written))
    held_out = f" + {args.held_out} held-out test pairs" if args.held_out else ""
    print(f"wrote {args.count}{held_out} pairs per task ({', '.join(written)}) in {time.perf_counter() - start:.1f} s")
    return 0
