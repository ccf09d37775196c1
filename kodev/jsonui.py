"""`--json`: what `UI` says to people, said as events — one JSON object per line on stdout.

Every event has `schema` (SCHEMA: a new major version only when a field changes meaning or goes away;
new events and new fields keep it), `event` and `time` (RFC 3339, UTC, milliseconds). Service logs are
`service.log` events, so stdout stays pure JSON; nothing is written to stderr but Python's own last
words (and `--debug`'s channel). The README lists every event and its fields.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, get_args

from kodev.errors import CompileError, KodevError
from kodev.report import CommandReport, DeliveryHow, Outcome
from kodev.ui import UI

if TYPE_CHECKING:
    from kodev.affected import FileChange
    from kodev.debug.rpc import Restarted
    from kodev.deliver import Delivered
    from kodev.gomod import ModuleGraph

SCHEMA = "kodev.events/1"
PROGRESS_SECONDS = 0.5  # at most this often a `build.progress` event: a line per package would flood

# The schema, as data: each event's own fields and their JSON types (besides schema, event, time). The
# README documents it; `check_event` holds every emitted line to it in the tests.
_NUM, _STR, _LIST = (int, float), (str,), (list,)
_OPT_NUM, _OPT_INT, _OPT_STR = (int, float, type(None)), (int, type(None)), (str, type(None))
EVENTS: dict[str, dict[str, tuple[type, ...]]] = {
    "started": {"command": _STR, "version": _STR},
    "graph.loaded": {"packages": (int,), "all_packages": (int,), "seconds": _NUM},
    "changes": {"files": _LIST, "commands": _LIST},
    "watching": {"roots": _LIST},
    "build.started": {"commands": _LIST, "estimate": _OPT_INT},
    "build.progress": {"commands": _LIST, "packages": (int,), "estimate": _OPT_INT},
    "build.finished": {"commands": _LIST, "seconds": _NUM, "packages": (int,), "direct": (bool,)},
    "build.failed": {"commands": _LIST, "seconds": _NUM, "packages": (int,), "message": _STR, "output": _STR},
    "build.superseded": {"commands": _LIST},
    "build.learned": {"command": _STR, "direct": (bool,), "reason": _STR},
    "image.published": {"command": _STR, "ref": _STR, "image_id": _STR, "bytes_sent": (int,), "slim": (bool,),
                        "seconds": _NUM, "pushed": _LIST},
    "delivered": {"command": _STR, "service": _STR, "how": _STR, "seconds": _NUM, "serving_seconds": _NUM},
    "command.result": {"command": _STR, "outcome": _STR, "total_seconds": _NUM, "go_seconds": _OPT_NUM,
                       "image_seconds": _NUM, "load_seconds": _OPT_NUM, "bytes_sent": _OPT_INT, "ref": _OPT_STR,
                       "image_id": _OPT_STR, "delivered": _LIST},
    "service.log": {"service": _STR, "stream": _STR, "line": _STR},
    "service.exited": {"service": _STR, "code": (int,), "last_lines": _LIST},
    "debugger.listening": {"service": _STR, "address": _STR},
    "debugger.restarted": {"service": _STR, "discarded": _LIST, "resumed": (bool,)},
    "proxy.listening": {"service": _STR, "address": _STR, "upstream": _STR},
    "proxy.held": {"service": _STR, "count": (int,), "longest_seconds": (int, float)},
    "proxy.reload": {"service": _STR},
    "daemon.lost": {"endpoint": _STR},
    "daemon.back": {},
    "kube.applied": {"context": _STR, "namespace": _STR, "objects": _LIST, "seconds": _NUM},
    "kube.rolled_out": {"objects": _LIST, "seconds": _NUM},
    "config.reloaded": {"path": _STR},
    "config.rejected": {"path": _STR, "message": _STR},
    "message": {"level": _STR, "text": _STR},
    "error": {"kind": _STR, "message": _STR, "fatal": (bool,)},  # and `output` for a compile error
    "exit": {"code": (int,)},
}
_OPTIONAL = {"error": {"output": _STR}}
# The fields whose values are a fixed set, and the set: README lists exactly these.
CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "delivered": {"how": get_args(DeliveryHow)},
    "command.result": {"outcome": get_args(Outcome)},
    "service.log": {"stream": ("stdout", "stderr")},
    "message": {"level": ("info", "warning")},
}


def check_event(event: dict[str, Any]) -> None:
    """Raise ValueError unless `event` is one of this schema's events with exactly its fields and types."""
    if event.get("schema") != SCHEMA:
        raise ValueError(f"schema is {event.get('schema')!r}, not {SCHEMA!r}")
    name = event.get("event")
    if name not in EVENTS:
        raise ValueError(f"unknown event {name!r}")
    if not isinstance(event.get("time"), str) or not event["time"].endswith("Z"):
        raise ValueError(f"{name}: time {event.get('time')!r} is not RFC 3339 UTC")
    datetime.fromisoformat(event["time"].replace("Z", "+00:00"))
    fields = {**EVENTS[name], **_OPTIONAL.get(name, {})}
    extra = set(event) - {"schema", "event", "time"} - set(fields)
    missing = set(EVENTS[name]) - set(event)
    if extra or missing:
        raise ValueError(f"{name}: unexpected fields {sorted(extra)}, missing {sorted(missing)}")
    for key, value in event.items():
        types = fields.get(key)
        if types is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise ValueError(f"{name}.{key} = {value!r} is not of {[t.__name__ for t in types]}")
        allowed = CHOICES.get(name, {}).get(key)
        if allowed is not None and value not in allowed:
            raise ValueError(f"{name}.{key} = {value!r} is not one of {list(allowed)}")
    if name == "command.result":
        for entry in event["delivered"]:
            if entry.get("how") not in get_args(DeliveryHow):
                raise ValueError(f"command.result.delivered: how {entry.get('how')!r} is not one of "
                                 f"{list(get_args(DeliveryHow))}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class JsonUI(UI):
    """The same interface as `UI`, writing events instead of text. `command` is kodev's subcommand."""

    def __init__(self, command: str, debug: bool = False, stdout: TextIO | None = None) -> None:
        super().__init__(debug=debug, stdout=stdout, status=False)
        self._events = stdout or sys.stdout
        self._write_lock = threading.Lock()  # log threads emit too: one whole line at a time
        self._last_progress = 0.0
        self._served: list[Delivered] = []  # `delivered` said before the round's report
        from kodev import __version__

        self.emit("started", command=command, version=__version__)

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"schema": SCHEMA, "event": event, "time": _now(), **fields}, ensure_ascii=False)
        with self._write_lock:
            self._events.write(line + "\n")
            self._events.flush()

    # --- text becomes `message` events -------------------------------------------------------------

    def result(self, line: str) -> None:
        pass  # the reference is in `image.published` and `command.result`: stdout stays pure JSON

    def stage(self, subject: str, what: str, seconds: float, detail: str = "") -> None:
        pass  # its only use outside `report` is the `go build` line: `build.finished` says it

    def info(self, message: str) -> None:
        self.emit("message", level="info", text=message)

    def note(self, message: str) -> None:
        self.emit("message", level="info", text=message)

    def warn(self, message: str) -> None:
        self.emit("message", level="warning", text=message)

    def error(self, exc: KodevError, fatal: bool = False) -> None:
        """Every `error:` line a person would see; `fatal` when it ends kodev (an `exit` event follows)."""
        fields: dict[str, Any] = {"kind": type(exc).__name__, "message": str(exc), "fatal": fatal}
        if isinstance(exc, CompileError):
            fields["output"] = exc.output
        self.emit("error", **fields)

    def service_line(self, service: str, color: str, width: int, line: str, stream: str = "stdout") -> None:
        self.emit("service.log", service=service, stream=stream, line=line)

    def raw(self, stream: str, line: str, service: str = "") -> None:
        self.emit("service.log", service=service, stream=stream, line=line)

    # --- the loop ----------------------------------------------------------------------------------

    def graph_loaded(self, graph: ModuleGraph, seconds: float) -> None:
        self.estimate = graph.listed or None
        self.emit("graph.loaded", packages=len(graph.packages), all_packages=graph.listed, seconds=_seconds(seconds))

    def changes(self, changes: Sequence[FileChange], root: Path, commands: Sequence[str] = ()) -> None:
        files = [{"path": str(c.path.relative_to(root)) if c.path.is_relative_to(root) else str(c.path),
                  "change": c.change} for c in changes]
        self.emit("changes", files=sorted(files, key=lambda f: f["path"]), commands=list(commands))

    def watching(self, roots: Sequence[Path]) -> None:
        self.emit("watching", roots=[str(r) for r in roots])

    def superseded(self, commands: Sequence[str]) -> None:
        self.emit("build.superseded", commands=list(commands))

    def _build_started(self, commands: Sequence[str]) -> None:
        self._last_progress = time.monotonic()
        self.emit("build.started", commands=list(commands), estimate=self.estimate)

    def _build_progress(self, commands: Sequence[str], packages: int) -> None:
        now = time.monotonic()
        if now - self._last_progress >= PROGRESS_SECONDS:
            self._last_progress = now
            self.emit("build.progress", commands=list(commands), packages=packages, estimate=self.estimate)

    def _build_finished(self, commands: Sequence[str], seconds: float, packages: int, direct: bool) -> None:
        self.emit("build.finished", commands=list(commands), seconds=_seconds(seconds), packages=packages,
                  direct=direct)

    def _build_failed(self, commands: Sequence[str], seconds: float, packages: int, exc: CompileError) -> None:
        self.emit("build.failed", commands=list(commands), seconds=_seconds(seconds), packages=packages,
                  message=str(exc), output=exc.output)

    def served(self, name: str, delivered: Delivered, serving_seconds: float) -> None:
        """`delivered` at once for a swap, ~0.1-0.2 s before its image is loaded and its round reported."""
        self._served.append(delivered)
        self.emit("delivered", command=name, service=delivered.service, how=delivered.how,
                  seconds=_seconds(delivered.seconds), serving_seconds=_seconds(serving_seconds))

    def report(self, report: CommandReport) -> None:
        """`image.published`, a `delivered` per workload (unless `served` said it), then `command.result`."""
        published = report.published
        if published is not None:
            self.emit("image.published", command=report.name, ref=published.ref, image_id=published.image_id,
                      bytes_sent=published.bytes_sent, slim=published.slim, seconds=_seconds(published.seconds),
                      pushed=[{"ref": p.ref, "bytes_sent": p.bytes_sent, "seconds": _seconds(p.seconds)}
                              for p in published.elsewhere if p.destination == "registry"])
        workloads = [d for d in report.delivered if d.service]  # an image-only command delivers to nobody
        for delivered in workloads:
            if any(delivered is said for said in self._served):
                continue
            self.emit("delivered", command=report.name, service=delivered.service, how=delivered.how,
                      seconds=_seconds(delivered.seconds), serving_seconds=_seconds(report.total))
        self._served.clear()
        self.emit("command.result", command=report.name, outcome=report.outcome,
                  total_seconds=_seconds(report.total), go_seconds=_seconds(report.go),
                  image_seconds=_seconds(report.image),
                  load_seconds=_seconds(published.seconds) if published else None,
                  bytes_sent=published.bytes_sent if published else None,
                  ref=published.ref if published else None, image_id=published.image_id if published else None,
                  delivered=[{"service": d.service, "how": d.how, "seconds": _seconds(d.seconds)}
                             for d in workloads])

    def service_exited(self, service: str, code: int, last_lines: Sequence[str]) -> None:
        self.emit("service.exited", service=service, code=code, last_lines=list(last_lines))

    def debugger_listening(self, service: str, address: str) -> None:
        self.emit("debugger.listening", service=service, address=address)

    def debugger_restarted(self, service: str, restarted: Restarted) -> None:
        self.emit("debugger.restarted", service=service,
                  discarded=[{"location": d.location, "reason": d.reason} for d in restarted.discarded],
                  resumed=restarted.resumed)

    def proxy_listening(self, service: str, address: str, upstream: str) -> None:
        self.emit("proxy.listening", service=service, address=address, upstream=upstream)

    def proxy_reloaded(self, service: str, held: int, longest: float) -> None:
        if held:
            self.emit("proxy.held", service=service, count=held, longest_seconds=round(longest, 4))
        self.emit("proxy.reload", service=service)

    def direct_learned(self, command: str, ready: bool, reason: str) -> None:
        self.emit("build.learned", command=command, direct=ready, reason=reason)

    def daemon_lost(self, endpoint: str) -> None:
        self.emit("daemon.lost", endpoint=endpoint)

    def daemon_back(self) -> None:
        self.emit("daemon.back")

    def kube_applied(self, context: str, namespace: str, objects: Sequence[str], seconds: float) -> None:
        self.emit("kube.applied", context=context, namespace=namespace, objects=list(objects),
                  seconds=_seconds(seconds))

    def kube_rolled_out(self, objects: Sequence[str], seconds: float) -> None:
        self.emit("kube.rolled_out", objects=list(objects), seconds=_seconds(seconds))

    def config_reloaded(self, path: Path) -> None:
        self.emit("config.reloaded", path=str(path))

    def config_rejected(self, path: Path, exc: KodevError) -> None:
        self.emit("config.rejected", path=str(path), message=str(exc))
        self.error(exc)

    def close(self, code: int) -> None:
        self.emit("exit", code=code)
