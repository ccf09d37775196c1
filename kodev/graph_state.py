"""The package graph the watch loop decides with: the last good one, loaded again only when it must be.

A load that fails keeps the last good graph and is tried again on the next save (`failed`); `go list` is
not free (about 1 s on a large module), so it runs at start, when files are added or imports change, and
after a failure — never on every save.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kodev.errors import KodevError
from kodev.gomod import MainPackage, ModuleGraph, load_graph
from kodev.gotool import GoTool
from kodev.ui import UI


class GraphState:
    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self.graph: ModuleGraph | None = None
        self.failed = False

    def load(self, go: GoTool, commands: Sequence[MainPackage]) -> KodevError | None:
        """Load the graph of `commands` again; the error (the last good graph stays), or None."""
        started = time.monotonic()
        try:
            self.graph = load_graph(go, list(commands), commands[0].module_dir)
        except KodevError as exc:
            self.failed = True
            return exc
        self.failed = False
        self.ui.graph_loaded(self.graph, time.monotonic() - started)
        return None

    @property
    def good(self) -> ModuleGraph:
        """The last good graph (the loop starts only once one loaded)."""
        assert self.graph is not None
        return self.graph
