# ruff: noqa: E501 - the dry runs are quoted as go prints them, a command per line
"""Reading a recipe from go build's dry runs (kodev/gorecipe.py): the two scripts as go prints them, cut to
what matters; what kodev cannot run exactly is refused. (Against the real toolchain:
tests/integration/test_direct_build.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from kodev.gorecipe import NoRecipe, read_recipe

TOOLS = "/go/pkg/tool/linux_amd64"
PKG = "example.com/m/cmd/app"
CACHED = "/cache/go-build/ab/abcd-d"
COMPILE = f'''mkdir -p $WORK/b001/

#
# {PKG}
#

cat >$WORK/b001/importcfg << 'EOF' # internal
# import config
packagefile fmt=/cache/go-build/11/fmt-d
EOF
cd /src/m
{TOOLS}/compile -o $WORK/b001/_pkg_.a -trimpath "/src/m/cmd/app=>{PKG};$WORK/b001=>" -p main -lang=go1.22 -complete -buildid a/a -goversion go1.27.3 -c=2 -nolocalimports -nolocalimports -importcfg $WORK/b001/importcfg -pack ./cmd/app/main.go ./cmd/app/more.go
go tool buildid -w $WORK/b001/_pkg_.a # internal
cat >$WORK/b001/importcfg.link << 'EOF' # internal
packagefile {PKG}=$WORK/b001/_pkg_.a
EOF
mkdir -p $WORK/b001/exe/
cd .
GOROOT='' {TOOLS}/link -o $WORK/b001/exe/a.out -importcfg $WORK/b001/importcfg.link -buildmode=exe $WORK/b001/_pkg_.a
'''
LINK = f'''mkdir -p $WORK/b001/
cat >$WORK/b001/importcfg.link << 'EOF' # internal
modinfo "0w\\xaf\\f\\x92t\\b\\x02A\\xe1path\\t{PKG}\\n"
packagefile {PKG}={CACHED}
packagefile fmt=/cache/go-build/11/fmt-d
packagefile runtime=/cache/go-build/22/runtime-d
EOF
mkdir -p $WORK/b001/exe/
cd .
GOROOT='' {TOOLS}/link -o $WORK/b001/exe/a.out -importcfg $WORK/b001/importcfg.link -X=runtime.godebugDefault=x=1 -buildmode=exe -buildid=b/b/b/b -buildid= -s -w {CACHED}
go tool buildid -w $WORK/b001/exe/a.out # internal
mkdir -p /tmp/out/
mv $WORK/b001/exe/a.out /tmp/out/app
rm -rf $WORK/b001/
'''


def read(compile_script: str = COMPILE, link_script: str = LINK) -> object:
    return read_recipe(PKG, compile_script, link_script, Path("/src/m"), Path("/work/1"))


def test_the_compile_and_the_link_are_read_with_the_compiles_output_linked() -> None:
    recipe = read_recipe(PKG, COMPILE, LINK, Path("/src/m"), Path("/work/1"))
    archive = "/work/1/b001/_pkg_.a"
    assert recipe.compile.argv[0] == f"{TOOLS}/compile" and recipe.compile.cwd == Path("/src/m")
    assert "/src/m/cmd/app=>example.com/m/cmd/app;/work/1/b001=>" in recipe.compile.argv  # unquoted, $WORK set
    assert recipe.link.argv[-1] == archive and CACHED not in recipe.link.argv
    assert recipe.link.env == (("GOROOT", ""),) and recipe.link.cwd == Path("/src/m")
    assert recipe.output == Path("/work/1/b001/exe/a.out")
    files = dict(recipe.files)
    assert f"packagefile {PKG}={archive}\n" in files[Path("/work/1/b001/importcfg.link")]
    assert CACHED not in files[Path("/work/1/b001/importcfg.link")]
    assert files[Path("/work/1/b001/importcfg")].endswith("packagefile fmt=/cache/go-build/11/fmt-d\n")
    assert recipe.sources == (Path("/src/m/cmd/app/main.go"), Path("/src/m/cmd/app/more.go"))
    assert set(recipe.inputs) == {Path("/cache/go-build/11/fmt-d"), Path("/cache/go-build/22/runtime-d")}
    assert recipe.build_info.startswith('modinfo "0w')


@pytest.mark.parametrize(("why", "script"), [
    ("cgo", COMPILE.replace("cd /src/m\n", "cd /src/m\n/go/pkg/tool/linux_amd64/cgo -objdir $WORK/b001/ x.go\n")),
    ("embedded files", COMPILE.replace("-pack", "-embedcfg $WORK/b001/embedcfg -pack")),
    ("assembly", COMPILE.replace("-pack", "-symabis $WORK/b001/symabis -pack")),
    ("a dependency compiled too", COMPILE.replace("go tool buildid -w $WORK/b001/_pkg_.a # internal\n",
                                                  f"{TOOLS}/compile -o $WORK/b002/_pkg_.a -p dep x.go\n")),
    ("a raw byte in an argument", COMPILE.replace("-p main", '-p "ma\\xffin"')),
    ("an unknown command", COMPILE.replace("cd .\n", "cp a b\ncd .\n")),
])
def test_what_kodev_cannot_run_exactly_is_no_recipe(why: str, script: str) -> None:
    with pytest.raises(NoRecipe):
        read(compile_script=script)


def test_a_link_that_does_not_name_the_main_package_is_no_recipe() -> None:
    with pytest.raises(NoRecipe):
        read(link_script=LINK.replace(f"packagefile {PKG}={CACHED}\n", ""))


def test_a_link_dry_run_that_compiles_is_no_recipe() -> None:
    with pytest.raises(NoRecipe):
        read(link_script=LINK.replace("cd .\n", f"cd /src/m\n{TOOLS}/compile -o $WORK/b001/_pkg_.a x.go\ncd .\n"))
