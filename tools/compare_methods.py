#!/usr/bin/env python
"""Compare fusion methods downstream: detection mAP@0.5 and segmentation mIoU, method against method.

The same as ``fusion-perception compare`` (fusion_perception/commands/compare_methods.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("compare")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
