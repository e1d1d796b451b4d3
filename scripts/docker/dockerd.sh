#!/usr/bin/env bash
# Starts a private Docker engine for tests and CI, isolated from any other engine on the machine:
# its socket, data root, exec root, pid file and log all live in one fresh temp directory (or the
# directory given as $1). No bridge, no iptables: containers get `--network none` anyway, and no
# registry is needed because images are built locally (scripts/docker/build-images.sh).
#
#   eval "$(scripts/docker/dockerd.sh)"        # exports DOCKER_HOST and ROLLOUT_DOCKERD_DIR
#   scripts/docker/dockerd-stop.sh "$ROLLOUT_DOCKERD_DIR"
#
# Prints, on stdout only, two `export NAME=value` lines once the engine answers; the engine's own
# output goes to <dir>/log. Needs root (or password-less sudo) and `dockerd` on the PATH.
set -euo pipefail

if ! command -v dockerd >/dev/null 2>&1; then
  echo "dockerd.sh: dockerd not found (apt-get install -y docker.io)" >&2
  exit 1
fi

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

dir="${1:-}"
if [[ -z "$dir" ]]; then
  # Short path: a unix socket path must stay under ~100 bytes.
  dir="$(mktemp -d /tmp/rollout-dockerd.XXXXXX)"
else
  mkdir -p "$dir"
fi
dir="$(cd "$dir" && pwd)"
sock="$dir/docker.sock"

# The engine must outlive this script and must not hold our stdout (callers use $(...)).
as_root setsid dockerd \
  --bridge=none --iptables=false --ip6tables=false \
  -H "unix://$sock" \
  --data-root "$dir/data" \
  --exec-root "$dir/exec" \
  --pidfile "$dir/pid" \
  </dev/null >"$dir/log" 2>&1 &
launcher=$!

answers() {
  if command -v docker >/dev/null 2>&1; then
    as_root docker -H "unix://$sock" version >/dev/null 2>&1
  else
    [[ -S "$sock" ]] && as_root curl -fsS --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  fi
}

for _ in $(seq 1 300); do
  if answers; then
    if [[ $EUID -ne 0 ]]; then as_root chown "$(id -u)" "$sock"; fi
    echo "export DOCKER_HOST=unix://$sock"
    echo "export ROLLOUT_DOCKERD_DIR=$dir"
    exit 0
  fi
  if ! kill -0 "$launcher" 2>/dev/null && [[ ! -s "$dir/pid" ]]; then
    break
  fi
  sleep 0.1
done

echo "dockerd.sh: the engine did not answer on $sock; its log:" >&2
tail -n 40 "$dir/log" >&2 || true
"$(dirname "${BASH_SOURCE[0]}")/dockerd-stop.sh" "$dir" >&2 || true
exit 1
