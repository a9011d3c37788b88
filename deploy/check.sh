#!/usr/bin/env bash
# Validates everything under deploy/ that can be checked offline, and exits
# non-zero if anything fails:
#
#   systemd     systemd-analyze verify on every unit (ExecStart binaries that
#               are not installed here are stubbed in a temporary folder; any
#               output, even a warning such as an unknown key, fails), and
#               systemd-sysusers on tidegate.sysusers into a temporary root
#   kubernetes  every manifest and the example Secrets against the Kubernetes
#               1.37 JSON schemas (kubernetes-validate --strict: unknown keys
#               fail), then deploy/tools/check_kubernetes.py (references
#               between objects, configs, probes, nats-values.yaml)
#   compose     compose.yaml against the compose specification's schema
#               (check-jsonschema --builtin-schema vendor.compose-spec), and
#               its TOML configs parse
#   monitoring  promtool check rules, promtool test rules, promtool check
#               config; the dashboard is JSON
#   nats        nats-server -t on the single-node config and each cluster node
#
# Needs the Debian packages systemd (systemd-analyze, systemd-sysusers) and
# prometheus (promtool), python3 with venv; installs kubernetes-validate and
# check-jsonschema, pinned in deploy/tools/deploy-check.requirements.txt,
# into .tools/deploy-check/ (a venv; once), and nats-server with
# deploy/tools/install.sh. Both validators carry their schemas: no network
# is used once they are installed.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
deploy="$repo_root/deploy"
venv="$repo_root/.tools/deploy-check"
requirements="$deploy/tools/deploy-check.requirements.txt"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failures=()

pass() { echo "ok    $1"; }
fail() { echo "FAIL  $1" >&2; failures+=("$1"); }
# check NAME COMMAND...: runs COMMAND, shows its output only when it fails.
check() {
  local name="$1"; shift
  if "$@" >"$scratch/out" 2>&1; then pass "$name"; else cat "$scratch/out" >&2; fail "$name"; fi
}
# silent NAME COMMAND...: as check, but any output is a failure too.
silent() {
  local name="$1"; shift
  if "$@" >"$scratch/out" 2>&1 && [ ! -s "$scratch/out" ]; then
    pass "$name"
  else
    cat "$scratch/out" >&2; fail "$name"
  fi
}

require() { # require COMMAND DEBIAN_PACKAGE
  command -v "$1" >/dev/null 2>&1 || {
    echo "deploy/check.sh needs $1: apt-get install $2" >&2
    exit 2
  }
}
require systemd-analyze systemd
require systemd-sysusers systemd
require promtool prometheus
require python3 python3

install_validators() {
  local stamp="$venv/requirements.txt"
  if [ -x "$venv/bin/kubernetes-validate" ] && cmp -s "$requirements" "$stamp"; then
    return
  fi
  echo "installing kubernetes-validate and check-jsonschema into ${venv#"$repo_root"/} (PyPI)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --only-binary=:all: -r "$requirements"
  cp "$requirements" "$stamp"
}
install_validators
"$deploy/tools/install.sh"
nats_server="$repo_root/.tools/bin/nats-server"
[ -x "$nats_server" ] || nats_server="${TIDEGATE_NATS_SERVER:-$(command -v nats-server)}"

# --- systemd -----------------------------------------------------------------
# The units name /usr/local/bin/tidegate-* (and /bin/sh, /usr/bin/curl):
# systemd-analyze verify fails on a missing executable, so copy the units and
# point every missing one at an executable stub under $scratch.
units="$scratch/units"
mkdir -p "$units"
cp "$deploy"/systemd/*.service "$deploy"/systemd/*.timer "$deploy"/systemd/*.target "$units/"
# A stub only stands in for a program this repository builds (or
# nats-server): a misspelt binary name still fails.
built="$(grep -h -A1 '^\[\[bin\]\]' "$repo_root"/*/Cargo.toml | sed -n 's/^name = "\(.*\)"/\1/p')"
for path in $(sed -n 's/^Exec[A-Za-z]*=[-@:+!]*\(\/[^ ]*\).*/\1/p' "$units"/*.service | sort -u); do
  if [ ! -x "$path" ]; then
    case "$path" in
      /usr/local/bin/nats-server) ;;
      /usr/local/bin/*)
        if ! grep -qx "$(basename "$path")" <<<"$built"; then
          fail "deploy/systemd runs $path, which no crate in this repository builds"
          continue
        fi ;;
    esac
    mkdir -p "$scratch/stub$(dirname "$path")"
    printf '#!/bin/sh\nexit 0\n' >"$scratch/stub$path"
    chmod +x "$scratch/stub$path"
    sed -i "s#\\([= ]\\)$path\\b#\\1$scratch/stub$path#g" "$units"/*.service
  fi
done
silent "systemd-analyze verify deploy/systemd/*" \
  env SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$units"/*.service "$units"/*.timer "$units"/*.target
mkdir -p "$scratch/sysroot/etc"
check "systemd-sysusers deploy/systemd/tidegate.sysusers" \
  systemd-sysusers --root="$scratch/sysroot" "$deploy/systemd/tidegate.sysusers"

# --- Kubernetes ----------------------------------------------------------------
check "kubernetes-validate --strict deploy/kubernetes" \
  "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version 1.37.0 \
  "$deploy"/kubernetes/tidegate/*.yaml "$deploy/kubernetes/examples/secrets.yaml"
check "deploy/kubernetes cross-references (check_kubernetes.py)" \
  "$venv/bin/python" "$deploy/tools/check_kubernetes.py"

# --- compose -----------------------------------------------------------------
check "compose.yaml against the compose specification" \
  "$venv/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$deploy/compose/compose.yaml"
check "deploy/compose/config/*.toml parse" \
  "$venv/bin/python" -c 'import sys, tomllib; [tomllib.load(open(p, "rb")) for p in sys.argv[1:]]' \
  "$deploy"/compose/config/*.toml

# --- monitoring --------------------------------------------------------------
check "promtool check rules" promtool check rules "$deploy/monitoring/tidegate.rules.yml"
check "promtool test rules" promtool test rules "$deploy/monitoring/tidegate.rules.test.yml"
check "promtool check config" promtool check config "$deploy/monitoring/prometheus.example.yml"
check "tidegate.dashboard.json is JSON" \
  "$venv/bin/python" -m json.tool "$deploy/monitoring/tidegate.dashboard.json"

# --- NATS --------------------------------------------------------------------
# The cluster's accounts read passwords from the environment.
nats_env=(TIDEGATE_NATS_PASSWORD=check TIDEGATE_ADMIN_PASSWORD=check NATS_SYS_PASSWORD=check)
check "nats-server -t deploy/nats/nats-server.conf" "$nats_server" -t -c "$deploy/nats/nats-server.conf"
for node in "$deploy"/nats/cluster/node-*.conf; do
  check "nats-server -t deploy/nats/cluster/$(basename "$node")" \
    env "${nats_env[@]}" "$nats_server" -t -c "$node"
done

if [ "${#failures[@]}" -gt 0 ]; then
  echo "deploy/check.sh: ${#failures[@]} check(s) failed: ${failures[*]}" >&2
  exit 1
fi
echo "deploy/check.sh: every check passed"
