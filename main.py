#!/usr/bin/env python3
"""cdktf entry point: synthesizes every default stack (see `spawnit list`)."""

from spawnit.stacks.synthesis import synthesize

synthesize()
