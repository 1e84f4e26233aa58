"""Checkov kept warm: run by Checkov's own interpreter (``python warm_checkov.py``), it loads Checkov's
modules once (about 4,000 of them: ~3 CPU-s, most of a check's cost) and then runs one check per request,
each in a child forked from this loaded process, so that no state of one check reaches the next.

The protocol, one JSON document per line: a request on standard input is ``{"argv": [...], "env": {...}}``
(Checkov's command-line arguments and the environment it runs with); the answer on standard output is
``{"code": <exit code>, "stdout": "..."}`` with what Checkov printed. The process ends at the end of its input. It imports nothing of SpawnIt: it runs in
Checkov's virtualenv, which holds only Checkov.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import traceback
import warnings


def check(argv: list[str], environ: dict[str, str], output: int) -> int:
    """Fork, run Checkov with ``argv`` and ``environ`` in the child, its standard output written to
    ``output``; the exit code."""
    child = os.fork()
    if child == 0:
        code = 2
        try:
            os.environ.clear()
            os.environ.update(environ)
            os.dup2(output, 1)
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child's standard output, flushed below
            sys.argv = ["checkov", *argv]
            from checkov.main import Checkov

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=SyntaxWarning)
                code = Checkov(argv).run() or 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 2
        except BaseException:  # noqa: BLE001 - said on standard error, answered as Checkov's failure
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            os._exit(code)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def serve() -> None:
    answers = sys.stdout
    sys.stdout = sys.stderr  # what Checkov's import prints never reaches the answers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SyntaxWarning)
        importlib.import_module("checkov.main")  # the cost paid once, before the first request

    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        request = json.loads(line)
        with tempfile.TemporaryFile() as output:
            code = check([str(argument) for argument in request["argv"]], request.get("env", dict(os.environ)), output.fileno())
            output.seek(0)
            answers.write(json.dumps({"code": code, "stdout": output.read().decode(errors="replace")}) + "\n")
        answers.flush()


if __name__ == "__main__":
    serve()
