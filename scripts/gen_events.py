#!/usr/bin/env python3
"""Deterministic generator of `transaction` events (schemas/example) as NDJSON.

The output is in *send order*: replaying the file line by line is what ingest
sees. Events are first drawn in event time, then sent slightly out of order
(--shuffle), optionally with invalid rows mixed in (--invalid) and with
deliberately late events appended (--late).

    python3 scripts/gen_events.py --users 300 --merchants 60 --events 5000 \
        --start 2024-05-30T00:00:00Z --span 48h --shuffle 5 --seed 1 \
        --out schemas/example/events.ndjson

Standard library only. Same arguments, same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# user_spend's max_lateness in the example schema: --shuffle must stay below it
# for shuffling alone to drop nothing.
SMALLEST_MAX_LATENESS_MIN = 60


def parse_span_ms(s: str) -> int:
    """A duration such as 48h, 90m, 2d, 1d12h (no need for Go's full syntax)."""
    units = {"d": DAY, "h": HOUR, "m": MINUTE, "s": 1000}
    total, num = 0, ""
    for ch in s.strip():
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += int(float(num) * units[ch])
            num = ""
        else:
            raise argparse.ArgumentTypeError(f"bad duration {s!r}")
    if num or total <= 0:
        raise argparse.ArgumentTypeError(f"bad duration {s!r}")
    return total


def parse_start_ms(s: str) -> int:
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise argparse.ArgumentTypeError("--start needs an offset, e.g. Z")
    return int(dt.timestamp() * 1000)


# ---------------------------------------------------------------------------
# Timestamp encodings. Each returns (json value, the exact ms the value means)
# so that an encoding that truncates (microseconds) is still accounted for.
# ---------------------------------------------------------------------------

def _utc(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)


def ts_z(ms: int, rng: random.Random) -> tuple[object, int]:
    # Whole seconds: the event time moves down to the second.
    ms -= ms % 1000
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%SZ"), ms


def ts_offset(ms: int, rng: random.Random) -> tuple[object, int]:
    # Same instant written in a +02:00 (or -05:00) zone.
    ms -= ms % 1000
    hours = rng.choice([2, 2, -5])
    local = _utc(ms).astimezone(timezone(timedelta(hours=hours)))
    # Written by hand: strftime's %:z only exists from Python 3.12.
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f"{'+' if hours >= 0 else '-'}{abs(hours):02d}:00", ms


def ts_millis_frac(ms: int, rng: random.Random) -> tuple[object, int]:
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z", ms


def ts_micros_frac(ms: int, rng: random.Random) -> tuple[object, int]:
    # Sub-millisecond digits: the reader truncates them, the event time is ms.
    micros = rng.randrange(1000)
    return _utc(ms).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}{micros:03d}Z", ms


def ts_epoch(ms: int, rng: random.Random) -> tuple[object, int]:
    return ms, ms


TS_FORMATS = [(ts_z, 40), (ts_offset, 15), (ts_millis_frac, 15), (ts_micros_frac, 10), (ts_epoch, 20)]


def pick(rng: random.Random, weighted):
    items, weights = zip(*weighted)
    return rng.choices(items, weights=weights)[0]


# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------

def zipf_weights(n: int, s: float) -> list[float]:
    # Heavy-tailed activity: the top few users/merchants dominate.
    return [1.0 / (i + 1) ** s for i in range(n)]


def amount(rng: random.Random) -> object:
    a = max(0.01, round(rng.lognormvariate(3.2, 1.0), 2))
    # A few whole amounts written as JSON integers: valid for a float field.
    if rng.random() < 0.03:
        return int(round(a)) or 1
    return a


def make_event(rng: random.Random, n: int, user: str, merchant: str, ms: int,
               fmt=None) -> tuple[dict, int]:
    """One valid event; returns (JSON object, its event time in ms)."""
    fmt = fmt or pick(rng, TS_FORMATS)
    ts, ms = fmt(ms, rng)
    ev: dict = {"txn_id": f"t_{n:07d}", "user_id": user, "ts": ts, "amount": amount(rng)}
    r = rng.random()
    if r < 0.05:
        pass  # no merchant_id at all (optional field)
    elif r < 0.07:
        ev["merchant_id"] = None  # null optional field = absent
    else:
        ev["merchant_id"] = merchant
    r = rng.random()
    if r < 0.15:
        pass
    elif r < 0.17:
        ev["items"] = None
    else:
        ev["items"] = min(20, 1 + int(rng.expovariate(0.6)))
    r = rng.random()
    if r < 0.10:
        pass
    elif r < 0.12:
        ev["card_present"] = None
    else:
        ev["card_present"] = rng.random() < 0.6
    r = rng.random()
    if r < 0.05:
        ev["device"] = {"os": rng.choice(["ios", "android"]), "version": rng.randint(10, 17)}
    elif r < 0.08:
        ev["channel"] = rng.choice(["web", "pos", "app"])
    # Vary key order a little: decoders must not depend on it.
    if rng.random() < 0.2:
        keys = list(ev)
        rng.shuffle(keys)
        ev = {k: ev[k] for k in keys}
    return ev, ms


INVALID_KINDS = [
    "amount_string", "items_fraction", "missing_user_id", "bad_timestamp",
    "not_json", "ts_null", "wrong_bool",
]


def make_invalid(rng: random.Random, kind: str, base: dict) -> str:
    """An invalid line derived from a valid event (so only one thing is wrong)."""
    ev = dict(base)
    if kind == "amount_string":
        ev["amount"] = f"{rng.uniform(1, 200):.2f}"
    elif kind == "items_fraction":
        ev["items"] = 1.5
    elif kind == "missing_user_id":
        del ev["user_id"]
    elif kind == "bad_timestamp":
        ev["ts"] = rng.choice(["2024-13-45T25:61:00Z", "yesterday", "2024-05-31 12:00:00",
                               "2024-05-31T12:00:00", 1717200000000.5])
    elif kind == "not_json":
        return rng.choice(["this is not json", "{\"txn_id\": \"broken\", ", "<html>", "[1, 2, 3]"])
    elif kind == "ts_null":
        ev["ts"] = None
    elif kind == "wrong_bool":
        ev["card_present"] = rng.choice(["yes", 1, "true"])
    else:
        raise AssertionError(kind)
    return json.dumps(ev, separators=(",", ":"))


def generate(args) -> tuple[list[str], dict]:
    rng = random.Random(args.seed)
    users = [f"u_{i:04d}" for i in range(1, args.users + 1)]
    merchants = [f"m_{i:03d}" for i in range(1, args.merchants + 1)]
    uw = zipf_weights(len(users), 1.1)
    mw = zipf_weights(len(merchants), 0.9)
    # Each user mostly shops at a handful of favourite merchants.
    favourites = {u: rng.choices(merchants, weights=mw, k=rng.randint(2, 6)) for u in users}

    shuffle_ms = int(args.shuffle * MINUTE)
    rows: list[tuple[int, int, str]] = []  # (send key, tie-breaker, line)
    times: list[int] = []  # event times of the valid in-order events
    latest: dict[str, int] = {}
    stats: Counter = Counter()
    n = 0
    for _ in range(args.events):
        u = rng.choices(users, weights=uw)[0]
        m = rng.choice(favourites[u]) if rng.random() < 0.85 else rng.choices(merchants, weights=mw)[0]
        ms = args.start + rng.randrange(args.span)
        # Occasionally reuse the user's previous event time exactly, so that
        # `last` meets ties on event time.
        if u in latest and rng.random() < 0.02:
            ms = latest[u]
            fmt = ts_epoch
            stats["time ties"] += 1
        else:
            fmt = None
        n += 1
        ev, t = make_event(rng, n, u, m, ms, fmt)
        latest[u] = max(latest.get(u, t), t)
        times.append(t)
        stats["events"] += 1
        # Send order = event time + a random delay in [0, shuffle]. Bounding
        # the delay in *time* bounds how far any partition's watermark can be
        # ahead of an event when it is sent: by at most `shuffle`, so nothing
        # is late while shuffle <= the smallest max_lateness.
        rows.append((t + rng.randint(0, shuffle_ms), n, json.dumps(ev, separators=(",", ":"))))
        for k in ("merchant_id", "items", "card_present"):
            if ev.get(k) is None:
                stats[f"without {k}"] += 1
        ts = ev["ts"]
        stats["ts " + ("epoch ms" if isinstance(ts, int) else "offset" if not ts.endswith("Z")
                       else "fraction" if "." in ts else "Z")] += 1
    rows.sort()
    lines = [r[2] for r in rows]

    # Invalid rows at random positions, kinds cycled so each one shows up.
    for i in range(args.invalid):
        kind = INVALID_KINDS[i % len(INVALID_KINDS)]
        base, _ = make_event(rng, 0, rng.choice(users), rng.choice(merchants),
                             args.start + rng.randrange(args.span))
        base["txn_id"] = f"bad_{i:05d}"
        base.setdefault("items", 2)
        base.setdefault("card_present", True)
        lines.insert(rng.randrange(len(lines) + 1), make_invalid(rng, kind, base))
        stats[f"invalid {kind}"] += 1

    # Late events, appended after everything else. A partition's watermark is
    # at least the user's latest event time (the key is user_id, so all of a
    # user's events share a partition) and at most the global maximum.
    #  - "~2h behind": user's latest - 2h < watermark - 1h, so user_spend drops
    #    it; picking users active in the last 20h keeps it within 24h of any
    #    watermark, so merchant_activity (max_lateness 24h) keeps it.
    #  - "~3d behind": more than 24h behind any watermark: dropped by both.
    # Late events always carry merchant_id so the merchant view judges them.
    global_max = max(latest.values())
    recent = sorted(u for u, t in latest.items() if t >= global_max - 20 * HOUR)
    for i in range(args.late):
        if i % 2 == 0:
            u = rng.choice(recent)
            behind = 2 * HOUR + rng.randint(-15 * MINUTE, 15 * MINUTE)
            stats["late ~2h"] += 1
        else:
            u = rng.choice(sorted(latest))
            behind = 3 * DAY + rng.randint(-2 * HOUR, 2 * HOUR)
            stats["late ~3d"] += 1
        n += 1
        ev, _ = make_event(rng, n, u, rng.choice(favourites[u]), latest[u] - behind)
        ev["merchant_id"] = rng.choice(favourites[u])
        ev["txn_id"] = f"late_{i:05d}"
        lines.append(json.dumps(ev, separators=(",", ":")))

    return lines, {"stats": stats, "latest": latest, "first": min(times), "last": max(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate NDJSON transaction events (schemas/example).")
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--merchants", type=int, default=60)
    ap.add_argument("--events", type=int, default=5000, help="valid in-order events (before --late)")
    ap.add_argument("--start", type=parse_start_ms, default=parse_start_ms("2024-05-30T00:00:00Z"),
                    help="RFC 3339 start of the event-time span")
    ap.add_argument("--span", type=parse_span_ms, default=parse_span_ms("48h"), help="e.g. 48h, 2d")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--shuffle", type=float, default=20.0,
                    help="max send delay in minutes of event time (default 20; keep < 60)")
    ap.add_argument("--invalid", type=int, default=0, help="number of invalid rows to insert")
    ap.add_argument("--late", type=int, default=0, help="number of late events to append")
    ap.add_argument("--out", help="output file (default stdout)")
    args = ap.parse_args(argv)
    if args.users < 1 or args.merchants < 1 or args.events < 1:
        ap.error("--users, --merchants and --events must be positive")
    if args.shuffle >= SMALLEST_MAX_LATENESS_MIN:
        print(f"gen_events: warning: --shuffle {args.shuffle}m >= user_spend's max_lateness (60m): "
              "shuffling alone may now drop events", file=sys.stderr)

    lines, info = generate(args)
    text = "".join(line + "\n" for line in lines)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)

    st = info["stats"]
    iso = lambda ms: _utc(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
    print(f"gen_events: {len(lines)} lines -> {args.out or 'stdout'} (seed {args.seed})", file=sys.stderr)
    print(f"  event time of in-order events: {iso(info['first'])} .. {iso(info['last'])}", file=sys.stderr)
    for k in sorted(st):
        print(f"  {k}: {st[k]}", file=sys.stderr)
    print(f"  users with events: {len(info['latest'])} of {args.users}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
