#!/usr/bin/env python
"""Score fused images with the nine fusion-quality metrics, method against method.

The same as ``fusion-perception eval-fusion`` (fusion_perception/commands/eval_fusion.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("eval-fusion")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
