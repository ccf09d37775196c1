"""File events for the loop: a watcher thread that batches them, and their normalization into `FileChange`s.

A batch ends after `debounce_ms` of quiet, at most 200 ms after it began (kodev/filebatches.py); the loop
merges every batch that waited while it was building, and waits for the end of a burst that began during a
build.
Normalizing looks at each path's final state, so an atomic save (write a temp file, rename it over) or a
delete-then-create is one 'modified'.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Union

from kodev.affected import Change, FileChange, is_noise
from kodev.config import WatchSettings
from kodev.filebatches import batches
from kodev.gomod import ModuleGraph
from kodev.gosource import imports_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilesChanged:
    """A batch from the watcher: (change, path) pairs as watchfiles names them."""

    raw: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class WatchFailed:
    error: Exception


@dataclass(frozen=True)
class ServiceExited:
    """A container's log stream ended. `code` is None when it broke without an exit code."""

    service: str
    container_id: str
    code: int | None
    last_lines: tuple[str, ...]


Message = Union[FilesChanged, WatchFailed, ServiceExited]  # noqa: UP007 - a runtime alias on Python 3.10

def normalize(raw: Iterable[tuple[str, str]], graph: ModuleGraph) -> Iterator[FileChange]:
    """One change per path, from its final state; a modified .go file says whether it gained an import."""
    for path in sorted({Path(p) for _, p in raw}):
        package = graph.package_in(path.parent)
        known = package is not None and path.name in package.build_files | package.excluded_files
        change: Change = "deleted" if not path.exists() else ("modified" if known else "added")
        new_imports = False
        if change == "modified" and path.suffix == ".go" and package is not None:
            new_imports = not imports_of(path) <= package.imports | {"C"}
        yield FileChange(path, change, new_imports)


def describe(changes: Iterable[FileChange], root: Path) -> str:
    """The changed files worth naming: not an editor's temp file that came and went."""
    shown = sorted({str(c.path.relative_to(root)) if c.path.is_relative_to(root) else str(c.path)
                    for c in changes if c.change != "deleted" or c.path.suffix == ".go"})
    more = f" (+{len(shown) - 3} more)" if len(shown) > 3 else ""
    return f"{', '.join(shown[:3])}{more}" if shown else "files were removed"


class FileWatcher:
    """A thread that puts `FilesChanged` batches, or a `WatchFailed`, on `messages`."""

    def __init__(self, messages: queue.Queue[Message], settings: WatchSettings, root: Path,
                 excluded: tuple[Path, ...] = ()) -> None:
        """`excluded`: directories whose changes are never news (Go's module cache)."""
        self.messages = messages
        self.settings = settings
        self.root = root
        self.excluded = excluded
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.roots: tuple[Path, ...] = ()

    def start(self, roots: Iterable[Path]) -> None:
        """Watch `roots` (directories, or single files such as a go.work above them); restarts if running."""
        self.stop()
        self.roots = tuple(roots)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self.roots, self._stop, self._ready),
                                        name="watcher", daemon=True)
        self._thread.start()

    def follow(self, roots: Iterable[Path], files: Iterable[Path | None]) -> None:
        """Watch `roots` and `files` (kodev.toml, compose files: watched as files when outside every root);
        restarted only when that changes what is watched."""
        wanted = list(roots)
        for file in files:
            if file is not None and not any(file.is_relative_to(root) for root in wanted):
                wanted.append(file)
        if tuple(wanted) != self.roots:
            self.start(wanted)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until the watches are in place (a save from then on is seen); False if that took too long."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self._thread = None

    def wanted(self, _change: Any, path: str) -> bool:
        if is_noise(Path(path)) or any(Path(path).is_relative_to(directory) for directory in self.excluded):
            return False
        rel = Path(path).relative_to(self.root).as_posix() if Path(path).is_relative_to(self.root) else path
        return not any(fnmatch(rel, pattern) for pattern in self.settings.ignore)

    def _run(self, roots: tuple[Path, ...], stop: threading.Event, ready: threading.Event) -> None:
        settings = self.settings
        try:
            # watchfiles sets its watches up before it first returns, and it returns (an empty batch) after
            # the first idle interval at the latest: from then on no save is missed.
            for batch in batches(roots, self.wanted, settings.debounce_ms, stop, settings.poll,
                                 settings.poll_interval_ms):
                ready.set()
                if batch:
                    self.messages.put(FilesChanged(batch))
        except Exception as exc:  # a root vanished, inotify limits: say so, keep the containers
            log.debug("file watcher failed", exc_info=True)
            self.messages.put(WatchFailed(exc))
        finally:
            ready.set()  # never leave a waiter hanging
