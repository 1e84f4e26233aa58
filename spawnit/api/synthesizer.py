"""A long-lived synthesis worker: the jsii runtime loads once, then every request reuses it.

The parent talks to the worker process (:func:`serve`) over stdin/stdout, one JSON
object per line. A request names a catalog service, its parameters, the client,
the instance, the output folder, where the state lives and the operator's settings
(target settings, provider versions); the answer is the
synthesized stack's folder, or an error message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


class SynthError(RuntimeError):
    """The worker could not synthesize the instance (bad parameters, or the worker died)."""


class SynthWorker:
    """The parent's handle on one worker process; requests are served one at a time."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the worker and wait until its runtime is loaded (the slow part, done once)."""
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            environ = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
            self._process = subprocess.Popen(
                [self.python, "-c", "from spawnit.api.synthesizer import serve; serve()"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, env=environ
            )
            ready = self._process.stdout.readline()
            if json.loads(ready or "{}").get("ready") is not True:
                raise SynthError("the synthesis worker did not start")
        return self._process

    def synth(self, **request: Any) -> Path:
        with self._lock:
            process = self._ensure_started()
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            line = process.stdout.readline()
        if not line:
            raise SynthError("the synthesis worker stopped")
        answer = json.loads(line)
        if "error" in answer:
            raise SynthError(answer["error"])
        return Path(answer["stack_dir"])

    def close(self) -> None:
        """Stop the worker. One still loading its runtime (holding the lock) is terminated at once:
        a server asked to stop during warm-up must not wait for it."""
        if not self._lock.acquire(timeout=1):
            process = self._process
            if process is not None and process.poll() is None:
                process.terminate()
            self._lock.acquire()
        try:
            process = self._process
            if process is not None and process.poll() is None:
                process.stdin.close()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process is not None:  # its pipes too, whichever way it ended
                for pipe in (process.stdin, process.stdout):
                    if pipe is not None and not pipe.closed:
                        pipe.close()
            self._process = None
        finally:
            self._lock.release()


def serve() -> None:
    """The worker process's loop: load every provider binding once, then answer requests."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # whatever the libraries print must not reach the protocol stream

    import cdktf_cdktf_provider_aws  # noqa: F401 - the slow part, done before the first request
    import cdktf_cdktf_provider_docker  # noqa: F401
    from cdktf import App

    from ..reachability import require_reachable
    from ..services import ParameterError, get_service
    from ..services.base import instance_stack_name
    from ..services.template import from_document
    from ..services.stack import InstanceState, ServiceStack
    from ..services.targets import TargetSettings

    protocol.write(json.dumps({"ready": True}) + "\n")
    templates: dict[str, Any] = {}  # sha256 -> service class: a version's template is checked once per process
    for line in sys.stdin:
        try:
            request = json.loads(line)
            template = request.get("template")  # the instance's own version of a template service
            if template is not None:
                if template["sha256"] not in templates:
                    templates[template["sha256"]] = from_document(template).service
                service = templates[template["sha256"]]
            else:
                service = get_service(request["service"])
            parameters = service.parse(request.get("parameters", {}))
            app = App(outdir=request["outdir"])
            state = InstanceState(**request["state"]) if request.get("state") else None
            ServiceStack(
                app,
                service=service,
                parameters=parameters,
                client=request["client"],
                instance=request["instance"],
                state=state,
                target_settings=TargetSettings(**request.get("target_settings", {})),
                provider_versions=request.get("provider_versions"),
            )
            app.synth()
            name = instance_stack_name(request["client"], request["instance"])
            require_reachable(Path(request["outdir"]), [name])
            stack_dir = Path(request["outdir"]) / "stacks" / name
            protocol.write(json.dumps({"stack_dir": str(stack_dir)}) + "\n")
        except (ParameterError, ValueError, KeyError, TypeError) as error:
            protocol.write(json.dumps({"error": str(error)}) + "\n")
        except Exception as error:  # noqa: BLE001 - report, keep serving
            protocol.write(json.dumps({"error": f"{type(error).__name__}: {error}"}) + "\n")

