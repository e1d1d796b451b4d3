#!/usr/bin/env bash
# The set-up step of `npm test` (its `pretest`) and of `.ci/run`: installs the Debian packages
# listed in scripts/system-packages.txt that are missing (as root, with apt-get), and the npm
# dependencies when node_modules was never installed. Not root and something missing: one line
# saying which command to run, and exit 1. Idempotent and quick when everything is there.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
list="scripts/system-packages.txt"

# A package counts as present when what it provides is found: a command on the PATH or in the
# system directories (root's PATH may lack /usr/sbin), a path, or (`dpkg`, for libraries whose
# files sit under an architecture's directory) dpkg's own record of the package.
provided() {
  local package="$1" what="$2"
  if [[ "$what" == dpkg ]]; then
    [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" == "install ok installed" ]]
    return
  fi
  if [[ "$what" == /* ]]; then [[ -e "$what" ]]; return; fi
  command -v "$what" >/dev/null 2>&1 || [[ -x "/usr/sbin/$what" || -x "/usr/bin/$what" ]]
}

missing=()
while read -r package provides _; do
  [[ -z "$package" || "$package" == \#* ]] && continue
  provided "$package" "$provides" || missing+=("$package")
done <"$list"

if ((${#missing[@]} > 0)); then
  if [[ $EUID -ne 0 ]]; then
    echo "setup: missing Debian packages (${missing[*]}); run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]} (from $list)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null
  for package in "${missing[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || { echo "setup: $package did not install" >&2; exit 1; }
  done
fi

# npm writes node_modules/.package-lock.json on every install: without it nothing was installed.
if [[ ! -f node_modules/.package-lock.json ]]; then
  echo "setup: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund </dev/null
fi
