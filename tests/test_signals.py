"""A Ctrl-C in the first moments of a kodev process: exit 130, no traceback, whatever SIGINT was inherited.

The SIGINT is real (os.kill of the process itself) and arrives at a chosen moment: while `kodev.cli` imports
typer, the slowest part of kodev's start-up — no timing involved.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# Runs the `kodev` entry point (kodev.__main__:main) and sends itself SIGINT when typer is being imported.
PROBE = """
import builtins, os, signal, sys
real_import = builtins.__import__
def hook(name, *args, **kwargs):
    if name == "typer":
        builtins.__import__ = real_import
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args, **kwargs)
builtins.__import__ = hook
sys.argv = ["kodev", "--help"]
from kodev.__main__ import main
main()
print("not interrupted")
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_ctrl_c_while_kodev_starts_exits_130_without_a_traceback(inherited: str) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60,
                          preexec_fn=_ignore_sigint if inherited == "ignored" else None, check=False)
    assert done.returncode == 130, f"exit code {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr
    assert "not interrupted" not in done.stdout
    assert "Usage" not in done.stdout  # it stopped where the signal came


def test_after_start_up_sigint_is_kodevs_own_even_if_ignored_before() -> None:
    code = ("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
            "from kodev.signals import interrupts_as_keyboard\n"
            "with interrupts_as_keyboard():\n"
            "    assert signal.getsignal(signal.SIGINT) is signal.getsignal(signal.SIGTERM)\n"
            "    try:\n        signal.raise_signal(signal.SIGINT)\n    except KeyboardInterrupt:\n        pass\n"
            "    else:\n        raise SystemExit('SIGINT raised nothing')\n"
            "assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # restored afterwards\nprint('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.stdout.strip() == "ok", done.stderr


# A SIGTERM whose KeyboardInterrupt is raised inside a __del__ (as in a weakref callback, where the real one
# landed): Python prints "Exception ignored" and goes on; the loop's next check still stops.
SWALLOWED = """
import gc, os, signal, time
from kodev.signals import interrupts_as_keyboard, raise_if_stop_asked

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the handler runs here, inside __del__

with interrupts_as_keyboard():
    raise_if_stop_asked()  # nothing asked yet
    try:
        Finalized()
        gc.collect()
        print("swallowed")
        raise_if_stop_asked()
        print("not stopped")
    except KeyboardInterrupt:
        print("stopped")
with interrupts_as_keyboard():
    raise_if_stop_asked()  # a new session starts unasked
    print("fresh")
"""


def test_an_interrupt_swallowed_by_a_finalizer_still_stops_the_loop() -> None:
    done = subprocess.run([sys.executable, "-c", SWALLOWED], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.stdout.split() == ["swallowed", "stopped", "fresh"], done.stdout + done.stderr
    assert done.stderr == "", done.stderr  # a lost interrupt is not news: kodev stops on it all the same


# A SIGTERM that lands while `go` is being started (the real _run of kodev/gobuild.py, a stand-in for `go`
# that records its pids): the interrupt is raised once the process is known, and its whole group ends.
STARTING = """
import os, signal, subprocess, sys, threading, time
from pathlib import Path
from kodev import gobuild
from kodev.signals import interrupts_as_keyboard
pids = Path(sys.argv[1])

class Go:
    def popen(self, args, cwd, extra_env=None):
        process = subprocess.Popen(["sh", "-c", f"echo $$ >> {pids}; sleep 30 & echo $! >> {pids}; wait"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True)
        while not (pids.exists() and len(pids.read_text().split()) == 2):
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # the user's SIGTERM: go runs, popen has not returned yet
        return process

with interrupts_as_keyboard():
    try:
        gobuild._run(Go(), ["build"], Path("."), {}, None, lambda: False)
    except KeyboardInterrupt:
        print("interrupted")
"""


def test_a_signal_as_go_starts_still_ends_its_process_group(tmp_path: Path) -> None:
    import os
    import time

    pids = tmp_path / "pids"
    done = subprocess.run([sys.executable, "-c", STARTING, str(pids)], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "interrupted", done.stdout + done.stderr

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state not in ("Z", "X")

    time.sleep(0.2)  # SIGKILL is delivered at once; let the killed become zombies or vanish
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 2
    left = [p for p in started if alive(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], f"{left} outlived the interrupt"
