#!/usr/bin/env python
"""Validate a paired IR/visible dataset and print what it holds.

The same as ``fusion-perception describe`` (fusion_perception/commands/describe_dataset.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("describe")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
