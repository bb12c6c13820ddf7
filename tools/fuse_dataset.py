#!/usr/bin/env python
"""Fuse a paired IR/visible dataset with one fusion method: the preprocessing stage.

The same as ``fusion-perception fuse`` (fusion_perception/commands/fuse_dataset.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("fuse")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
