#!/usr/bin/env python3
"""Compare what a running `serve` answers with the offline reference.

    python3 scripts/reference.py --schemas schemas/example \
        --events schemas/example/events.ndjson --at 2024-06-01T00:00:00Z --out ref.json
    python3 scripts/check_serve.py --ref ref.json --serve http://127.0.0.1:8080

For every view, every entity (or --sample N of them, fixed seed) and every
as-of time in ref.json it does

    GET  {serve}/v1/features/{view}/{entity}?at={t ms}

and, per view and as-of time, one batch request of up to 100 of those entities

    POST {serve}/v1/features/{view}   {"entities": [...], "at": t}

plus one lookup of an entity that never appeared (must be NOT_FOUND).

Rules: status PRESENT; integer features (count, sums/min/max/last of int
fields) must be JSON integers and equal; float features within --rtol
relative or --atol absolute, and written as JSON floats (3.0, never 3, as
the API promises); null == null; strings and bools exact. event_time must be
the newest accepted event at or before the lookup's time (ref.json's
"event_time_at"), or null when there is none; it may be epoch ms or an
RFC 3339 string naming the same millisecond.

Against a secured serve: --ca (its CA) and --token-file (a token with the
serve scope); --save-answers keeps every answer (see scripts/e2e_http.py).

Exit status: 0 all equal, 1 any mismatch, 2 serve unreachable / bad usage.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import urllib.error
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import Invalid, parse_rfc3339_ms  # noqa: E402  (our own RFC 3339 reader)
import e2e_http  # noqa: E402

# CLIENT sends every request: plain, or with the token and CA of the
# command line.
CLIENT = e2e_http.Client()

BATCH_MAX = 100
SAMPLE_SEED = 20240601


class Unreachable(Exception):
    pass


@dataclass
class Result:
    checked: int = 0
    mismatches: list[str] = field(default_factory=list)
    requests: int = 0

    def add(self, other: "Result") -> None:
        self.checked += other.checked
        self.mismatches.extend(other.mismatches)
        self.requests += other.requests


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def http_json(method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """Returns (HTTP status, decoded JSON body). Non-2xx answers with a JSON
    body are returned too: a NOT_FOUND may legitimately come as a 404."""
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        code, _, raw = CLIENT.request(method, url, data, headers, timeout)
    except (urllib.error.URLError, OSError) as e:
        raise Unreachable(f"{method} {url}: {e}") from None
    try:
        return code, json.loads(raw)
    except ValueError:
        return code, {"__not_json__": raw[:200].decode("utf-8", "replace")}


# ---------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------

def is_json_int(v: Any) -> bool:
    return type(v) is int  # not bool, not float


def same_value(ref: Any, got: Any, rtol: float, atol: float) -> bool:
    if ref is None:
        return got is None
    if isinstance(ref, bool):
        return type(got) is bool and got == ref
    if is_json_int(ref):
        # Ints must come back as JSON integers: 5.0 for a count is a bug.
        return is_json_int(got) and got == ref
    if isinstance(ref, float):
        # The API writes floats with a decimal point or exponent (3.0, not
        # 3), so a float feature must come back as a JSON float.
        if type(got) is not float:
            return False
        diff = abs(float(got) - ref)
        return diff <= atol or diff <= rtol * max(abs(ref), abs(float(got)))
    return type(got) is type(ref) and got == ref


def time_ms(v: Any) -> int | None:
    """An event_time/at from serve as ms: integer ms or RFC 3339 text."""
    if is_json_int(v):
        return v
    if isinstance(v, str):
        try:
            return parse_rfc3339_ms(v)
        except Invalid:
            return None
    return None


def caveat(meta: dict | None, view: str, event_time: int, t: int) -> str:
    """Why a mismatch might be legitimate: serve keeps only `retention` of
    history before an entity's newest event (event_time, the newest of all,
    not the one as of t), so values and event_time as of older times may be
    off, and state expires after ttl."""
    if not meta or view not in meta.get("views", {}):
        return ""
    vm = meta["views"][view]
    notes = []
    if t < event_time - vm["retention_ms"]:
        notes.append("as-of older than newest event - retention")
    if t > event_time + vm["ttl_ms"]:
        notes.append("as-of later than newest event + ttl")
    return f" [note: {'; '.join(notes)}]" if notes else ""


def compare_row(where: str, view: str, entity: str, t: int, ref_row: dict, row: Any,
                rtol: float, atol: float, note: str, expect_view: bool) -> Result:
    res = Result()

    def bad(msg: str) -> None:
        res.mismatches.append(f"{where}: {msg}{note}")

    if not isinstance(row, dict):
        bad(f"response is not a JSON object: {str(row)[:200]}")
        return res
    if "__not_json__" in row:
        bad(f"response is not JSON: {row['__not_json__']!r}")
        return res
    if expect_view and row.get("view") != view:
        bad(f"view {row.get('view')!r}, want {view!r}")
    if row.get("entity") != entity:
        bad(f"entity {row.get('entity')!r}, want {entity!r}")
    if expect_view and "at" in row and time_ms(row["at"]) != t:
        bad(f"at {row['at']!r}, want {t}")
    if row.get("status") != "PRESENT":
        bad(f"status {row.get('status')!r}, want 'PRESENT'")
        return res
    feats = row.get("features")
    if not isinstance(feats, dict):
        bad(f"features is {feats!r}, want an object")
        return res
    want = ref_row["at"][str(t)]
    statuses = row.get("feature_status", {})
    if not isinstance(statuses, dict):
        bad(f"feature_status is {statuses!r}, want an object")
        statuses = {}
    for name, ref_v in want.items():
        res.checked += 1
        overflow = isinstance(ref_v, dict) and ref_v.get("status") == "OVERFLOW"
        if name not in feats:
            bad(f"feature {name} missing, want {ref_v!r}")
        elif overflow and (feats[name] is not None or statuses.get(name) != "OVERFLOW"):
            bad(f"feature {name} = {json.dumps(feats[name])} with status {statuses.get(name)!r}, "
                f"want null with status 'OVERFLOW'")
        elif not overflow and name in statuses:
            bad(f"feature {name} has status {statuses[name]!r}, want an ordinary value {json.dumps(ref_v)}")
        elif not overflow and not same_value(ref_v, feats[name], rtol, atol):
            bad(f"feature {name} = {json.dumps(feats[name])}, want {json.dumps(ref_v)}")
    for name in sorted(set(statuses) - set(want)):
        bad(f"feature_status names {name}, which is not a feature of the answer")
    for name in sorted(set(feats) - set(want)):
        bad(f"unexpected feature {name} = {json.dumps(feats[name])}")
    res.checked += 1
    et = row.get("event_time")
    if "event_time_at" not in ref_row:
        bad("ref.json has no event_time_at: write it again with scripts/reference.py")
        return res
    want_et = ref_row["event_time_at"][str(t)]
    if want_et is None:
        if et is not None:
            bad(f"event_time {et!r}, want null (no event at or before {t})")
    elif time_ms(et) != want_et:
        bad(f"event_time {et!r}, want {want_et}")
    return res


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------

def single_url(serve: str, view: str, entity: str, t: int) -> str:
    return (f"{serve}/v1/features/{urllib.parse.quote(view, safe='')}/"
            f"{urllib.parse.quote(entity, safe='')}?at={t}")


def check_single(serve: str, view: str, entity: str, t: int, ref_row: dict, meta: dict | None,
                 rtol: float, atol: float, timeout: float) -> Result:
    url = single_url(serve, view, entity, t)
    code, body = http_json("GET", url, timeout=timeout)
    where = f"GET {view}/{entity}?at={t} (HTTP {code})"
    res = compare_row(where, view, entity, t, ref_row, body, rtol, atol,
                      caveat(meta, view, ref_row["event_time"], t), expect_view=True)
    res.requests = 1
    return res


def check_batch(serve: str, view: str, entities: list[str], t: int, ref_view: dict, meta: dict | None,
                rtol: float, atol: float, timeout: float) -> Result:
    url = f"{serve}/v1/features/{urllib.parse.quote(view, safe='')}"
    code, body = http_json("POST", url, {"entities": entities, "at": t}, timeout=timeout)
    res = Result(requests=1)
    where = f"POST {view} batch of {len(entities)} at={t} (HTTP {code})"
    if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
        res.mismatches.append(f"{where}: no rows in response: {str(body)[:200]}")
        return res
    if body.get("view") != view:
        res.mismatches.append(f"{where}: view {body.get('view')!r}, want {view!r}")
    if "at" in body and time_ms(body["at"]) != t:
        res.mismatches.append(f"{where}: at {body['at']!r}, want {t}")
    rows = body["rows"]
    if len(rows) != len(entities):
        res.mismatches.append(f"{where}: {len(rows)} rows for {len(entities)} entities")
    for i, (ent, row) in enumerate(zip(entities, rows)):
        ref_row = ref_view[ent]
        res.add(compare_row(f"{where} row {i} ({ent})", view, ent, t, ref_row, row, rtol, atol,
                            caveat(meta, view, ref_row["event_time"], t), expect_view=False))
    return res


def check_not_found(serve: str, view: str, known: dict, t: int, timeout: float) -> Result:
    entity = "__freshet_never_seen__"
    while entity in known:
        entity += "_"
    code, body = http_json("GET", single_url(serve, view, entity, t), timeout=timeout)
    res = Result(checked=1, requests=1)
    status = body.get("status") if isinstance(body, dict) else None
    if status != "NOT_FOUND":
        res.mismatches.append(f"GET {view}/{entity}?at={t} (HTTP {code}): status {status!r}, "
                              f"want 'NOT_FOUND' for an entity that never appeared")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Check serve's answers against reference.py's ref.json.")
    ap.add_argument("--ref", required=True, help="output of scripts/reference.py")
    ap.add_argument("--serve", default="http://127.0.0.1:8080", help="base URL of serve")
    ap.add_argument("--rtol", type=float, default=1e-9, help="relative tolerance for floats")
    ap.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance for floats")
    ap.add_argument("--sample", type=int, help="check only N random entities per view (fixed seed)")
    ap.add_argument("--workers", type=int, default=8, help="concurrent requests")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    e2e_http.add_args(ap)
    args = ap.parse_args(argv)
    global CLIENT
    CLIENT = e2e_http.Client.from_args(args)
    serve = args.serve.rstrip("/")

    with open(args.ref, encoding="utf-8") as fh:
        ref = json.load(fh)
    meta = ref.get("meta")

    # Plan every request first so that results print in a stable order.
    singles, batches, not_found = [], [], []
    for view in sorted(ref["views"]):
        ref_view = ref["views"][view]
        ents = sorted(ref_view)
        if args.sample is not None and args.sample < len(ents):
            ents = sorted(random.Random(SAMPLE_SEED).sample(ents, args.sample))
        ats = sorted({int(t) for e in ents for t in ref_view[e]["at"]})
        if not ats and meta:
            ats = list(meta.get("at", []))
        for ent in ents:
            for t in ats:
                singles.append((view, ent, t, ref_view[ent]))
        for t in ats:
            if ents:
                batches.append((view, ents[:BATCH_MAX], t, ref_view))
        if ats:
            not_found.append((view, ref_view, ats[0]))

    total = Result()
    try:
        # Fail fast, with a clear message, when serve is not up at all.
        if singles:
            v, e, t, r = singles[0]
            total.add(check_single(serve, v, e, t, r, meta, args.rtol, args.atol, args.timeout))
        with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
            futs = [pool.submit(check_single, serve, v, e, t, r, meta, args.rtol, args.atol, args.timeout)
                    for v, e, t, r in singles[1:]]
            futs += [pool.submit(check_batch, serve, v, es, t, rv, meta, args.rtol, args.atol, args.timeout)
                     for v, es, t, rv in batches]
            futs += [pool.submit(check_not_found, serve, v, rv, t, args.timeout) for v, rv, t in not_found]
            for f in futs:
                total.add(f.result())
    except Unreachable as e:
        print(f"check_serve: serve unreachable: {e}", file=sys.stderr)
        return 2

    n_ent = sum(1 for _ in {(v, e) for v, e, _, _ in singles})
    print(f"check_serve: {total.requests} requests ({len(singles)} single, {len(batches)} batch, "
          f"{len(not_found)} not-found) over {n_ent} entities; checked {total.checked} values; "
          f"{len(total.mismatches)} mismatch(es)")
    for m in total.mismatches[:20]:
        print(f"  MISMATCH {m}")
    if len(total.mismatches) > 20:
        print(f"  ... and {len(total.mismatches) - 20} more")
    return 1 if total.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
