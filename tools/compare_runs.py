#!/usr/bin/env python
"""Two runs (or two sets of seeds) of one task, paired over their test images: difference, interval, p-value.

The same as ``fusion-perception compare-runs`` (fusion_perception/commands/compare_runs.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("compare-runs")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
