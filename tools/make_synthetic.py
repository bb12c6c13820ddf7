#!/usr/bin/env python
"""Write the synthetic multi-modal scene datasets (M3FD and MSRS layouts).

The same as ``fusion-perception make-synthetic`` (fusion_perception/commands/make_synthetic.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("make-synthetic")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
