"""The orchestrator: the web API (:mod:`.app`, FastAPI, started by ``spawnit serve``), the jobs, the
store, the gate, the workers.

The API's names (``create_app``, ``SETTINGS_ERRORS``...) are read from :mod:`.app` on first use (PEP 562),
so that the store, the jobs or the catalog can be imported without loading the web framework: a command
line refusing a bad argument answers before FastAPI, Starlette and Pydantic's models are loaded.
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__") or name == "app":  # `app` itself is a submodule, imported as one
        raise AttributeError(name)
    app = importlib.import_module(f"{__name__}.app")
    try:
        return getattr(app, name)
    except AttributeError:  # a submodule not imported yet: `from spawnit.api import gate` imports it then
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
