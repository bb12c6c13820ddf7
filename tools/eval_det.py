#!/usr/bin/env python
"""Re-evaluate a trained detection run (no training): pycocotools mAP on its stored split.

The same as ``fusion-perception eval-det`` (fusion_perception/commands/eval_det.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("eval-det")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
