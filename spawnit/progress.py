"""What the command line is doing, while it does it: a spinner on a terminal, plain lines in logs."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console


class Progress:
    """``with progress.step("loading provider bindings"): ...`` shows the step while it runs and how
    long it took. On a terminal a spinner; elsewhere (CI logs, pipes) one line when it starts."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)

    @contextlib.contextmanager
    def step(self, message: str) -> Iterator[None]:
        started = time.monotonic()
        if self.console.is_terminal:
            with self.console.status(f"{message}..."):
                yield
            self.console.print(f"[green]✓[/green] {message} ({time.monotonic() - started:.1f} s)")
        else:
            print(f"spawnit: {message}...", file=sys.stderr, flush=True)
            yield

    def note(self, message: str) -> None:
        if self.console.is_terminal:
            self.console.print(message)
        else:
            print(f"spawnit: {message}", file=sys.stderr, flush=True)
