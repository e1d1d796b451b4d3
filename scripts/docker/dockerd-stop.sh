#!/usr/bin/env bash
# Stops the private Docker engine that scripts/docker/dockerd.sh started in <dir>, and only that
# one: the pid comes from <dir>/pid (written by dockerd itself). SIGTERM first so the engine stops
# its containers and its own containerd; SIGKILL after 30 s, then that engine's containerd by its
# own pid file. Finally unmounts whatever is left under <dir> and removes it.
#
#   scripts/docker/dockerd-stop.sh "$ROLLOUT_DOCKERD_DIR"
set -uo pipefail

dir="${1:-${ROLLOUT_DOCKERD_DIR:-}}"
if [[ -z "$dir" || ! -d "$dir" ]]; then
  echo "dockerd-stop.sh: usage: dockerd-stop.sh <dir printed by dockerd.sh>" >&2
  exit 1
fi

as_root() {
  if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

alive() { [[ -n "$1" ]] && as_root kill -0 "$1" 2>/dev/null; }

pid="$(cat "$dir/pid" 2>/dev/null || true)"
containerd_pid="$(as_root cat "$dir/exec/containerd/containerd.pid" 2>/dev/null || true)"

if alive "$pid"; then
  as_root kill -TERM "$pid"
  for _ in $(seq 1 300); do
    alive "$pid" || break
    sleep 0.1
  done
  if alive "$pid"; then
    echo "dockerd-stop.sh: dockerd $pid ignored SIGTERM for 30 s; killing it" >&2
    as_root kill -KILL "$pid" || true
  fi
fi
# Normally gone with its dockerd; after a SIGKILL it may linger.
if alive "$containerd_pid"; then
  as_root kill -TERM "$containerd_pid" || true
  sleep 1
  alive "$containerd_pid" && as_root kill -KILL "$containerd_pid"
fi

# Leftover mounts (overlay layers, shm) under the directory, deepest first.
awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
  as_root umount -l "$m" 2>/dev/null || true
done
as_root rm -rf "$dir"
echo "dockerd-stop.sh: stopped the engine in $dir"
