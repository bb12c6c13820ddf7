#!/usr/bin/env python
"""Train EMMA's pseudo-sensing nets A_i and A_v (step 2 of the method) with mmengine.

The same as ``fusion-perception train-sensing`` (fusion_perception/commands/train_sensing.py).
"""

import sys

from fusion_perception.commands import command_main

main = command_main("train-sensing")  # the command's parser, then its run; a user error ends in one line

if __name__ == "__main__":
    sys.exit(main())
