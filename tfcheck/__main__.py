"""Validate synthesized stacks with a real Terraform core, offline.

    python -m tfcheck [OUTDIR] [--stack NAME ...] [--init]

OUTDIR defaults to cdktf.out. Prints every diagnostic (stack, resource address, message) and
exits 1 if any is an error. ``--init`` also runs ``terraform init`` with each S3 backend block.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .core import init_backend, prepare, stack_dirs, validate_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir", nargs="?", default="cdktf.out", type=Path, help="cdktf output directory (default: cdktf.out)")
    parser.add_argument("--stack", action="append", default=[], help="only this stack (repeatable)")
    parser.add_argument("--init", action="store_true", help="also run terraform init with each stack's S3 backend block")
    arguments = parser.parse_args(argv)
    folders = [folder for folder in stack_dirs(arguments.outdir) if not arguments.stack or folder.name in arguments.stack]
    if not folders:
        print(f"tfcheck: outdir: {str(arguments.outdir)!r} holds no stack{' named ' + ', '.join(arguments.stack) if arguments.stack else ''}; run ./scripts/synth first", file=sys.stderr)
        return 2
    started = time.monotonic()
    core = prepare()
    report = validate_all(core, folders)
    errors = 0
    for name, diagnostics in report.items():
        for diagnostic in diagnostics:
            errors += diagnostic.severity == "error"
            print(diagnostic)
        if arguments.init and "s3" in json.loads((arguments.outdir / "stacks" / name / "cdk.tf.json").read_text()).get("terraform", {}).get("backend", {}):
            result = init_backend(core, arguments.outdir / "stacks" / name)
            output = result.stdout + result.stderr
            if "No valid credential sources found" not in output:
                errors += 1
                print(f"{name}: error: terraform init: {output.strip()[-2000:]}")
    print(f"tfcheck: {len(folders)} stacks, {errors} errors, {time.monotonic() - started:.1f} s")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
