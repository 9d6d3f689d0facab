#!/usr/bin/env python3
"""Send an NDJSON file to ingest over HTTP in batches, as a client would.

Ingest is all or nothing: a batch with an invalid event is answered 422 with
the index of every invalid event and nothing is published. This client then
drops exactly those events and sends the rest again, so every valid event is
published once. It writes the events that were accepted, in send order, for
the offline reference, and fails if ingest rejected anything valid or
accepted anything it reported invalid.

Against a secured ingest: --ca (its CA) and --token-file (a token with the
ingest scope); see scripts/e2e_http.py.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_http  # noqa: E402


def post(client, url, lines):
    body = ("\n".join(lines) + "\n").encode()
    status, _, raw = client.request("POST", url, body, {"Content-Type": "application/x-ndjson"}, timeout=30)
    return status, json.loads(raw or b"{}")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ingest", required=True, help="base URL, e.g. http://127.0.0.1:8081")
    ap.add_argument("--event", required=True)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--accepted-out", required=True)
    ap.add_argument("file")
    e2e_http.add_args(ap)
    a = ap.parse_args()
    client = e2e_http.Client.from_args(a)
    url = f"{a.ingest}/v1/events/{a.event}"
    lines = [l.rstrip("\n") for l in open(a.file, encoding="utf-8") if l.strip()]
    accepted, rejected, status_counts = [], 0, {}
    with open(a.accepted_out, "w", encoding="utf-8") as out:
        for i in range(0, len(lines), a.batch):
            batch = lines[i:i + a.batch]
            while batch:
                status, body = post(client, url, batch)
                status_counts[status] = status_counts.get(status, 0) + 1
                if status == 202:
                    if body.get("accepted") != len(batch):
                        sys.exit(f"202 accepted {body.get('accepted')} of {len(batch)} events")
                    for l in batch:
                        out.write(l + "\n")
                    accepted.extend(batch)
                    break
                if status == 422:
                    bad = {d["index"] for d in body.get("details", [])}
                    if not bad or any(j < 0 or j >= len(batch) for j in bad):
                        sys.exit(f"422 without usable details: {body}")
                    for d in body["details"][:3]:
                        print(f"  rejected as expected: {d}", file=sys.stderr)
                    rejected += len(bad)
                    batch = [l for j, l in enumerate(batch) if j not in bad]
                    continue
                sys.exit(f"unexpected {status} from ingest: {body}")
    print(f"sent {len(lines)} lines over HTTP: {len(accepted)} accepted, {rejected} rejected; statuses {status_counts}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
