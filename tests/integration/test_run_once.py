"""`kodev run --json` to completion against a real Go and a real dockerd: the container's exit code and output
(its `service.log` and `exit` events), --rm and --no-rm, options after the path, env, env files and volumes
(tests/integration/run_support.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.run_support import Ctx, ctx, envtest, kodev_run, logs, module  # noqa: F401 - fixtures

# --- run to completion ---------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [0, 3])
def test_exit_code_and_output(module: Path, ctx: Ctx, code: int) -> None:  # noqa: F811
    name = ctx.name(f"exit{code}")
    done = kodev_run(["--name", name, "./cmd/hello", "--", "-exit", str(code), "bob"], module)
    assert done.returncode == code, done.output()  # and the `exit` event's (run_support.ran)
    logs = [(e["service"], e["stream"], e["line"]) for e in done.all("service.log")]
    assert logs == [(name, "stdout", "Hello, bob!")], done.output()  # the container's stdout, nothing else
    assert "Traceback" not in done.stderr
    assert ctx.container(name) is None  # --rm is the default


def test_options_after_the_path(module: Path, ctx: Ctx) -> None:  # noqa: F811
    # The synopsis: `kodev run PATH [options] [-- ARGS...]`.
    name = ctx.name("after")
    done = kodev_run(["./cmd/hello", "--name", name, "--no-rm", "--", "-exit", "4", "alice"], module)
    assert done.returncode == 4, done.output()
    assert logs(done) == ["Hello, alice!"], done.output()
    assert ctx.container(name) is not None, "--name/--no-rm after PATH were not taken as kodev's options"


def test_no_rm_keeps_the_stopped_container(module: Path, ctx: Ctx) -> None:  # noqa: F811
    name = ctx.name("kept")
    done = kodev_run(["--name", name, "--no-rm", "./cmd/hello", "--", "-exit", "5", "carol"], module)
    assert done.returncode == 5, done.output()
    assert "Hello, carol!" in logs(done, "stdout")
    kept = ctx.container(name)
    assert kept is not None, "--no-rm removed the container"
    assert kept.status == "exited"
    assert kept.attrs["State"]["ExitCode"] == 5
    assert kept.labels.get("dev.kodev.managed") == "true"
    assert kept.attrs["Config"]["Cmd"] == ["-exit", "5", "carol"]
    assert kept.image.id == ctx.client.images.get(ctx.ref("hello")).id
    # A container kept on purpose is not "left by a kodev that was killed": the next kodev leaves it alone.
    again = kodev_run(["--name", ctx.name("next"), "./cmd/hello", "--", "-exit", "0"], module)
    assert again.returncode == 0, again.output()
    assert ctx.container(kept.id) is not None, f"the --no-rm container was removed by the next kodev:\n{again.output()}"


# --- container settings --------------------------------------------------------------------------------

def test_env_and_env_file_reach_the_container_not_the_image(envtest: Path, ctx: Ctx) -> None:  # noqa: F811
    (envtest / "app.env").write_text("# settings\n\nKODEVT_FILE=from-file\n  # indented comment\n")
    done = kodev_run([
        "--name", ctx.name("env"), "-e", "KODEVT_A=one", "--env", "KODEVT_B=two words", "-e", "KODEVT_PASSED",
        "-e", "KODEVT_UNSET_XYZ", "--env-file", "app.env", "./cmd/printenv", "--",
        "KODEVT_A", "KODEVT_B", "KODEVT_PASSED", "KODEVT_FILE", "KODEVT_UNSET_XYZ",
    ], envtest, env={"KODEVT_PASSED": "from-host"})
    assert done.returncode == 0, done.output()
    assert logs(done, "stdout") == [
        "KODEVT_A=one", "KODEVT_B=two words", "KODEVT_PASSED=from-host", "KODEVT_FILE=from-file",
        "KODEVT_UNSET_XYZ="], done.output()
    assert logs(done, "stderr") == [], done.output()
    image_env = ctx.client.images.get(ctx.ref("printenv")).attrs["Config"].get("Env") or []
    leaked = [item for item in image_env if item.startswith("KODEVT_")]
    assert leaked == [], f"runtime env baked into the image: {leaked}"
    assert ctx.container(ctx.name("env")) is None


def test_relative_volume_is_mounted_read_only(envtest: Path, ctx: Ctx) -> None:  # noqa: F811
    data = envtest / "data"
    data.mkdir()
    data.chmod(0o755)  # the static base runs as 65532
    (data / "secret.txt").write_text("volume-content\n")
    (data / "secret.txt").chmod(0o644)
    done = kodev_run(["--name", ctx.name("vol"), "-v", "./data:/data:ro", "./cmd/printenv", "--",
                      "file:/data/secret.txt", "write:/data/new.txt"], envtest)
    assert done.returncode == 0, done.output()
    assert logs(done) == ["file:/data/secret.txt=volume-content", "write:/data/new.txt=ERR"], done.output()
    assert not (data / "new.txt").exists()
