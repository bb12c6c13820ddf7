#!/usr/bin/env python
"""Re-evaluate a checkpoint of a segmentation run (no training): IoU per class and mIoU on the test split.

The same as ``fusion-perception eval-seg`` (fusion_perception/commands/eval_seg.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("eval-seg")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
