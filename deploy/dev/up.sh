#!/usr/bin/env bash
# tidegate dev mode in one command: installs nats-server if it is missing,
# builds the CLI, the ingress and the workers, then runs `tidegate up`
# (nats-server with JetStream in .tidegate/, the ingress with
# deploy/examples/tidegate.toml, tidegate-forward delivering to a dev sink,
# tidegate-github-sync with deploy/examples/github-sync.toml).
# Arguments go to `tidegate up`, e.g. --listen 127.0.0.1:9090. Ctrl-C stops.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

# Debian installs nats-server in /usr/sbin, which a regular user's PATH lacks.
if ! command -v nats-server >/dev/null && [ ! -x /usr/sbin/nats-server ]; then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null; then
    as_root=(sudo)
  else
    echo "nats-server is missing and this is not root without sudo: install the nats-server package" >&2
    exit 1
  fi
  echo "installing nats-server (apt-get)"
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nats-server
  # The package starts a system nats-server on 127.0.0.1:4222 where systemd
  # runs; `tidegate up` starts its own with JetStream on that port.
  if command -v systemctl >/dev/null && systemctl is-active --quiet nats-server 2>/dev/null; then
    echo "stopping and disabling the nats-server system service the package started"
    "${as_root[@]}" systemctl disable --now nats-server
  fi
fi

# Only the binaries dev mode runs, so work in progress elsewhere in the
# workspace cannot stop it.
cargo build --release -p cli -p ingress -p workers

exec "$repo_root/target/release/tidegate" up "$@"
