"""The benchmark's side-by-side machinery without a daemon or the network: entries and their alternation,
the derived numbers and tables, the error text the report shows, kodev's exact `go build` command, the
generated module with dependencies, and the rivals' configs for the 20-command module."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import depsmod, lineup
from bench.alternate import (
    Entry,
    alternate,
    breakdown_table,
    difference,
    others_paused,
    problems,
    quote,
    ratio,
    redact,
    results_table,
    start_all,
)
from bench.contenders import INITIAL_TEXT, SERVER_LINE
from bench.context import Settings
from bench.depsbench import timed_start
from bench.hello import go_noise, go_pairs
from bench.measure import Line
from bench.rivalmarks import stages
from bench.rivals import reap, skaffold_artifact, skaffold_config, skaffold_yaml, watched_by_the_loop
from bench.sharedrivals import ko_all_yaml, ko_references, last_success
from kodev.gobuild import BuildRequest, build_args
from kodev.gomod import MainPackage


class FakeRunner:
    def __init__(self, values: list[float], fail_at: int | None = None, start_error: str = "") -> None:
        self.values = list(values)
        self.fail_at = fail_at
        self.start_error = start_error
        self.port = 0
        self.module = Path("/nonexistent")
        self.tokens: list[str] = []
        self.stopped = 0

    def start(self) -> float:
        if self.start_error:
            raise RuntimeError(self.start_error)
        return 1.5

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        if self.fail_at is not None and len(self.tokens) == self.fail_at:
            raise RuntimeError("127.0.0.1:1 never served the token\nit printed:\nbind: address already in use")
        self.tokens.append(token)
        return self.values[len(self.tokens) - 1], {"go build": 0.1 * len(self.tokens), "watcher": 0.02}

    def edit(self, token: str) -> None:
        self.tokens.append(token)

    def stop(self) -> None:
        self.stopped += 1


def fake_context(warmup: int = 1, reps: int = 3) -> Any:
    logged: list[str] = []
    return SimpleNamespace(uid="u1", settings=Settings(warmup=warmup, reps=reps), log=logged.append, logged=logged)


def entry(name: str, runner: FakeRunner | None, error: str = "") -> Entry:
    return Entry(name, name.split()[0], (lambda: runner) if runner is not None else None, flags=f"{name} flags",
                 error=error)


# --- alternation ---------------------------------------------------------------------------------------------

def test_contenders_take_turns_and_a_failure_stops_only_its_own() -> None:
    context = fake_context(warmup=1, reps=3)
    good = FakeRunner([9.0, 1.0, 2.0, 3.0])
    flaky = FakeRunner([9.0, 2.0, 4.0, 6.0], fail_at=2)
    absent = entry("ko loop", None, error="ko v0.19.1 could not be installed: go: 403 Forbidden")
    entries = [entry("kodev (swap)", good), entry("air (host)", flaky), absent]
    start_all(context, entries, "test")
    alternate(context, entries, "test", pause=0)
    kodev, air, ko = entries
    assert kodev.values == {1: 1.0, 2: 2.0, 3: 3.0}  # the warm-up round (index 0) is not counted
    assert air.values == {1: 2.0}
    assert air.error.startswith("round 3: 127.0.0.1:1 never served") and flaky.stopped == 1
    assert not air.live and kodev.live and ko.runner is None
    assert good.tokens == ["kodev-u1-0", "kodev-u1-1", "kodev-u1-2", "kodev-u1-3"]
    assert ratio(kodev, air) == 0.5 and difference(kodev, air) == -1.0  # only the round both have
    assert any("air FAILED" in line for line in context.logged)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


class WatcherRunner(FakeRunner):
    """A runner whose watcher is a real process (kodev, skaffold and air are): it is paused in others' turns."""

    def __init__(self, values: list[float], seen: dict[str, list[str]], others: list[WatcherRunner]) -> None:
        super().__init__(values)
        self.process = SimpleNamespace(popen=subprocess.Popen(["sleep", "60"]))
        self.seen, self.others = seen, others

    def measure(self, token: str) -> tuple[float, dict[str, float]]:
        self.seen[token] = [_state(self.process.popen.pid)] + [_state(o.process.popen.pid) for o in self.others]
        return super().measure(token)


def test_in_each_turn_the_other_watchers_are_stopped_and_continued_after() -> None:
    context = fake_context(warmup=0, reps=2)
    seen: dict[str, list[str]] = {}
    others: list[WatcherRunner] = []
    a = WatcherRunner([1.0, 1.0], seen, others)
    b = WatcherRunner([2.0, 2.0], seen, [a])
    others.append(b)
    try:
        entries = [entry("kodev (swap)", a), entry("skaffold dev", b)]
        start_all(context, entries, "test")
        alternate(context, entries, "test", pause=0)
        stopped = {token: [state == "T" for state in states] for token, states in seen.items()}
        assert stopped == {"kodev-u1-0": [False, True], "skaffold-u1-0": [False, True],
                           "kodev-u1-1": [False, True], "skaffold-u1-1": [False, True]}
        assert _state(a.process.popen.pid) != "T" and _state(b.process.popen.pid) != "T"
        with pytest.raises(RuntimeError), others_paused(entries, entries[0]):
            raise RuntimeError("a turn that fails still continues the others")
        assert _state(b.process.popen.pid) != "T"
    finally:
        for runner in (a, b):
            runner.process.popen.kill()
            runner.process.popen.wait()


def test_offset_rounds_continue_the_numbering() -> None:
    context = fake_context(warmup=0, reps=2)
    runner = FakeRunner([1.0, 2.0, 3.0, 4.0])
    one = entry("kodev (swap)", runner)
    start_all(context, [one], "test")
    alternate(context, [one], "test", pause=0)
    alternate(context, [one], "test", pause=0, warmup=0, reps=2, offset=2, tokens="g")
    assert one.values == {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    assert runner.tokens[-1] == "kodev-u1-g3"


def test_a_start_failure_is_kept_verbatim() -> None:
    context = fake_context()
    broken = entry("skaffold dev", FakeRunner([], start_error="exited with 1 before printing 'Watching'"))
    start_all(context, [broken], "test")
    assert broken.error == "did not start: exited with 1 before printing 'Watching'"
    assert results_table([broken]).rows[0][-1] == "did not run (below)"
    assert problems([broken]) == ["**skaffold dev failed:** `did not start: exited with 1 before printing "
                                  "'Watching'`"]


def test_tables_show_every_contender_and_their_steps() -> None:
    context = fake_context(warmup=0, reps=2)
    runner = FakeRunner([1.0, 3.0])
    ok = entry("kodev (swap)", runner)
    missing = entry("ko loop", None, error="no local registry for its base: no `docker-registry` on PATH")
    start_all(context, [ok, missing], "test")
    alternate(context, [ok, missing], "test", pause=0)
    table = results_table([ok, missing], first=True)
    assert table.headers == ["contender", "median", "min", "max", "n", "start → serving", "status"]
    assert table.rows[0] == ["kodev (swap)", "2.000 s", "1.000 s", "3.000 s", "2", "1.500 s", ""]
    assert table.rows[1][4:] == ["0", "—", "not run here (below)"]
    steps = breakdown_table([ok]).rows[0]
    assert steps[2] == "go build 150 ms · watcher 20 ms"
    assert problems([ok, missing]) == ["**ko loop could not run here:** `no local registry for its base: no "
                                       "'docker-registry' on PATH`"]


def test_errors_name_no_remote_host_and_stay_on_one_line() -> None:
    text = ("go: reading https://mirror.example.net/github.com/x/@v/list: 403 Forbidden\n"
            "\tserver response: not available\nGet http://127.0.0.1:5000/v2/: ok `quoted`")
    assert redact(text).startswith("go: reading https://<remote host>/github.com/x/@v/list")
    assert "http://127.0.0.1:5000/v2/" in redact(text)
    assert quote(text) == ("`go: reading https://<remote host>/github.com/x/@v/list: 403 Forbidden ⏎ \tserver "
                           "response: not available ⏎ Get http://127.0.0.1:5000/v2/: ok 'quoted'`")
    assert quote("x" * 50, limit=10) == "`xxxxxxxxxx …`"
    assert lineup.one_line("a | b\nc") == "a \\| b ⏎ c"


# --- scenario 1's go-build comparison -----------------------------------------------------------------------

def test_kodev_go_command_is_what_kodev_builds(tmp_path: Path) -> None:
    command = MainPackage("example.com/hello/cmd/server", tmp_path / "cmd/server", "example.com/hello", tmp_path)
    ours = lineup.kodev_go_argv("go", tmp_path / "out", "example.com/hello/cmd/server")
    theirs = build_args([BuildRequest(command, ldflags=("-s", "-w"))], tmp_path / "out", verbose=True)
    assert ours == ["go", *theirs]
    assert lineup.kodev_go_env()["CGO_ENABLED"] == "0" and lineup.kodev_go_env()["GOOS"] == "linux"


def test_module_path_is_read_from_go_mod(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text('// a comment\nmodule "example.com/hello"\n\ngo 1.22\n')
    assert lineup.module_path(tmp_path) == "example.com/hello"


def test_within_noise_is_15_ms_or_5_percent() -> None:
    assert go_noise(0.2) == 0.015
    assert go_noise(0.5) == pytest.approx(0.025)
    assert go_noise(float("nan")) != go_noise(float("nan"))


def test_go_pairs_pair_kodev_s_go_seconds_with_the_same_round() -> None:
    kodev = Entry("kodev", "kodev", None, parts={1: {"go build": 0.40}, 2: {"go build": 0.50}, 3: {}})
    alone = Entry("alone", "gocmd", None, values={1: 0.38, 3: 0.30})
    assert go_pairs(kodev, alone) == [pytest.approx(0.02)]


def test_kodev_steps_in_the_order_of_a_round() -> None:
    steps = lineup.kodev_steps(0.50, {"total": 0.45, "image": 0.02, "go": 0.40, "load": 0.2, "swap": 0.001,
                                      "sent_mb": 5.9, "cpu": 0.05})
    assert list(steps) == [lineup.KODEV_OUTSIDE, "go build", "swap", "image", "load", "its 'rebuilt in'",
                           "kodev's own CPU", "sent_mb"]
    assert steps[lineup.KODEV_OUTSIDE] == pytest.approx(0.05)


# --- scenario 9's module -------------------------------------------------------------------------------------

def test_the_dependency_module_serves_what_the_benchmark_edits(tmp_path: Path) -> None:
    depsmod.write(tmp_path)
    main = (tmp_path / "cmd/server/main.go").read_text()
    assert SERVER_LINE in main and INITIAL_TEXT in main
    for path in depsmod.IMPORTS:
        assert f'\t"{path}"\n' in main
    assert (tmp_path / "go.mod").read_text().startswith(f"module {depsmod.MODULE}\n")
    assert all(version.startswith("v") for _path, version in depsmod.DEPENDENCIES)


def test_requirements_are_read_from_go_mod(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text(
        "module example.com/depsvc\n\ngo 1.25.0\n\nrequire github.com/rs/zerolog v1.35.1\n\nrequire (\n"
        "\tgithub.com/go-chi/chi/v5 v5.5.0\n\tgolang.org/x/sys v0.29.0 // indirect\n)\n")
    assert depsmod.requirements(tmp_path) == ("github.com/rs/zerolog v1.35.1", "github.com/go-chi/chi/v5 v5.5.0",
                                              "golang.org/x/sys v0.29.0 (indirect)")


def test_the_environment_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOPROXY", "before")
    monkeypatch.delenv("GOMODCACHE", raising=False)
    with depsmod.environment({"GOPROXY": "off", "GOMODCACHE": "/x"}):
        assert os.environ["GOPROXY"] == "off" and os.environ["GOMODCACHE"] == "/x"
    assert os.environ["GOPROXY"] == "before" and "GOMODCACHE" not in os.environ
    assert depsmod.offline()["GOPROXY"] == "off"


def test_a_floor_s_cold_start_is_its_build() -> None:
    runner = FakeRunner([])
    seconds, parts = timed_start(runner, "tok")
    assert runner.tokens == ["tok"] and parts == {} and 0 <= seconds < 1


def test_kodev_cold_start_stages_from_its_events() -> None:
    from bench.depsbench import KODEV_COLD

    def event(at: float, name: str) -> Line:
        return Line(at, "stdout", f'{{"schema": "kodev.events/1", "event": "{name}", "time": "x"}}')

    lines = [event(1.0, "started"), event(2.0, "graph.loaded"), event(2.1, "build.started"),
             event(3.0, "build.finished"), event(3.5, "image.published"), event(3.6, "delivered")]
    found = stages(lines, KODEV_COLD, 0.0, 3.7)
    assert list(found.values()) == pytest.approx([1.0, 1.0, 0.1, 0.9, 0.5, 0.1, 0.1])


# --- the rivals' configs ---------------------------------------------------------------------------------------

def test_skaffold_watches_kodata_only_where_there_is_one() -> None:
    import yaml  # a dependency of kodev itself: never skipped
    plain = yaml.safe_load(skaffold_yaml("img", "127.0.0.1:5000/kodev/static@sha256:ab"))
    assert "dependencies" not in plain["build"]["artifacts"][0]["ko"]
    with_kodata = yaml.safe_load(skaffold_yaml("img", "base", kodata=True))
    assert with_kodata["build"]["artifacts"][0]["ko"]["dependencies"] == {"paths": ["**/*.go", "cmd/server/kodata"]}


def test_skaffold_config_for_many_artifacts() -> None:
    import yaml  # a dependency of kodev itself: never skipped
    images = ["kb-u-c00", "kb-u-c01"]
    config = yaml.safe_load(skaffold_config("gen", [skaffold_artifact(i, "base", f"./cmd/{i[-3:]}") for i in images],
                                            images))
    assert [a["ko"]["main"] for a in config["build"]["artifacts"]] == ["./cmd/c00", "./cmd/c01"]
    assert config["build"]["local"] == {"push": False}
    assert config["deploy"] == {"docker": {"images": images}}
    assert config["build"]["artifacts"][0]["ko"]["ldflags"] == ["-buildid=", "-s", "-w"]


def test_ko_all_yaml_has_a_build_per_command() -> None:
    import yaml  # a dependency of kodev itself: never skipped
    builds = yaml.safe_load(ko_all_yaml(["./cmd/c00", "./cmd/c01"]))["builds"]
    assert [(b["id"], b["main"]) for b in builds] == [("c00", "./cmd/c00"), ("c01", "./cmd/c01")]
    assert builds[1]["ldflags"] == ["-buildid=", "-s", "-w"] and builds[1]["env"] == ["CGO_ENABLED=0"]


def test_ko_references_and_skaffold_s_last_success() -> None:
    assert ko_references("ko.local/r/c00:u1\n\nko.local/r/c01:u1\n") == ["ko.local/r/c00:u1", "ko.local/r/c01:u1"]
    lines = ["Generating tags...", "Build [kb-c19] succeeded", "Building [kb-c00]...",
             "\x1b[32mBuild [kb-c00] succeeded\x1b[0m", "Starting deploy..."]
    assert last_success(lines) == 3
    assert last_success(["Starting deploy..."]) is None


def test_the_ko_loop_rebuilds_on_go_and_kodata() -> None:
    assert watched_by_the_loop(None, "/m/cmd/server/main.go")
    assert watched_by_the_loop(None, "/m/cmd/server/kodata/index.html")
    assert not watched_by_the_loop(None, "/m/README.md")


def test_reap_kills_what_air_left_behind(tmp_path: Path) -> None:
    binary = tmp_path / "tmp" / "server"
    binary.parent.mkdir()
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    orphan = subprocess.Popen(["/bin/sh", "-c", f"{binary} 30"], start_new_session=True)
    deadline = time.monotonic() + 5
    killed: list[int] = []
    while time.monotonic() < deadline and len(killed) < 2:  # sh, then its child once it has started
        killed += reap(binary)
        time.sleep(0.05)
    assert orphan.pid in killed
    assert orphan.wait(timeout=5) != 0
    assert reap(binary) == []


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_reap_leaves_other_processes_alone(tmp_path: Path) -> None:
    other = subprocess.Popen([shutil.which("sleep") or "/bin/sleep", "30"])
    try:
        assert reap(tmp_path / "tmp" / "server") == []
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_each_round_takes_every_contender_once_in_an_order_its_seed_fixes() -> None:
    """A fixed order would have each contender always follow the same one (and what that one leaves running)."""
    from bench.alternate import turn_order

    entries = [Entry(name, name, None) for name in "abcdefgh"]
    orders = [[e.name for e in turn_order(entries, f"run-scenario 1-{index}")] for index in range(8)]
    assert all(sorted(order) == list("abcdefgh") for order in orders)
    assert orders[3] == [e.name for e in turn_order(entries, "run-scenario 1-3")]  # the log's seed replays it
    assert len({order[order.index("a") - 1] for order in orders if order[0] != "a"}) > 1  # a's predecessor varies
    assert [e.name for e in entries] == list("abcdefgh")  # the caller's list is left as it was
