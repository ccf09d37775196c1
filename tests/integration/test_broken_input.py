"""Bad input to kodev (issue 6): a broken kodev.toml or go.mod in watch mode, a service that is not `package
main`, a kodata that is a file, `go` killed by a signal. Real Go, real dockerd.

In watch mode a mistake is an `error` event that does not end kodev (`fatal` false): the last good state
keeps serving and the save that fixes it is built. At start, or in `kodev build`, it is the one fatal error
and exit code 1, without a traceback. Each test reads kodev's `--json` events (tests/integration/
json_events.py), never its human text; an error's message is checked for what it names (the file, the
command, the signal).
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from tests.integration.modules import (
    Module,
    run_json,
    server_service,
    set_greeting,
    stop_cleanly,
    watching,
    write,
)
from tests.integration.process import fetch, free_port

KEEPS_RUNNING = "kodev keeps running with the last good kodev.toml until you save one that works."


def test_broken_kodev_toml_and_go_mod_keep_the_last_good_state(mod: Module, delivery: str) -> None:
    with watching(mod) as s:
        old = s.container_id()
        config = mod.path / "kodev.toml"
        good = config.read_text()

        mark = s.events.mark()
        config.write_text(good + "\n[services.broken\ncommand = \n")
        rejected = s.events.wait("config.rejected", mark, timeout=30)
        assert Path(rejected["path"]) == config, rejected
        error = s.events.wait("error", mark, timeout=10)
        assert error["kind"] == "ConfigError" and not error["fatal"], error
        # One paragraph: what is wrong (in kodev.toml), and that the last good file stays until the next save.
        assert "kodev.toml" in error["message"] and error["message"].endswith(KEEPS_RUNNING), error
        assert "\n" not in error["message"], error
        said = [e.get("message") or e.get("text") or "" for e in s.events.all(since=mark)]
        assert not [m for m in said if "run again" in m], said
        assert rejected["message"] == error["message"], (rejected, error)
        assert s.events.count("config.reloaded", since=mark) == 0, s.proc.output()
        assert s.container_id() == old
        assert "Hello, kodev!" in (fetch(s.url) or "")

        # The last good config still drives the builds.
        set_greeting(mod, "Still good")
        s.page("Still good, kodev!", timeout=60)
        serving = s.container_id()
        config.write_text(good)

        mark = s.events.mark()
        go_mod = mod.path / "go.mod"
        good_mod = go_mod.read_text()
        go_mod.write_text(good_mod + "\nthis is not a go.mod directive\n")
        error = s.events.wait("error", mark, timeout=60)
        assert not error["fatal"] and "go.mod" in error["message"], error
        time.sleep(1)
        assert s.container_id() == serving, "the old container was replaced after go.mod broke"
        assert "Still good, kodev!" in (fetch(s.url) or ""), "the old container stopped serving"
        assert s.proc.process.poll() is None

        go_mod.write_text(good_mod)
        set_greeting(mod, "Recovered")
        s.page("Recovered, kodev!", timeout=60)
        assert s.events.fatal() == [], s.proc.output()
        stop_cleanly(s)


def test_service_of_a_package_that_is_not_main_is_a_clear_error_at_start(mod: Module) -> None:
    write(mod.path / "kodev.toml", f'repo = "{mod.repo}"\n'
          + server_service(mod.name("lib"), free_port(), command="./internal/greeting"))
    done = run_json(["watch"], mod.path, timeout=90)
    assert done.returncode == 1, f"exit code {done.returncode}\n{done.output()}"
    error = done.error()
    assert re.search(r"internal/greeting.*package main", error["message"], re.S), error
    assert "Traceback" not in done.stderr
    assert not mod.client.api.containers(all=True, filters={"name": mod.uid})


def test_kodata_that_is_a_file_is_a_clear_error_and_fixing_it_recovers(mod: Module) -> None:
    kodata = mod.path / "cmd/server/kodata"
    saved = mod.path.parent / "kodata-saved"
    shutil.move(kodata, saved)
    kodata.write_text("not a directory\n")

    done = run_json(["build", "./cmd/server"], mod.path, timeout=90)
    assert done.returncode == 1, done.output()
    assert "cmd/server/kodata is not a directory" in done.error()["message"], done.output()
    assert "Traceback" not in done.stderr

    with watching(mod, started=False) as s:
        error = s.events.wait("error", match=lambda e: "cmd/server/kodata is not a directory" in e["message"],
                              timeout=120)
        assert not error["fatal"], error
        s.events.wait("watching", timeout=30)
        assert s.proc.process.poll() is None, s.proc.output()
        assert fetch(s.url) is None
        # Make kodata a directory again, in one rename: that save must be built like any other.
        kodata.unlink()
        shutil.move(saved, kodata)
        try:
            s.page("Hello, kodev!", timeout=20)
        except AssertionError as exc:
            raise AssertionError(f"kodata became a directory again, but nothing was rebuilt: {exc}") from None
        assert s.events.fatal() == [], s.proc.output()


KILLING_GO = '''#!/bin/sh
# `go`, but a `go build` is killed by {signal} (as the out-of-memory killer would) while {marker} exists.
if [ "$1" = build ] && [ -e "{marker}" ]; then
  kill -{signal} $$
fi
exec "{go}" "$@"
'''


def test_go_killed_by_a_signal_is_reported_as_such(mod: Module, tmp_path: Path, go_binary: str) -> None:
    wrapper, marker = tmp_path / "killedgo", tmp_path / "kill"
    wrapper.write_text(KILLING_GO.format(signal="KILL", marker=marker, go=go_binary))
    wrapper.chmod(0o755)
    with watching(mod, go=str(wrapper)) as s:
        old = s.container_id()
        mark = s.events.mark()
        marker.touch()
        set_greeting(mod, "Killed")
        error = s.events.wait("error", mark, timeout=60)
        assert not error["fatal"] and re.search(r"^go build of .* was killed by SIGKILL", error["message"]), error
        assert "out-of-memory" in error["message"], error
        failed = s.events.wait("build.failed", mark, timeout=10)
        assert failed["message"] == error["message"], (failed, error)
        assert s.container_id() == old
        assert "Hello, kodev!" in (fetch(s.url) or "")
        marker.unlink()
        set_greeting(mod, "Not killed")
        s.page("Not killed, kodev!", timeout=60)

    # `kodev build`, with another signal: named too, exit 1, no traceback.
    wrapper.write_text(KILLING_GO.format(signal="TERM", marker=marker, go=go_binary))
    marker.touch()
    done = run_json(["build", "--go", str(wrapper), "./cmd/hello"], mod.path, timeout=90)
    assert done.returncode == 1, done.output()
    assert re.search(r"^go build of .*cmd/hello was killed by SIGTERM", done.error()["message"]), done.output()
    assert "Traceback" not in done.stderr
