#!/usr/bin/env python
"""Train EMMA's U-Fuser (step 3 of the method) through the frozen sensing nets, with mmengine.

The same as ``fusion-perception train-emma`` (fusion_perception/commands/train_emma.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("train-emma")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
