#!/usr/bin/env python3
"""Wall time and peak memory of synthesizing every default stack, against a bare provider import.

Loading the AWS provider's jsii assembly dominates a synth; SpawnIt's own work
should add little. Targets: full synth at most 1.25x the bare import's wall
time, and a peak under 1 GB for the synth process. Memory is sampled every
20 ms: the Python process, its node runtime (the jsii kernel), and the two
together are printed; the target applies to the largest single process.

    python benchmarks/synth.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BARE_IMPORT = "import cdktf_cdktf_provider_aws"
FULL_SYNTH = "import sys; from spawnit.stacks.synthesis import synthesize; synthesize(sys.argv[1])"
CATALOG_SYNTH = (
    "import sys; from cdktf import App; from spawnit.stacks import add_catalog_examples; "
    "app = App(outdir=sys.argv[1]); add_catalog_examples(app); app.synth()"
)
TIME_RATIO_TARGET = 1.25
PEAK_TARGET_MB = 1024


@dataclass
class Measure:
    seconds: float
    python_mb: float
    node_mb: float
    tree_mb: float

    @property
    def process_peak_mb(self) -> float:
        return max(self.python_mb, self.node_mb)


def measure(code: str, *arguments: str) -> Measure:
    """Run ``python -c code`` and sample the RSS of its whole process tree every 20 ms."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code, *arguments], cwd=ROOT, env=environ, stdout=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    python_peak = node_peak = tree_peak = 0
    while process.poll() is None:
        try:
            python_rss = root.memory_info().rss
            node_rss = [child.memory_info().rss for child in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        python_peak = max(python_peak, python_rss)
        node_peak = max([node_peak, *node_rss])
        tree_peak = max(tree_peak, python_rss + sum(node_rss))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise SystemExit(f"benchmark: {code!r} exited with {process.returncode}")
    return Measure(seconds, python_peak / 2**20, node_peak / 2**20, tree_peak / 2**20)


def median(measures: list[Measure]) -> Measure:
    return Measure(*(statistics.median(getattr(m, field) for m in measures) for field in ("seconds", "python_mb", "node_mb", "tree_mb")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, the median is printed (default 1)")
    repeat = parser.parse_args().repeat
    with tempfile.TemporaryDirectory() as outdir, tempfile.TemporaryDirectory() as catalog_outdir:
        bare = median([measure(BARE_IMPORT) for _ in range(repeat)])
        synth = median([measure(FULL_SYNTH, outdir) for _ in range(repeat)])
        catalog = median([measure(CATALOG_SYNTH, catalog_outdir) for _ in range(repeat)])
        stacks = len(list(Path(outdir).glob("stacks/*/cdk.tf.json")))
        catalog_stacks = len(list(Path(catalog_outdir).glob("stacks/*/cdk.tf.json")))
    ratio = synth.seconds / bare.seconds
    print(f"{'run':<42} {'wall s':>7} {'python MB':>10} {'node MB':>8} {'both MB':>8}")
    runs = (
        ("bare import cdktf_cdktf_provider_aws", bare),
        (f"full synth, main.py ({stacks} stacks)", synth),
        (f"catalog, every service x target ({catalog_stacks})", catalog),
    )
    for label, run in runs:
        print(f"{label:<42} {run.seconds:>7.2f} {run.python_mb:>10.0f} {run.node_mb:>8.0f} {run.tree_mb:>8.0f}")
    print(f"ratio full synth / bare import: {ratio:.2f} (target <= {TIME_RATIO_TARGET}): {'met' if ratio <= TIME_RATIO_TARGET else 'MISSED'}")
    peak = synth.process_peak_mb
    print(f"peak of one synth process: {peak:.0f} MB (target < {PEAK_TARGET_MB}): {'met' if peak < PEAK_TARGET_MB else 'MISSED'}")
    print(f"python and node together: {synth.tree_mb:.0f} MB (of which {bare.tree_mb:.0f} MB is the bare import)")
    print(f"catalog synth beyond the bare import: {catalog.seconds - bare.seconds:+.2f} s for {catalog_stacks} stacks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
