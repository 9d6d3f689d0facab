#!/usr/bin/env python3
"""Compare a `featurize backfill` CSV output with the offline reference.

    python3 scripts/reference.py --schemas schemas/example --no-lateness \\
        --events events.ndjson --at T1 --at T2 --out ref.json
    featurize backfill --events events.ndjson --spine spine.csv --out out.csv --view user_spend
    python3 scripts/check_backfill.py --ref ref.json --out out.csv --view user_spend \\
        --entity-column user_id --at-column ts

Every output row (entity, time) must carry the reference's value of every
feature of the view as of that time: ints equal, floats within --rtol, an
empty cell where the reference has null, bools as true/false. Spine rows
whose entity the reference never saw must have count 0, sum 0 and nulls.
Exit 0 when all equal, 1 otherwise. Standard library only.
"""
import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import parse_rfc3339_ms, Invalid  # noqa: E402


def at_ms(text):
    try:
        return int(text)
    except ValueError:
        return parse_rfc3339_ms(text)


def same(ref, cell, rtol):
    if ref is None or (isinstance(ref, dict) and ref.get("status") == "OVERFLOW"):
        return cell == ""  # an overflowed value is null in the output
    if isinstance(ref, bool):
        return cell == ("true" if ref else "false")
    if isinstance(ref, int):
        return cell == str(ref)
    if isinstance(ref, float):
        try:
            got = float(cell)
        except ValueError:
            return False
        return abs(got - ref) <= max(1e-9, rtol * max(abs(ref), abs(got)))
    return cell == ref


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--view", required=True)
    ap.add_argument("--entity-column", required=True)
    ap.add_argument("--at-column", required=True)
    ap.add_argument("--rtol", type=float, default=1e-9)
    a = ap.parse_args()
    ref = json.load(open(a.ref))
    view = ref["views"][a.view]
    features = [f for f in ref["meta"]["views"][a.view]["features"]]
    aggs = {f: ref["meta"]["views"][a.view]["features"][f]["agg"] for f in features}
    checked, bad = 0, []
    with open(a.out, newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            ent, t = row[a.entity_column], at_ms(row[a.at_column])
            at = view.get(ent, {}).get("at", {}).get(str(t))
            for f in features:
                cell = row[f"{a.view}__{f}"]
                if at is None:
                    # An entity the reference never saw: an empty window,
                    # count and sum 0, every other aggregation null.
                    want = "0 or null"
                    ok = cell in ("0", "0.0") if aggs[f] in ("count", "sum") else cell == ""
                else:
                    want = at[f]
                    ok = same(want, cell, a.rtol)
                checked += 1
                if not ok:
                    bad.append(f"line {n}: {ent} at {row[a.at_column]}: {f}: backfill {cell!r}, reference {want!r}")
    print(f"check_backfill: {a.view}: checked {checked} values; {len(bad)} mismatch(es)", file=sys.stderr)
    for b in bad[:20]:
        print("  " + b, file=sys.stderr)
    return 1 if bad or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
