#!/usr/bin/env bash
# Builds the sandbox images from the host's own files; no registry is involved (none is reachable
# on CI machines). Each image is a rootfs tarball made here and loaded with `docker import`, then
# a tiny Dockerfile on top adds a non-root user and the runtime settings.
#
#   rollout-python:local  the host's python3 binary, its standard library (tests, tkinter, idle,
#                         lib2to3, ensurepip, site-packages left out) and the shared libraries that
#                         `ldd` lists for the binary and its extension modules; runs as uid 10001.
#   rollout-node:local    the host's node binary and its shared libraries; runs as uid 10001. An MCP
#                         stdio server runs from a directory mounted read-only at /opt/mcp (or
#                         copied in by a Dockerfile FROM this image): `node /opt/mcp/server.js`.
#
#   scripts/docker/build-images.sh [--force] [python] [node]
#
# Uses the engine in DOCKER_HOST (see scripts/docker/dockerd.sh). Idempotent: an image already
# present is kept unless --force. The python used is $ROLLOUT_PYTHON, else /usr/bin/python3 when it
# exists, else the first python3 on the PATH; the node used is $ROLLOUT_NODE, else `node` on PATH.
set -euo pipefail

force=0
wanted=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    python | node) wanted+=("$arg") ;;
    *)
      echo "usage: build-images.sh [--force] [python] [node]" >&2
      exit 2
      ;;
  esac
done
((${#wanted[@]} > 0)) || wanted=(python node)

command -v docker >/dev/null 2>&1 || {
  echo "build-images.sh: the docker CLI is missing (apt-get install -y docker.io)" >&2
  exit 1
}
docker version >/dev/null 2>&1 || {
  echo "build-images.sh: no Docker engine answers at ${DOCKER_HOST:-the default socket} (scripts/docker/dockerd.sh starts one)" >&2
  exit 1
}

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sandbox_uid=10001

present() { docker image inspect "$1" >/dev/null 2>&1; }

# Copies a file into the staging root at its own path, following symlinks (the copy is a file).
stage_file() {
  local root="$1" file="$2"
  mkdir -p "$root$(dirname "$file")"
  cp -L "$file" "$root$file"
}

# Copies every shared library (and the dynamic loader) that ldd lists for the given ELF files.
stage_libs() {
  local root="$1"
  shift
  local lib
  ldd "$@" 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && NF > 1 { print $1 }' |
    sort -u |
    while read -r lib; do
      [[ -e "$root$lib" ]] || stage_file "$root" "$lib"
    done
}

# The files every image gets: /etc/passwd and /etc/group with root, the sandbox user and nobody
# (in the Dockerfile's context), an empty /tmp and the conventional mount point /opt/mcp.
stage_common() {
  local root="$1" context="$2"
  mkdir -p "$root/etc" "$root/tmp" "$root/opt/mcp" "$root/usr/bin" "$root/usr/local/bin" "$context"
  chmod 1777 "$root/tmp"
  : >"$root/etc/passwd"
  : >"$root/etc/group"
  cat >"$context/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
sandbox:x:$sandbox_uid:$sandbox_uid:rollout sandbox:/tmp:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
  cat >"$context/group" <<GROUP
root:x:0:
sandbox:x:$sandbox_uid:
nogroup:x:65534:
GROUP
}

# import <root> <base tag>: the staging root as an image with numeric root ownership.
import_rootfs() {
  local root="$1" tag="$2"
  tar -C "$root" --numeric-owner --owner=0 --group=0 -cf - . | docker import - "$tag" >/dev/null
}

build_on_top() {
  local context="$1" tag="$2" previous
  previous="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  # The classic builder: BuildKit is not installed with docker.io 20.10 and is not needed here.
  # Its output (a deprecation notice included) is shown only when the build fails.
  if ! DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$context" >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    return 1
  fi
  # A --force rebuild leaves the previous image untagged: remove it (kept if a container uses it).
  if [[ -n "$previous" && "$previous" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
    docker rmi "$previous" >/dev/null 2>&1 || true
  fi
}

build_python() {
  local tag=rollout-python:local
  if present "$tag" && ((force == 0)); then
    echo "$tag present (use --force to rebuild)"
    return
  fi
  local py="${ROLLOUT_PYTHON:-}"
  if [[ -z "$py" ]]; then
    if [[ -x /usr/bin/python3 ]]; then py=/usr/bin/python3; else py="$(command -v python3)"; fi
  fi
  local info exe stdlib version
  info="$("$py" -c 'import os, sys, sysconfig
print(os.path.realpath(sys.executable))
print(os.path.realpath(sysconfig.get_paths()["stdlib"]))
print("%d.%d" % sys.version_info[:2])')"
  exe="$(sed -n 1p <<<"$info")"
  stdlib="$(sed -n 2p <<<"$info")"
  version="$(sed -n 3p <<<"$info")"

  local root="$work/python-root" context="$work/python-context"
  stage_common "$root" "$context"
  stage_file "$root" "$exe"
  tar -C / -cf - \
    --exclude="${stdlib#/}/site-packages" --exclude="${stdlib#/}/dist-packages" \
    --exclude="${stdlib#/}/test" --exclude="${stdlib#/}/idlelib" --exclude="${stdlib#/}/tkinter" \
    --exclude="${stdlib#/}/turtledemo" --exclude="${stdlib#/}/lib2to3" \
    --exclude="${stdlib#/}/ensurepip" --exclude="${stdlib#/}/pydoc_data" \
    --exclude="${stdlib#/}/config-*" --exclude="${stdlib#/}/lib-dynload/_tkinter*" \
    "${stdlib#/}" | tar -C "$root" -xf -
  local modules=()
  if [[ -d "$stdlib/lib-dynload" ]]; then
    mapfile -t modules < <(find "$stdlib/lib-dynload" -name '*.so' ! -name '_tkinter*')
  fi
  stage_libs "$root" "$exe" "${modules[@]}"
  for name in python3 python "python$version"; do
    [[ -e "$root/usr/bin/$name" ]] || ln -s "$exe" "$root/usr/bin/$name"
  done

  import_rootfs "$root" rollout-python-base:local
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM rollout-python-base:local
COPY passwd group /etc/
ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp PYTHONDONTWRITEBYTECODE=1
LABEL rollout.image=python rollout.python.version=$version
USER $sandbox_uid:$sandbox_uid
WORKDIR /tmp
CMD ["python3"]
DOCKERFILE
  build_on_top "$context" "$tag"
  docker rmi rollout-python-base:local >/dev/null
  echo "$tag built from $exe (python $version)"
}

build_node() {
  local tag=rollout-node:local
  if present "$tag" && ((force == 0)); then
    echo "$tag present (use --force to rebuild)"
    return
  fi
  local node="${ROLLOUT_NODE:-$(command -v node)}"
  local exe
  exe="$(readlink -f "$node")"
  local root="$work/node-root" context="$work/node-context"
  stage_common "$root" "$context"
  stage_file "$root" "$exe"
  stage_libs "$root" "$exe"
  [[ -e "$root/usr/local/bin/node" ]] || ln -s "$exe" "$root/usr/local/bin/node"

  import_rootfs "$root" rollout-node-base:local
  local version
  version="$("$exe" --version)"
  cat >"$context/Dockerfile" <<DOCKERFILE
FROM rollout-node-base:local
COPY passwd group /etc/
ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/tmp NODE_ENV=production
LABEL rollout.image=node rollout.node.version=$version
USER $sandbox_uid:$sandbox_uid
WORKDIR /opt/mcp
CMD ["node"]
DOCKERFILE
  build_on_top "$context" "$tag"
  docker rmi rollout-node-base:local >/dev/null
  echo "$tag built from $exe (node $version)"
}

for image in "${wanted[@]}"; do
  "build_$image"
done
docker image ls --filter label=rollout.image --filter dangling=false --format '{{.Repository}}:{{.Tag}} {{.Size}}'
