#!/usr/bin/env bash
# Runs the MCP conformance suite (@modelcontextprotocol/conformance, server checks) against the
# AgentDock gateway, inside a private network namespace (`unshare -n`, loopback only).
#
# Assumes `npm run build` was done: it builds nothing and runs the gateway from dist/.
# Every server scenario runs (`--suite all`); the ones that do not apply to a tools-only gateway are
# listed with a reason in tests/conformance/expected-failures.txt. See tests/conformance/README.md.
#
# Exit status: 0 when every failure is an expected one, 1 on an unexpected failure, 2 when the run
# could not happen (no build, no network namespace, the gateway did not start).
# CONFORMANCE_KEEP=1 keeps the results directory even when everything passed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cannot() {
  echo "conformance: cannot run: $*" >&2
  exit 2
}

if [[ "${ROLLOUT_CONFORMANCE_NETNS:-}" != "1" ]]; then
  for built in gateway gatewayHttp gatewayMcp gatewaySessions gatewayAdmin dockTypes; do
    [[ -f "dist/src/actors/tools/$built.js" ]] || cannot "dist/src/actors/tools/$built.js is missing; run npm run build first"
  done
  [[ -x node_modules/.bin/conformance ]] || cannot "node_modules/.bin/conformance is missing; run npm install"
  command -v unshare >/dev/null || cannot "unshare (util-linux) is not installed"
  unshare -n true 2>/dev/null || cannot "unshare -n is not permitted here (needs root or user namespaces)"
  exec unshare -n env ROLLOUT_CONFORMANCE_NETNS=1 bash "${BASH_SOURCE[0]}" "$@"
fi

# Inside the namespace: only a loopback interface, down until brought up.
if command -v ip >/dev/null; then
  ip link set lo up || cannot "could not bring the loopback interface up (ip link set lo up)"
elif command -v ifconfig >/dev/null; then
  ifconfig lo 127.0.0.1 up || cannot "could not bring the loopback interface up (ifconfig lo up)"
else
  cannot "neither ip (iproute2) nor ifconfig is installed to bring the loopback interface up"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rollout-conformance.XXXXXX")"
gateway_pid=""
cleanup() {
  if [[ -n "$gateway_pid" ]]; then
    kill "$gateway_pid" 2>/dev/null || true
    wait "$gateway_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

node tests/conformance/gatewayForConformance.mjs >"$work/gateway.out" 2>"$work/gateway.err" &
gateway_pid=$!
url=""
for _ in $(seq 1 100); do
  url="$(sed -n 's/^READY //p' "$work/gateway.out")"
  [[ -n "$url" ]] && break
  kill -0 "$gateway_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ -z "$url" ]]; then
  cat "$work/gateway.err" >&2
  cannot "the gateway did not start (logs in $work)"
fi
echo "conformance: gateway (through its auth-adding proxy) at $url"

node_modules/.bin/conformance list --server | sed -n 's/^ *- //p' >"$work/scenarios.txt"
[[ -s "$work/scenarios.txt" ]] || cannot "the conformance CLI listed no server scenarios"

# The suite's own baseline format, generated from expected-failures.txt (scenario names only).
{
  echo "server:"
  grep -v '^[[:space:]]*\(#\|$\)' tests/conformance/expected-failures.txt | awk '{ print "  - " $1 }'
} >"$work/expected-failures.yml"

set +e
node_modules/.bin/conformance server --url "$url" --suite all \
  --expected-failures "$work/expected-failures.yml" -o "$work/results" >"$work/conformance.log" 2>&1
cli_status=$?
node tests/conformance/summarize.mjs "$work/results" tests/conformance/expected-failures.txt "$work/scenarios.txt"
status=$?
set -e

echo "conformance: the suite's own baseline check exited $cli_status (1 also for stale entries)"
if [[ $status -ne 0 || "${CONFORMANCE_KEEP:-}" == "1" ]]; then
  echo "conformance: results, suite log and gateway logs kept in $work"
else
  rm -rf "$work"
fi
exit $status
