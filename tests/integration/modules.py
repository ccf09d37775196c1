"""A module of a test's own for the integration tests that run `kodev watch` on it: a renamed copy of
examples/hello, its daemon objects found by label and removed afterwards, and helpers to edit and run it.

Every test works on its own copy of examples/hello whose module path is renamed to example.com/r<uid>, so
the images kodev builds (labelled dev.kodev.command=<import path>) and the containers it runs (named
rel-<uid>-...) are this test's alone, even with other sessions on the same daemon. The fixtures that make
one (`mod`, `private_mod`) are in tests/integration/conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.json_events import Event, Events, Finished, finished
from tests.integration.process import KodevProcess, free_port, sigint_not_ignored, wait_for_page, wait_until

SETTLE = 3.0  # seconds to wait when proving that nothing more happens
GREETING = "internal/greeting/greeting.go"
GREETING_SOURCE = '''// Package greeting is shared by both commands.
package greeting

// Message is the greeting both commands print.
func Message(name string) string {
	return "%s, " + name + "!"
}
'''
OWNER_PID = "dev.kodev.owner.pid"
COMMAND_LABEL = "dev.kodev.command"


# --- a module of this test's own -----------------------------------------------------------------------

@dataclass
class Module:
    """A copy of examples/hello renamed to `module_path`; its images are tagged under `repo`."""

    path: Path
    uid: str
    client: Any  # the daemon its images and containers live in
    started: list[int] = field(default_factory=list)  # pids of the kodev processes started on it

    @property
    def module_path(self) -> str:
        return f"example.com/r{self.uid}"

    @property
    def repo(self) -> str:
        return f"kodev.test/r{self.uid}"

    def name(self, what: str) -> str:
        return f"rel-{self.uid}-{what}"

    def command(self, name: str) -> str:
        return f"{self.module_path}/cmd/{name}"

    def images(self, name: str) -> list[dict[str, Any]]:
        """The daemon's images kodev made for cmd/`name` (tagged or not)."""
        return list(self.client.api.images(filters={"label": f"{COMMAND_LABEL}={self.command(name)}"}))


def make_module(source: Path, client: Any) -> Module:
    module = Module(source, uuid.uuid4().hex[:8], client)
    for path in [source / "go.mod", *source.rglob("*.go")]:
        path.write_text(path.read_text().replace("example.com/hello", module.module_path))
    (source / "kodev.toml").write_text(f'repo = "{module.repo}"\n')
    return module


def clean_daemon(module: Module) -> None:
    """Remove every container and image of `module`, and any container of the kodev processes it ran."""
    import docker.errors

    api = module.client.api
    found = {c["Id"] for c in api.containers(all=True, filters={"name": module.uid})}
    for pid in module.started:
        found |= {c["Id"] for c in api.containers(all=True, filters={"label": f"{OWNER_PID}={pid}"})}
    for container in found:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(container, force=True)
    for image in api.images(filters={"label": COMMAND_LABEL}):
        labels = image.get("Labels") or {}
        tags = image.get("RepoTags") or []
        if labels.get(COMMAND_LABEL, "").startswith(module.module_path + "/") or any(
                t.startswith(module.repo + "/") for t in tags):
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(image["Id"], force=True)
    for image in api.images():
        for tag in image.get("RepoTags") or []:
            if tag.startswith(module.repo + "/"):
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_image(tag, force=True)

def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def set_greeting(module: Module, word: str) -> None:
    write(module.path / GREETING, GREETING_SOURCE % word)


def start_kodev(module: Module, args: list[str], env: dict[str, str] | None = None) -> KodevProcess:
    with sigint_not_ignored():
        proc = KodevProcess(args, cwd=module.path, env=env)
    module.started.append(proc.process.pid)
    return proc


@contextlib.contextmanager
def kodev_running(module: Module, args: list[str], env: dict[str, str] | None = None
                  ) -> Iterator[tuple[KodevProcess, Events]]:
    """kodev ARGS on `module`, with its events; on the way out: no fatal error if the body passed, kodev's
    output printed if it failed, kodev stopped (exit 0 asserted) and the module's containers and images gone."""
    proc = start_kodev(module, args, env)
    events = Events(proc)
    try:
        yield proc, events
        assert not events.fatal(), proc.output()
    except BaseException:
        print(proc.output())
        raise
    finally:
        code = proc.stop()
        clean_daemon(module)
    assert code == 0, f"kodev exited with {code}\n{proc.output()}"


def server_service(name: str, port: int, stop_timeout: int = 3, command: str = "./cmd/server",
                   user: str | None = None) -> str:
    return f'''
[services.{name}]
command = "{command}"
args = ["-addr", "127.0.0.1:{port}"]
network = "host"
stop_timeout = {stop_timeout}
''' + (f'user = "{user}"\n' if user else "")



def get(url: str) -> tuple[int, str]:
    """Status and body of a GET, errors included (fetch() says None for a 500)."""
    import urllib.error
    import urllib.request

    assert url.startswith("http://127.0.0.1:"), url
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def assert_cache_clean(cache: Path) -> None:
    """No half-written layer and nothing in the scratch directory."""
    layers = cache / "layers"
    partial = [p.name for p in layers.iterdir() if p.name.startswith(".tmp-")] if layers.exists() else []
    assert partial == [], f"half-written layers left in {layers}: {partial}"
    scratch = cache / "tmp"
    left = [str(p) for p in scratch.iterdir()] if scratch.exists() else []
    assert left == [], f"left in {scratch}: {left}"


def layer_files(cache: Path) -> list[tuple[str, int]]:
    """(name, size) of every file in the layer cache, read while kodev may be renaming them."""
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(cache / "layers") as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                found.append((entry.name, entry.stat().st_size))
    return found


# The server runs as root on a private (vfs) daemon: as 65532 it cannot read its kodata there, see
# test_reliability's test_kodata_is_readable_by_the_default_user_on_a_vfs_daemon.
AS_ROOT = "0"


# --- `kodev … --json` on a module ------------------------------------------------------------------------

@dataclass
class Watch:
    """One running `kodev watch --json` with a server service on `port` (host network); its events."""

    proc: KodevProcess
    events: Events
    module: Module
    server: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.process.pid

    def rebuilt(self, command: str = "server") -> list[Event]:
        return self.events.rebuilt(command)

    def page(self, text: str, timeout: float = 60) -> str:
        try:
            return wait_for_page(self.url, text, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.proc.output()}") from None

    def containers(self) -> list[dict[str, Any]]:
        return list(self.module.client.api.containers(
            all=True, filters={"label": f"dev.kodev.service={self.server}"}))

    def container_id(self) -> str:
        """The one container of the server service (waits until there is exactly one)."""
        found: list[dict[str, Any]] = []

        def one() -> bool:
            found[:] = self.containers()
            return len(found) == 1

        wait_until(one, 30, lambda: f"expected one container for {self.server}, got {found}\n{self.proc.output()}")
        return str(found[0]["Id"])

    def owned(self) -> list[dict[str, Any]]:
        return list(self.module.client.api.containers(all=True, filters={"label": f"{OWNER_PID}={self.pid}"}))

    def assert_no_traceback(self) -> None:
        assert "Traceback" not in self.events.stderr(), self.proc.output()


@contextlib.contextmanager
def watching(module: Module, *, env: dict[str, str] | None = None, go: str | None = None, extra: str = "",
             stop_timeout: int = 3, started: bool = True, user: str | None = None) -> Iterator[Watch]:
    """`kodev watch --json` with one server service; with `started`, waits until it is watching and serves.
    Killed afterwards."""
    server, port = module.name("srv"), free_port()
    write(module.path / "kodev.toml",
          f'repo = "{module.repo}"\n' + server_service(server, port, stop_timeout, user=user) + extra)
    proc = start_kodev(module, ["watch", "--json", *(["--go", go] if go else [])], env)
    session = Watch(proc, Events(proc), module, server, port)
    try:
        if started:
            session.events.wait("watching", timeout=120)
            session.page("Hello, kodev!", timeout=30)
        yield session
        session.events.all()  # every line it wrote is JSON of the schema
        session.assert_no_traceback()
    finally:
        proc.kill()


def stop_cleanly(session: Watch, sig: int = signal.SIGINT, timeout: float = 60) -> None:
    """Stop kodev with `sig`: exit 0 (its `exit` event says so too), no container of it left, no traceback."""
    code = session.proc.stop(sig, timeout=timeout)
    assert code == 0, f"exit code {code} after {signal.Signals(sig).name}\n{session.proc.output()}"
    assert session.events.wait("exit", timeout=10)["code"] == 0, session.proc.output()
    assert not session.owned(), f"left behind: {session.owned()}\n{session.proc.output()}"
    session.assert_no_traceback()


def run_json(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> Finished:
    """`kodev ARGS --json` to its end, as a user runs it (tests/integration/conftest.py's `run_kodev`)."""
    from tests.integration.conftest import run_kodev  # conftest imports this module

    return finished(run_kodev([*args[:1], "--json", *args[1:]], cwd, env, timeout))
