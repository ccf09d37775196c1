"""The two steps `go build` runs for an edited main package — its compile and the link — read from the build's
dry run (`go build -n`), so that kodev can run them itself: a main-only edit then skips go's package
loading and build-cache checks (~100 ms of a ~300 ms build), and gives the same bytes (kodev/directbuild.py
decides when a recipe may stand in for go build, and checks that it does).

Two dry runs make a recipe. Go prints only what it would run, and after a build the main package is
cached, so one dry run adds a compiler flag that changes nothing but the package's cache key
(`-gcflags=PKG=-nolocalimports`: go passes that flag anyway) to show the compile; the other, plain, shows the
exact link, whose inputs (build info, -X flags) that flag would change. The link's input from the cache for
the main package is then replaced by the compile's output; a recipe that still names it is refused.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kodev.gosource import BuildFacts, build_facts

POLL_SECONDS = 0.02  # how often a running step asks whether it is given up
# The compile flag that only changes the main package's cache key (see above).
SHOW_COMPILE_FLAG = "-nolocalimports"
_HEREDOC = re.compile(r"^cat >(\S+) << 'EOF'")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')
_ENV_PREFIX = re.compile(r"^(\w+)=(?:'([^']*)'|(\S*))$")
# Dry-run lines that do nothing kodev must do: go's bookkeeping, the output moved into place, comments.
_IGNORED = re.compile(r"^(?:#.*|mkdir -p .*|go tool buildid -w .*|mv \S+/b001/exe/a\.out .*|rm -r(?: -)?f .*)?$")


class NoRecipe(Exception):
    """The dry run holds more than one main package's compile and link (cgo, assembly, embedded files, a
    dependency to build): go build stays the way to build it. The message says what was found."""


@dataclass(frozen=True)
class Step:
    """One tool run: its arguments (the tool first), directory and environment additions."""

    argv: tuple[str, ...]
    cwd: Path
    env: tuple[tuple[str, str], ...] = ()

    def run(self, environ: dict[str, str], given_up: Callable[[], bool] = lambda: False,
            prefix: tuple[str, ...] = ()) -> tuple[int, str] | None:
        """The exit code and output; None when `given_up` said so while it ran (asked every 20 ms: then the
        tool is killed). `prefix` goes before the tool (`nice -n 10`)."""
        with subprocess.Popen((*prefix, *self.argv), cwd=self.cwd, env={**environ, **dict(self.env)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            while True:
                try:
                    output, _ = process.communicate(timeout=POLL_SECONDS)
                    return process.returncode, output
                except subprocess.TimeoutExpired:
                    if given_up():
                        process.kill()
                        process.communicate()
                        return None


@dataclass(frozen=True)
class Recipe:
    """How go build compiles one main package and links its binary, its work files in `work`. Run with the
    package's files edited (same files, same `BuildFacts`), it writes the binary go build would write."""

    import_path: str
    work: Path
    files: tuple[tuple[Path, str], ...]  # the import configs: path, content
    compile: Step
    link: Step
    output: Path  # what the link writes
    sources: tuple[Path, ...]  # the package's files the compile reads
    facts: tuple[BuildFacts | None, ...]  # of each source, when the recipe was read
    inputs: tuple[Path, ...]  # build-cache files the steps read (gone: go build instead)
    build_info: str  # the build info go embeds (importcfg.link's modinfo line)

    def prepare(self) -> None:
        """The work directory, its import configs written."""
        self.output.parent.mkdir(parents=True, exist_ok=True)
        for path, content in self.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")

    def applies(self) -> bool:
        """Whether the package's files still build this way: the same facts, and the cached inputs there."""
        return (all(build_facts(path) == facts for path, facts in zip(self.sources, self.facts, strict=True))
                and all(path.is_file() for path in self.inputs))


def read_recipe(import_path: str, compile_script: str, link_script: str, cwd: Path, work: Path) -> Recipe:
    """The recipe in two dry runs of `go build` in `cwd` (see the module's docstring), for `work` as its
    work directory. Raises NoRecipe."""
    compiles, compile_files = _parse(compile_script, cwd, work)
    links, link_files = _parse(link_script, cwd, work)
    compile = _only(compiles, "compile", "the compile dry run")
    link = _only(links, "link", "the link dry run")
    if any(_tool(step) == "compile" for step in links) or len(compiles) != 2:
        raise NoRecipe("the dry runs hold other packages' compiles")
    if any(flag in compile.argv for flag in ("-embedcfg", "-asmhdr", "-symabis")):
        raise NoRecipe("the main package embeds files or has assembly")
    archive = _value(compile.argv, "-o")
    importcfg = _value(compile.argv, "-importcfg")
    linkcfg = _value(link.argv, "-importcfg")
    if archive != work / "b001" / "_pkg_.a" or importcfg not in compile_files or linkcfg not in link_files:
        raise NoRecipe("the compile and link do not read and write the work files go names")
    cached = _packagefile(link_files[linkcfg], import_path)
    link_text = link_files[linkcfg].replace(f"packagefile {import_path}={cached}\n",
                                            f"packagefile {import_path}={archive}\n")
    link = Step(tuple(str(archive) if arg == cached else arg for arg in link.argv), link.cwd, link.env)
    if cached in link_text or cached in link.argv:
        raise NoRecipe("the link still reads the cached main package")
    sources = tuple(compile.cwd / arg for arg in compile.argv if arg.endswith(".go"))
    configs = {importcfg: compile_files[importcfg], linkcfg: link_text}
    inputs = tuple(Path(value) for text in configs.values() for value in _packagefiles(text)
                   if not value.startswith(str(work)))
    modinfo = next((line for line in link_text.splitlines() if line.startswith("modinfo ")), "")
    return Recipe(import_path=import_path, work=work, files=tuple(configs.items()), compile=compile, link=link,
                  output=_value(link.argv, "-o"), sources=sources, facts=tuple(build_facts(s) for s in sources),
                  inputs=inputs, build_info=modinfo)


def _parse(script: str, cwd: Path, work: Path) -> tuple[list[Step], dict[Path, str]]:
    """A dry run's tool runs and the files it writes (heredocs), $WORK being `work`. Raises NoRecipe for any
    line kodev does not know how to run."""
    steps: list[Step] = []
    files: dict[Path, str] = {}
    here = cwd
    lines = iter(script.replace("$WORK", str(work)).splitlines())
    for line in lines:
        heredoc = _HEREDOC.match(line)
        if heredoc:
            body = []
            for inner in lines:
                if inner == "EOF":
                    break
                body.append(inner + "\n")
            files[Path(heredoc.group(1))] = "".join(body)
        elif line.startswith("cd "):
            here = (cwd / line[3:]).resolve() if line[3:] != "." else cwd
        elif _IGNORED.match(line):
            continue
        else:
            steps.append(_step(line, here))
    return steps, files


def _step(line: str, cwd: Path) -> Step:
    tokens = [_unquote(token) for token in _TOKEN.findall(line)]
    env: list[tuple[str, str]] = []
    while tokens and (prefix := _ENV_PREFIX.match(tokens[0])) and not tokens[0].startswith("/"):
        env.append((prefix.group(1), prefix.group(2) or prefix.group(3) or ""))
        tokens.pop(0)
    if not tokens or not os.path.isabs(tokens[0]) or os.path.basename(tokens[0]) not in ("compile", "link"):
        raise NoRecipe(f"the dry run runs something besides compile and link: {line[:120]}")
    return Step(tuple(tokens), cwd, tuple(env))


def _unquote(token: str) -> str:
    """Go quotes an argument with strconv.Quote when it holds a space or a shell character."""
    if not token.startswith('"'):
        return token
    if "\\x" in token:  # a raw byte: Python's escapes would read a code point
        raise NoRecipe(f"an argument kodev cannot unquote exactly: {token[:60]}")
    value = ast.literal_eval(token)
    assert isinstance(value, str)
    return value


def _tool(step: Step) -> str:
    return os.path.basename(step.argv[0])


def _only(steps: list[Step], tool: str, where: str) -> Step:
    found = [step for step in steps if _tool(step) == tool]
    if len(found) != 1:
        raise NoRecipe(f"{where} holds {len(found)} {tool} steps, not one")
    return found[0]


def _value(argv: tuple[str, ...], flag: str) -> Path:
    if flag not in argv[:-1]:
        raise NoRecipe(f"the {os.path.basename(argv[0])} step has no {flag}")
    return Path(argv[argv.index(flag) + 1])


def _packagefiles(config: str) -> list[str]:
    return [line.split("=", 1)[1] for line in config.splitlines() if line.startswith("packagefile ")]


def _packagefile(config: str, import_path: str) -> str:
    for line in config.splitlines():
        if line.startswith(f"packagefile {import_path}="):
            return line.split("=", 1)[1]
    raise NoRecipe(f"the link does not name {import_path}")
