#!/usr/bin/env python
"""Train a YOLO detector on fused M3FD and score it with pycocotools (the paper's Table 3 protocol).

The same as ``fusion-perception train-det`` (fusion_perception/commands/train_det.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("train-det")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
