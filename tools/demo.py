#!/usr/bin/env python
"""The pipeline's main job on the built-in synthetic default (about 11 minutes on a 2-core CPU).

The same as ``fusion-perception demo`` (fusion_perception/commands/demo.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("demo")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
