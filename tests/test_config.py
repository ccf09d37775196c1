"""kodev.toml -> Config: every key of the schema, override semantics, and errors that name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from kodev.config import (
    CONFIG_NAME,
    DEFAULT_BASE,
    DEFAULT_REPO,
    BuildSettings,
    CommandConfig,
    Config,
    ServiceConfig,
    WatchSettings,
    find,
    load,
    parse,
)
from kodev.errors import ConfigError, KodevError

FULL = """
base = "scratch"
repo = "registry.local:5000/team"
platform = "linux/arm64"

[build]
env = ["CGO_ENABLED=0", "GOFLAGS=-mod=mod"]
flags = ["-trimpath", "-tags=netgo"]
ldflags = ["-s", "-w"]

[commands."./cmd/api"]
base = "static"
image = "my/api"
env = { GOEXPERIMENT = "loopvar", GODEBUG = "x=1" }
flags = ["-race"]
ldflags = ["-X main.version={{.Git.Tag}}"]

[commands."./cmd/worker"]
image = "worker"

[services.api]
command = "./cmd/api"
args = ["--port", "8080"]
env = { PORT = "8080", MODE = "dev" }
env_file = ".env"
ports = ["127.0.0.1:8080:8080/tcp"]
network = "devnet"
volumes = ["./data:/data:ro"]
user = "1000"
stop_timeout = 3
restart = false

[services.worker-1]
command = "./cmd/worker"
env = ["QUEUE=jobs"]

[watch]
poll = true
poll_interval_ms = 500
debounce_ms = 120
direct = false
ignore = ["**/testdata/**", "*.tmp"]
"""


@pytest.fixture
def cfg_path(tmp_path: Path) -> Path:
    return tmp_path / "proj" / CONFIG_NAME


def parse_error(text: str, path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        parse(text, path)
    message = str(info.value)
    assert str(path) in message, message
    return message


# --- every key -------------------------------------------------------------------------------------


def test_full_file_top_level(cfg_path: Path) -> None:
    config = parse(FULL, cfg_path)
    assert config.path == cfg_path
    assert config.root == cfg_path.parent
    assert config.base == "scratch"
    assert config.repo == "registry.local:5000/team"
    assert config.platform == "linux/arm64"
    assert config.describe() == str(cfg_path)


def test_full_file_build(cfg_path: Path) -> None:
    config = parse(FULL, cfg_path)
    assert config.build == BuildSettings(
        env=("CGO_ENABLED=0", "GOFLAGS=-mod=mod"),
        flags=("-trimpath", "-tags=netgo"),
        ldflags=("-s", "-w"),
    )


def test_full_file_commands(cfg_path: Path) -> None:
    config = parse(FULL, cfg_path)
    assert list(config.commands) == ["./cmd/api", "./cmd/worker"]
    assert config.commands["./cmd/api"] == CommandConfig(
        path="./cmd/api",
        base="static",
        image="my/api",
        build=BuildSettings(
            env=("GOEXPERIMENT=loopvar", "GODEBUG=x=1"),
            flags=("-race",),
            ldflags=("-X main.version={{.Git.Tag}}",),
        ),
    )
    worker = config.commands["./cmd/worker"]
    assert worker == CommandConfig(path="./cmd/worker", image="worker")
    assert worker.base is None
    assert worker.build == BuildSettings(env=None, flags=None, ldflags=None)


def test_full_file_services(cfg_path: Path) -> None:
    config = parse(FULL, cfg_path)
    assert set(config.services) == {"api", "worker-1"}
    assert config.services["api"] == ServiceConfig(
        name="api",
        command="./cmd/api",
        args=("--port", "8080"),
        env=("PORT=8080", "MODE=dev"),
        env_file=".env",
        ports=("127.0.0.1:8080:8080/tcp",),
        network="devnet",
        volumes=("./data:/data:ro",),
        user="1000",
        stop_timeout=3,
        restart=False,
    )
    # Only `command` given: everything else takes the dataclass defaults.
    assert config.services["worker-1"] == ServiceConfig(name="worker-1", command="./cmd/worker", env=("QUEUE=jobs",))
    worker = config.services["worker-1"]
    assert (worker.args, worker.ports, worker.volumes) == ((), (), ())
    assert (worker.env_file, worker.network, worker.user) == (None, None, None)
    assert worker.stop_timeout == 10
    assert worker.restart is True


def test_full_file_watch(cfg_path: Path) -> None:
    config = parse(FULL, cfg_path)
    assert config.watch == WatchSettings(poll=True, poll_interval_ms=500, debounce_ms=120, direct=False,
                                         ignore=("**/testdata/**", "*.tmp"))


def test_empty_file_gives_defaults(cfg_path: Path) -> None:
    config = parse("", cfg_path)
    assert config.base == DEFAULT_BASE == "static"
    assert config.repo == DEFAULT_REPO == "kodev.local"
    assert config.platform is None
    assert config.build == BuildSettings()
    assert dict(config.commands) == {}
    assert dict(config.services) == {}
    assert config.watch == WatchSettings()
    assert config.watch.poll is False
    assert config.watch.poll_interval_ms == 300
    assert config.watch.debounce_ms == 25
    assert config.watch.direct is True  # main-only edits compiled and linked without go build


def test_example_file_parses() -> None:
    example = Path(__file__).resolve().parent.parent / "kodev.toml.example"
    assert example.is_file(), "kodev.toml.example is part of the repository and documents every key"
    config = parse(example.read_text(encoding="utf-8"), example)
    assert "./cmd/server" in config.commands
    assert config.commands["./cmd/server"].build.flags == ()
    assert config.services["web"].command == "./cmd/server"


# --- env: list or table ----------------------------------------------------------------------------


def test_env_as_list_and_as_table_are_equivalent(cfg_path: Path) -> None:
    as_list = parse('[build]\nenv = ["A=1", "B=two=2", "C="]\n', cfg_path)
    as_table = parse('[build]\nenv = { A = "1", B = "two=2", C = "" }\n', cfg_path)
    assert as_list.build.env == ("A=1", "B=two=2", "C=")
    assert as_table.build.env == as_list.build.env


def test_service_env_table(cfg_path: Path) -> None:
    config = parse('[services.sv]\ncommand = "./cmd/s"\n[services.sv.env]\nX = "1"\nY = "y y"\n', cfg_path)
    assert config.services["sv"].env == ("X=1", "Y=y y")


# --- BuildSettings.over ----------------------------------------------------------------------------


def test_over_command_value_replaces_default() -> None:
    defaults = BuildSettings(env=("A=1", "B=2"), flags=("-trimpath", "-v"), ldflags=("-s", "-w"))
    command = BuildSettings(env=("B=3",), flags=("-race",))
    merged = command.over(defaults)
    assert merged.env == ("B=3",)  # replaced, not merged: A=1 is gone
    assert merged.flags == ("-race",)
    assert merged.ldflags == ("-s", "-w")  # unset in the command: the default


def test_over_empty_list_clears_default(cfg_path: Path) -> None:
    config = parse('[build]\nflags = ["-v"]\nldflags = ["-s"]\n[commands."./cmd/x"]\nflags = []\n', cfg_path)
    merged = config.commands["./cmd/x"].build.over(config.build)
    assert merged.flags == ()
    assert merged.ldflags == ("-s",)
    assert merged.env is None


def test_over_nothing_set_gives_defaults() -> None:
    defaults = BuildSettings(env=("A=1",), flags=("-v",), ldflags=None)
    assert BuildSettings().over(defaults) == defaults


# --- errors: file and dotted key -------------------------------------------------------------------


def test_unknown_top_level_key(cfg_path: Path) -> None:
    message = parse_error('colour = "blue"\n', cfg_path)
    assert "key 'colour'" in message
    assert "unknown key" in message


def test_unknown_key_inside_command(cfg_path: Path) -> None:
    message = parse_error('[commands."./cmd/x"]\nimage = "x"\nbogus = 1\n', cfg_path)
    assert """key 'commands."./cmd/x".bogus'""" in message
    assert "unknown key" in message


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ('[build]\nflags = "-trimpath"\n', "build.flags", "got a string"),
        ('[commands."./cmd/x"]\nldflags = "-s"\n', 'commands."./cmd/x".ldflags', "got a string"),
        ('[services.sv]\ncommand = "./cmd/s"\nports = "8080:8080"\n', "services.sv.ports", "got a string"),
        ('[watch]\nignore = "*.tmp"\n', "watch.ignore", "got a string"),
        ('[services.sv]\ncommand = "./cmd/s"\nstop_timeout = true\n', "services.sv.stop_timeout", "got a boolean"),
        ("[watch]\ndebounce_ms = false\n", "watch.debounce_ms", "got a boolean"),
        ("[watch]\npoll_interval_ms = -5\n", "watch.poll_interval_ms", "non-negative"),
        ("[watch]\npoll_interval_ms = 1.5\n", "watch.poll_interval_ms", "got a number"),
        ('[watch]\npoll = "yes"\n', "watch.poll", "got a string"),
        ('[services.sv]\ncommand = "./cmd/s"\nrestart = 1\n', "services.sv.restart", "got an integer"),
        ('[build]\nldflags = ["-s", 1]\n', "build.ldflags", "list"),
        ('[commands."./cmd/x"]\nflags = ["-v", true]\n', 'commands."./cmd/x".flags', "list"),
        ('[services.sv]\ncommand = "./cmd/s"\nargs = [1, 2]\n', "services.sv.args", "list"),
        ("base = 1\n", "base", "got an integer"),
        ('repo = ["a"]\n', "repo", "got a list"),
        ("platform = true\n", "platform", "got a boolean"),
        ('[commands."./cmd/x"]\nimage = 3\n', 'commands."./cmd/x".image', "got an integer"),
        ('[services.sv]\ncommand = ["./cmd/s"]\n', "services.sv.command", "got a list"),
        ('build = "fast"\n', "build", "expected a table"),
        ('[commands]\n"./cmd/x" = "x"\n', 'commands."./cmd/x"', "expected a table"),
        ('services = { sv = 1 }\n', "services.sv", "expected a table"),
        ('[build]\nenv = "A=1"\n', "build.env", "KEY=VALUE"),
        ('[build]\nenv = { A = 1 }\n', "build.env", "got a table"),
    ],
)
def test_wrong_types(cfg_path: Path, text: str, key: str, expected: str) -> None:
    message = parse_error(text, cfg_path)
    assert f"key '{key}'" in message
    assert expected in message


@pytest.mark.parametrize(
    ("text", "key", "item"),
    [
        ('[build]\nenv = ["CGO_ENABLED"]\n', "build.env", "CGO_ENABLED"),
        ('[commands."./cmd/x"]\nenv = ["A=1", "NOEQUALS"]\n', 'commands."./cmd/x".env', "NOEQUALS"),
        ('[services.sv]\ncommand = "./cmd/s"\nenv = ["=value"]\n', "services.sv.env", "=value"),
    ],
)
def test_env_item_without_equals(cfg_path: Path, text: str, key: str, item: str) -> None:
    message = parse_error(text, cfg_path)
    assert f"key '{key}'" in message
    assert f'"{item}" is not of the form KEY=VALUE' in message


def test_unknown_key_in_each_table(cfg_path: Path) -> None:
    for text, key in [
        ("[build]\ngcflags = []\n", "build.gcflags"),
        ('[services.web]\ncommand = "./cmd/w"\nimage = "x"\n', "services.web.image"),
        ("[watch]\ninterval = 1\n", "watch.interval"),
    ]:
        message = parse_error(text, cfg_path)
        assert f"key '{key}'" in message, (text, message)


def test_malformed_toml_names_the_file(cfg_path: Path) -> None:
    message = parse_error('base = "static\n[build\n', cfg_path)
    assert "not valid TOML" in message


def test_error_is_a_kodev_error(cfg_path: Path) -> None:
    with pytest.raises(KodevError):
        parse("nope = 1\n", cfg_path)


@pytest.mark.parametrize("image", ["My/Api", "/api", "-api", ".api", "a//b", "", "api server", "api@x"])
def test_invalid_image_name(cfg_path: Path, image: str) -> None:
    message = parse_error(f'[commands."./cmd/x"]\nimage = "{image}"\n', cfg_path)
    assert """key 'commands."./cmd/x".image'""" in message
    assert f"'{image}' is not a valid image name" in message


@pytest.mark.parametrize("repo", ["Kodev.Local", "", "/kodev", "kodev local", "a//b"])
def test_invalid_repo(cfg_path: Path, repo: str) -> None:
    message = parse_error(f'repo = "{repo}"\n', cfg_path)
    assert "key 'repo'" in message
    assert "not a valid repository name" in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # builder.py tags images "<repo>/<image>:latest" (or "<image>:latest" when it has a '/'); these pass
        # validation but make references Docker rejects ("kodev.local/api:v1:latest", "api/:latest",
        # "kodev.local//api:latest").
        ('[commands."./cmd/x"]\nimage = "api:v1"\n', 'commands."./cmd/x".image'),
        ('[commands."./cmd/x"]\nimage = "team/api/"\n', 'commands."./cmd/x".image'),
        ('repo = "kodev.local/"\n', "repo"),
    ],
    ids=["image-with-tag", "image-trailing-slash", "repo-trailing-slash"],
)
def test_image_names_that_make_invalid_references(cfg_path: Path, text: str, key: str) -> None:
    message = parse_error(text, cfg_path)
    assert f"key '{key}'" in message


def test_valid_image_names(cfg_path: Path) -> None:
    config = parse('repo = "localhost:5000/my-team"\n[commands."./cmd/x"]\nimage = "ghcr.io/org/api_v2"\n',
                   cfg_path)
    assert config.repo == "localhost:5000/my-team"
    assert config.commands["./cmd/x"].image == "ghcr.io/org/api_v2"


def test_missing_service_command(cfg_path: Path) -> None:
    message = parse_error('[services.web]\nports = ["8080:8080"]\n', cfg_path)
    assert "key 'services.web.command'" in message
    assert "missing" in message


def test_quoted_service_name_in_key(cfg_path: Path) -> None:
    message = parse_error('[services."my.web"]\nstop_timeout = "soon"\ncommand = "./cmd/w"\n', cfg_path)
    assert """key 'services."my.web".stop_timeout'""" in message


@pytest.mark.parametrize(("name", "key"), [("a", "services.a"), ("7", "services.7"), ('"my web"', 'services."my web"'),
                                           ('"-web"', 'services.-web'), ('"_x"', 'services._x'),
                                           ('"ümlaut"', 'services.ümlaut'), ('"a/b"', 'services."a/b"')])
def test_service_names_docker_refuses_are_config_errors(cfg_path: Path, name: str, key: str) -> None:
    """The service name is the container's: Docker refuses a one-letter or odd one only at creation, after a
    full build, so kodev refuses it when reading the file, naming the key."""
    message = parse_error(f'[services.{name}]\ncommand = "./cmd/w"\n', cfg_path)
    assert f"key '{key}'" in message
    assert "cannot name a container" in message and "two or more" in message


@pytest.mark.parametrize("name", ["ab", "w1", "0start", "my-app_1.2", "Web"])
def test_service_names_docker_accepts(cfg_path: Path, name: str) -> None:
    key = f'"{name}"' if "." in name else name
    assert name in parse(f'[services.{key}]\ncommand = "./cmd/w"\n', cfg_path).services


# --- find ------------------------------------------------------------------------------------------


def test_find_in_start_directory(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    (tmp_path / CONFIG_NAME).write_text("")
    assert find(tmp_path) == tmp_path / CONFIG_NAME


def test_find_in_parent_up_to_module_root(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    (tmp_path / CONFIG_NAME).write_text("")
    deep = tmp_path / "cmd" / "server" / "internal"
    deep.mkdir(parents=True)
    assert find(deep) == tmp_path / CONFIG_NAME


def test_find_prefers_nearest(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    (tmp_path / CONFIG_NAME).write_text("")
    sub = tmp_path / "cmd"
    sub.mkdir()
    (sub / CONFIG_NAME).write_text("")
    assert find(sub) == sub / CONFIG_NAME


def test_find_stops_at_go_mod(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/outer\n")
    (tmp_path / CONFIG_NAME).write_text("")  # above the inner module: must not be used
    inner = tmp_path / "inner"
    (inner / "cmd").mkdir(parents=True)
    (inner / "go.mod").write_text("module example.com/inner\n")
    assert find(inner / "cmd") is None
    assert find(inner) is None


def test_find_stops_at_git_root(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/outer\n")
    (tmp_path / CONFIG_NAME).write_text("")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    assert find(repo / "sub") is None


def test_find_ignores_directory_named_like_config(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    (tmp_path / CONFIG_NAME).write_text("")
    sub = tmp_path / "sub"
    (sub / CONFIG_NAME).mkdir(parents=True)
    assert find(sub) == tmp_path / CONFIG_NAME


# --- load ------------------------------------------------------------------------------------------


def test_load_explicit_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load(missing, tmp_path)
    assert str(missing) in str(info.value)


def test_load_explicit_relative_path_is_against_cwd(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "dev.toml").write_text('repo = "dev.local"\n')
    config = load(Path("conf/dev.toml"), tmp_path)
    assert config.repo == "dev.local"
    assert config.path == tmp_path / "conf" / "dev.toml"
    assert config.root == tmp_path / "conf"


def test_load_explicit_relative_missing_names_full_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(Path("missing.toml"), tmp_path)
    assert str(tmp_path / "missing.toml") in str(info.value)


def test_load_finds_nearest_file(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    (tmp_path / CONFIG_NAME).write_text('base = "scratch"\n')
    cwd = tmp_path / "cmd" / "x"
    cwd.mkdir(parents=True)
    config = load(None, cwd)
    assert config.base == "scratch"
    assert config.path == tmp_path / CONFIG_NAME
    assert config.root == tmp_path


def test_load_without_file_gives_defaults_at_cwd(tmp_path: Path) -> None:
    (tmp_path / "go.mod").write_text("module example.com/m\n")
    config = load(None, tmp_path)
    assert config == Config(root=tmp_path)
    assert config.path is None
    assert config.base == "static"
    assert config.repo == "kodev.local"
    assert config.describe() == "the built-in defaults"


def test_load_reports_parse_errors_with_path(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_NAME
    path.write_text("[watch]\npoll = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path, tmp_path)
    assert str(path) in str(info.value)
    assert "key 'watch.poll'" in str(info.value)


def test_load_undecodable_file(tmp_path: Path) -> None:
    path = tmp_path / CONFIG_NAME
    path.write_bytes(b'repo = "\xff\xfe"\n')
    with pytest.raises(ConfigError) as info:
        load(path, tmp_path)
    assert str(path) in str(info.value)


def test_compose_files_are_a_list_of_strings(tmp_path: Path) -> None:
    path = tmp_path / "kodev.toml"
    assert parse('compose = ["compose.yaml", "dev.yaml"]\n', path).compose == ("compose.yaml", "dev.yaml")
    with pytest.raises(ConfigError, match="compose"):
        parse('compose = "compose.yaml"\n', path)


def test_publish_repo_is_read_and_checked(cfg_path: Path) -> None:
    assert parse('[publish]\nrepo = "127.0.0.1:5000/team"\n', cfg_path).publish_repo == "127.0.0.1:5000/team"
    assert parse("", cfg_path).publish_repo is None
    message = parse_error('[publish]\nrepo = "Team"\n', cfg_path)
    assert "key 'publish.repo'" in message and "not a registry repository" in message
    assert "key 'publish.tags'" in parse_error('[publish]\ntags = ["x"]\n', cfg_path)
