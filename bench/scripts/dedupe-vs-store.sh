#!/bin/bash
# dedupe-vs-store.sh DUP_SECONDS — fresh nats-server, stream with that duplicate window, flood 20 s then 100 s more; broker CPU per message in each
set -u
# The broker alone: is a growing stream's cost the duplicate window or the
# file store? Needs the peers (../shared/peers: its .venv with nats-py, and
# jsctl built: cargo build --release in rust_minimal, or JSCTL=path).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEERS=${PEERS:-$ROOT/../shared/peers}
JSCTL=${JSCTL:-$PEERS/rust_minimal/target/release/jsctl}
DUP=$1; P=15622; D=$(mktemp -d)
"$ROOT/.tools/bin/nats-server" -js -a 127.0.0.1 -p $P -sd $D > $D/nats.log 2>&1 &
NATS=$!
sleep 1
"$PEERS/.venv/bin/python" - <<PY
import asyncio, nats
from nats.js.api import StreamConfig, StorageType
async def main():
    nc = await nats.connect("nats://127.0.0.1:$P")
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="WEBHOOKS", subjects=["webhooks.>"], storage=StorageType.FILE, duplicate_window=$DUP))
    print((await js.stream_info("WEBHOOKS")).config.duplicate_window)
    await nc.close()
asyncio.run(main())
PY
cpu() { awk '{print $14+$15}' /proc/$NATS/stat; }
for secs in 20 100; do
  c0=$(cpu)
  out=$(NATS_URL=nats://127.0.0.1:$P "$JSCTL" flood "$PEERS/payloads/github_push.json" $secs 512 4 2>&1 | tail -1)
  c1=$(cpu)
  acked=$(echo "$out" | grep -o 'acked=[0-9]*' | cut -d= -f2)
  rate=$(echo "$out" | grep -o 'rate=[0-9.]*' | cut -d= -f2)
  echo "dup=${DUP}s segment=${secs}s acked=$acked rate=$rate broker_us_per_msg=$(echo "scale=1; ($c1-$c0)*1000000/$(getconf CLK_TCK)/$acked" | bc)"
done
kill $NATS; wait $NATS 2>/dev/null; rm -rf $D
