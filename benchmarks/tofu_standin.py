"""What the benchmarks share: a stand-in tofu first on PATH."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def stand_in_path(root: Path, source: str) -> str:
    """Write ``source`` (a Python script template with ``{python}``) as ``root/bin/tofu``; the PATH
    that finds it first."""
    binary = root / "bin" / "tofu"
    binary.parent.mkdir()
    binary.write_text(source.format(python=sys.executable))
    binary.chmod(0o755)
    return f"{binary.parent}{os.pathsep}{os.environ['PATH']}"
