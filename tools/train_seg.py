#!/usr/bin/env python
"""Train DeepLabV3+ on fused MSRS and score IoU per class and mIoU (the paper's Table 4 protocol).

The same as ``fusion-perception train-seg`` (fusion_perception/commands/train_seg.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("train-seg")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
