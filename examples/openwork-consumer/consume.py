#!/usr/bin/env python3
"""Turns tidegate-github-sync job results into openwork connector_sync_event rows.

Reads JSON from stdin: job results (schemas/json/job-result.v1.schema.json)
or dead letters (schemas/json/dead-letter.v1.schema.json), one per line, as
a NATS subscriber of `tidegate.results.github-sync.>` / `tidegate.dlq.github-sync`
prints them, or one `tidegate deliveries show <id> --json` document (its
`results` map). Writes one JSON row per line to stdout each time a row
changes, or with --sql a PostgreSQL upsert per change.

A row is keyed by connector.connectorSyncEventId, which is stable for one
sync (target + repository + head SHA): every delivery and every attempt of
the same push lands on the same row. Only results that carry a `connector`
object are sync events; others (lifecycle events, untracked pushes) are
ignored.

Standard library only: python3 consume.py [--sql] < results.jsonl
"""

import json
import sys

# Final statuses a later `skipped` (a duplicate delivery of the same head,
# whose idempotency key had completed) or `running` must not overwrite.
FINAL = {"completed", "partial", "failed"}


def row_from(document):
    """The connector_sync_event row a result or dead letter describes, or None."""
    connector = document.get("connector")
    if not connector:
        return None
    if "status" in document:
        status = document["status"]
        # retrying: the sync failed this attempt and will run again.
        status = "running" if status == "retrying" else status
        completed_at = document["completed_at"]
    else:  # a dead letter: the worker gave up
        status = "failed"
        completed_at = document["failed_at"]
    counts = document.get("counts", {})
    return {
        "id": connector["connectorSyncEventId"],
        "connector_type": connector["connectorType"],
        "connector_instance_id": connector["connectorInstanceId"],
        "connector_target_id": connector["connectorTargetId"],
        "status": status,
        "repository_full_name": connector["repositoryFullName"],
        "repository_id": connector.get("repositoryId"),
        "installation_id": connector.get("installationId"),
        "ref": connector["ref"],
        "head_sha": connector["headSha"],
        "delivery_id": connector["deliveryId"],
        "created_count": counts.get("created", 0),
        "updated_count": counts.get("updated", 0),
        "deleted_count": counts.get("deleted", 0),
        "skipped_count": counts.get("skipped", 0),
        "failures": [{"path": f["item"], "error": f["error"]} for f in document.get("failures", [])],
        "error": document.get("error") or document.get("detail", {}).get("reason"),
        "attempts": document.get("attempts"),
        "completed_at": completed_at if status in FINAL else None,
        "updated_at": completed_at,
    }


def merge(current, new):
    """The row to keep: a final status stands against later non-final ones."""
    if current is None:
        return new
    if current["status"] in FINAL and new["status"] not in FINAL:
        return current
    if new["updated_at"] < current["updated_at"] and current["status"] in FINAL:
        return current
    return new


def documents(text):
    """Every result or dead letter in the input."""
    text = text.strip()
    if not text:
        return
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("results"), dict):
        for result in whole["results"].values():
            if result:
                yield result
        return
    if isinstance(whole, dict):
        yield whole
        return
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


def sql(row):
    def literal(value):
        if value is None:
            return "NULL"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, list):
            value = json.dumps(value)
        return "'" + str(value).replace("'", "''") + "'"

    columns = list(row)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c != "id")
    return (
        f"INSERT INTO connector_sync_event ({', '.join(columns)}) "
        f"VALUES ({', '.join(literal(row[c]) for c in columns)}) "
        f"ON CONFLICT (id) DO UPDATE SET {updates} "
        "WHERE connector_sync_event.status NOT IN ('completed', 'partial', 'failed') "
        "OR EXCLUDED.status IN ('completed', 'partial', 'failed');"
    )


def main(argv):
    as_sql = "--sql" in argv[1:]
    rows = {}
    for document in documents(sys.stdin.read()):
        new = row_from(document)
        if new is None:
            continue
        kept = merge(rows.get(new["id"]), new)
        if kept is not rows.get(new["id"]):
            rows[new["id"]] = kept
            print(sql(kept) if as_sql else json.dumps(kept, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
