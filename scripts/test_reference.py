"""Tests for scripts/reference.py (and a little of gen_events.py).

Run from the repository root:

    python3 -m unittest scripts/test_reference.py

Expected values are written out by hand, not computed with the code under
test, so that a wrong reference cannot confirm itself.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
import unittest
from contextlib import redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# scripts/ is not a package; make its modules importable however we are run.
sys.path.insert(0, HERE)

import gen_events  # noqa: E402
import reference as ref  # noqa: E402

INT64_MAX, INT64_MIN = ref.INT64_MAX, ref.INT64_MIN

EXAMPLE = os.path.join(REPO, "schemas", "example")

MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T_JUNE1 = 1717200000000  # 2024-06-01T00:00:00Z


def line(**fields) -> str:
    return json.dumps(fields)


def schema_from_text(text: str) -> ref.Schema:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "s.yaml"), "w") as fh:
            fh.write(text)
        return ref.load_schema(d)


# A small schema for boundary and lateness tests: two views over the same
# events with different max_lateness.
TEST_SCHEMA = """
events:
  ev:
    key: k
    timestamp: ts
    fields: {k: string, e: string, x: int, f: float, b: bool}
    required: [k]
feature_views:
  by_k:                     # lateness 1h
    source: ev
    entity: k
    max_lateness: 1h
    features:
      n_10m: {agg: count, window: 10m, hop: 1m}
      x_last: {agg: last, field: x, window: 1d}
  by_e:                     # lateness defaults to the largest window: 1d
    source: ev
    entity: e
    features:
      n_1d: {agg: count, window: 1d, hop: 1h}
"""


class Murmur2Test(unittest.TestCase):
    def test_java_vectors(self):
        # Values of Java's org.apache.kafka.common.utils.Utils.murmur2.
        vectors = {
            b"21": -973932308,
            b"foobar": -790332482,
            b"a-little-bit-long-string": -985981536,
            b"a-little-bit-longer-string": -1486304829,
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
            b"abc": 479470107,
        }
        for data, want in vectors.items():
            with self.subTest(data=data):
                self.assertEqual(ref.murmur2(data), want)

    def test_partition_uses_mask_not_abs(self):
        # -973932308 & 0x7fffffff = 1173551340 = 6 * 195591890 -> partition 0;
        # abs() would give 973932308 % 6 = 2.
        self.assertEqual(ref.partition_for(b"21", 6), 0)
        self.assertEqual(ref.partition_for(b"abc", 6), 479470107 % 6)
        self.assertEqual(ref.partition_for(b"a-little-bit-long-string", 6), 2)


class DurationAndSchemaTest(unittest.TestCase):
    def test_durations(self):
        self.assertEqual(ref.parse_duration_ms("1m"), MIN)
        self.assertEqual(ref.parse_duration_ms("7d"), 7 * DAY)
        self.assertEqual(ref.parse_duration_ms("1d12h"), 36 * HOUR)
        self.assertEqual(ref.parse_duration_ms("1h30m"), 90 * MIN)
        self.assertEqual(ref.parse_duration_ms("1.5h"), 90 * MIN)
        self.assertEqual(ref.parse_duration_ms("0.1s"), 100)
        self.assertEqual(ref.parse_duration_ms("250ms"), 250)
        for bad in ["", "1", "12h1d", "1us", "0s", "1x", "h"]:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                ref.parse_duration_ms(bad)

    def test_default_hop(self):
        self.assertEqual(ref.default_hop_ms(DAY), HOUR)
        self.assertEqual(ref.default_hop_ms(10 * MIN), 10_000)
        self.assertEqual(ref.default_hop_ms(HOUR), 5 * MIN)
        self.assertEqual(ref.default_hop_ms(7 * DAY), HOUR)
        self.assertEqual(ref.default_hop_ms(30 * DAY), DAY)
        self.assertEqual(ref.default_hop_ms(12 * MIN), MIN)
        self.assertEqual(ref.default_hop_ms(5_000), 1_000)
        self.assertEqual(ref.default_hop_ms(500), 500)

    def test_example_schema(self):
        s = ref.load_schema(EXAMPLE)
        ev = s.events["transaction"]
        self.assertEqual(ev.key, "user_id")
        self.assertEqual(ev.fields["ts"], "timestamp")
        self.assertEqual(ev.required, {"txn_id", "user_id", "amount", "ts"})
        us, ma = s.views["user_spend"], s.views["merchant_activity"]
        self.assertEqual(us.max_lateness, HOUR)
        self.assertEqual(ma.max_lateness, DAY)  # default: largest window
        self.assertEqual(us.ttl, 8 * DAY)
        hops = {f.name: (f.window, f.hop) for f in ma.features}
        self.assertEqual(hops["txn_count_24h"], (DAY, HOUR))        # default hop
        self.assertEqual(hops["card_present_last"], (DAY, HOUR))    # default hop
        self.assertEqual(hops["amount_sum_1h"], (HOUR, 5 * MIN))
        self.assertEqual([f.name for f in us.features],
                         ["txn_count_1h", "amount_sum_24h", "amount_mean_7d", "amount_max_1h",
                          "items_min_1h", "amount_std_24h", "last_merchant"])
        self.assertEqual({f.name: f.field_type for f in us.features}["items_min_1h"], "int")

    def test_mini_yaml(self):
        doc = ref.mini_yaml_load(
            "# comment\n"
            "a:\n"
            "  b: {x: 1, y: 'q # not a comment', z: [p, \"r\"]}   # trailing\n"
            "  c: [u, v]\n"
            "  d:\n"
            "    - one\n"
            "    - two\n"
            "  e: plain text\n"
            "  f:\n"
        )
        self.assertEqual(doc, {"a": {"b": {"x": "1", "y": "q # not a comment", "z": ["p", "r"]},
                                     "c": ["u", "v"], "d": ["one", "two"], "e": "plain text", "f": None}})


class ValidationTest(unittest.TestCase):
    def setUp(self):
        self.ev = ref.load_schema(EXAMPLE).events["transaction"]
        self.base = {"txn_id": "t1", "user_id": "u1", "amount": 1.5, "ts": "2024-05-31T12:00:00Z"}

    def decode(self, **changes):
        obj = dict(self.base)
        for k, v in changes.items():
            if v is DELETE:
                obj.pop(k, None)
            else:
                obj[k] = v
        return ref.decode_event(json.dumps(obj), self.ev)

    def assertInvalid(self, **changes):
        with self.assertRaises(ref.Invalid, msg=repr(changes)):
            self.decode(**changes)

    def test_int_field(self):
        self.assertEqual(self.decode(items=2)["items"], 2)
        self.assertEqual(self.decode(items=-9223372036854775808)["items"], -(2 ** 63))
        for bad in [1.5, 1.0, "2", True, 9223372036854775808]:
            with self.subTest(items=bad):
                self.assertInvalid(items=bad)
        # Exponent notation is not an integer even when the value is whole.
        with self.assertRaises(ref.Invalid):
            ref.decode_event('{"txn_id":"t","user_id":"u","amount":1,"ts":0,"items":1e0}', self.ev)

    def test_float_field(self):
        d = self.decode(amount=12)
        self.assertEqual(d["amount"], 12.0)
        self.assertIs(type(d["amount"]), float)
        self.assertEqual(ref.decode_event('{"txn_id":"t","user_id":"u","amount":1e2,"ts":0}', self.ev)["amount"], 100.0)
        for bad in ["12.5", True, None, [1]]:
            with self.subTest(amount=bad):
                self.assertInvalid(amount=bad)  # None: amount is required
        for text in ['NaN', 'Infinity', '-Infinity', '1e400']:
            with self.subTest(amount=text), self.assertRaises(ref.Invalid):
                ref.decode_event('{"txn_id":"t","user_id":"u","ts":0,"amount":%s}' % text, self.ev)

    def test_bool_and_string_fields(self):
        self.assertIs(self.decode(card_present=False)["card_present"], False)
        for bad in ["true", 1, 0]:
            with self.subTest(card_present=bad):
                self.assertInvalid(card_present=bad)
        self.assertInvalid(user_id=123)
        self.assertInvalid(merchant_id=7)
        self.assertInvalid(txn_id=None)

    def test_required_and_optional(self):
        self.assertInvalid(user_id=DELETE)
        self.assertInvalid(user_id=None)
        self.assertInvalid(ts=None)
        self.assertInvalid(amount=DELETE)
        d = self.decode(merchant_id=None, items=None, card_present=None)
        self.assertNotIn("merchant_id", d)
        self.assertNotIn("items", d)
        self.assertNotIn("card_present", d)
        d = self.decode(device={"os": "ios"}, extra=[1, 2])
        self.assertNotIn("device", d)

    def test_timestamps(self):
        noon = 1717156800000  # 2024-05-31T12:00:00Z
        self.assertEqual(self.decode(ts="2024-05-31T12:00:00Z")["ts"], noon)
        self.assertEqual(self.decode(ts="2024-05-31T14:00:00+02:00")["ts"], noon)
        self.assertEqual(self.decode(ts="2024-05-31T07:00:00-05:00")["ts"], noon)
        self.assertEqual(self.decode(ts="2024-05-31T12:00:00.5Z")["ts"], noon + 500)
        self.assertEqual(self.decode(ts="2024-05-31T12:00:00.123999Z")["ts"], noon + 123)  # truncated
        self.assertEqual(self.decode(ts="2024-02-29T00:00:00Z")["ts"], 1709164800000)
        self.assertEqual(self.decode(ts=noon)["ts"], noon)
        # Truncation is towards the past, also before 1970.
        self.assertEqual(self.decode(ts="1969-12-31T23:59:59.9995Z")["ts"], -1)
        for bad in ["2024-05-31T12:00:00", "2024-05-31 12:00:00Z", "2024-02-30T00:00:00Z",
                    "2023-02-29T00:00:00Z", "2024-05-31T24:00:00Z", "2024-05-31T12:00:60Z",
                    "2024-05-31", "yesterday", str(noon), float(noon), True, "2024-05-31T12:00:00.Z"]:
            with self.subTest(ts=bad):
                self.assertInvalid(ts=bad)

    def test_not_an_event(self):
        for raw in [b"not json", b"[1,2]", b"{}", b'"x"', b'{"txn_id":"t"} trailing',
                    b'\xff\xfe{"a":1}', b'{"txn_id":"t","user_id":"u","amount":1,"ts":0']:
            with self.subTest(raw=raw), self.assertRaises(ref.Invalid):
                ref.decode_event(raw, self.ev)


class _Delete:
    pass


DELETE = _Delete()


def feat(agg, field=None, ftype=None, window=HOUR, hop=MIN, name="f"):
    return ref.FeatureDef(name, agg, field, ftype, window, hop)


def acc(t, **values):
    return ref.Accepted(t, values)


class WindowTest(unittest.TestCase):
    def test_boundaries(self):
        w, h = 10 * MIN, MIN
        t = 1717156800000 + 37_250            # not on a hop boundary
        lo = 1717156200000                    # floor((t - 10m) / 1m) * 1m, worked by hand
        self.assertEqual(ref.window_start(t, w, h), lo)
        f = feat("count", window=w, hop=h)
        count = lambda *times: ref.feature_value(f, [acc(x) for x in times], t)  # noqa: E731
        self.assertEqual(count(lo), 1)        # exactly at the start: in
        self.assertEqual(count(lo - 1), 0)    # one ms before: out
        self.assertEqual(count(t), 1)         # exactly at t: in
        self.assertEqual(count(t + 1), 0)     # one ms after: out
        self.assertEqual(count(lo, lo - 1, t, t + 1), 2)
        # t on a hop boundary: the window is exactly [t - w, t].
        t2 = 1717156800000
        self.assertEqual(ref.feature_value(f, [acc(t2 - w), acc(t2 - w - 1)], t2), 1)

    def test_floor_is_mathematical(self):
        # t - w < 0: floor(-570000 / 60000) = -10, not -9.
        self.assertEqual(ref.window_start(30_000, 10 * MIN, MIN), -600_000)
        f = feat("count", window=10 * MIN, hop=MIN)
        self.assertEqual(ref.feature_value(f, [acc(-600_000), acc(-600_001)], 30_000), 1)

    def test_through_replay(self):
        s = schema_from_text(TEST_SCHEMA)
        t = 1717156800000 + 37_250
        lo = 1717156200000
        lines = [line(k="a", ts=x) for x in (lo - 1, lo, t, t + 1)]
        out = ref.compute(ref.replay(s, lines, 6), [t])
        self.assertEqual(out["views"]["by_k"]["a"]["at"][str(t)]["n_10m"], 2)
        self.assertEqual(out["views"]["by_k"]["a"]["event_time"], t + 1)


class AggregationTest(unittest.TestCase):
    def test_stddev_is_population(self):
        f = feat("stddev", "v", "float")
        evs = [acc(1000, v=float(x)) for x in (2, 4, 4, 4, 5, 5, 7, 9)]
        self.assertEqual(ref.feature_value(f, evs, 2000), 2.0)  # the sample stddev would be 2.138...
        self.assertEqual(ref.feature_value(f, evs[:1], 2000), 0.0)
        self.assertIsNone(ref.feature_value(f, [], 2000))

    def test_types_and_empties(self):
        evs = [acc(1000, i=3, v=1.5), acc(1001, i=4), acc(1002)]
        fv = lambda *a: ref.feature_value(feat(*a), evs, 2000)  # noqa: E731
        self.assertEqual(fv("count"), 3)
        self.assertEqual(fv("count", "v", "float"), 1)         # count of a field skips absent
        s = fv("sum", "i", "int")
        self.assertEqual((s, type(s)), (7, int))
        s = fv("sum", "v", "float")
        self.assertEqual((s, type(s)), (1.5, float))
        m = fv("min", "i", "int")
        self.assertEqual((m, type(m)), (3, int))
        self.assertEqual(fv("max", "i", "int"), 4)
        m = fv("mean", "i", "int")
        self.assertEqual((m, type(m)), (3.5, float))
        none = [acc(1000)]
        self.assertEqual(ref.feature_value(feat("count"), [], 2000), 0)
        for agg, ftype, want in [("count", "float", 0), ("sum", "int", 0), ("sum", "float", 0.0),
                                 ("mean", "float", None), ("min", "int", None), ("max", "float", None),
                                 ("stddev", "float", None), ("last", "string", None)]:
            with self.subTest(agg=agg, ftype=ftype):
                got = ref.feature_value(feat(agg, "v" if ftype else None, ftype), none, 2000)
                self.assertEqual(got, want)
                self.assertIs(type(got), type(want))

    def test_overflow(self):
        big, huge = 9007199254740993, sys.float_info.max
        evs = [acc(1000, i=INT64_MAX, v=huge), acc(1001, i=big, v=huge)]
        fv = lambda *a: ref.feature_value(feat(*a), evs, 2000)  # noqa: E731
        self.assertEqual(fv("sum", "i", "int"), ref.OVERFLOW)
        self.assertEqual(fv("min", "i", "int"), big)       # exact, not through float64
        self.assertEqual(fv("mean", "i", "int"), (INT64_MAX + big) / 2)  # from the exact sum
        for agg in ("sum", "mean", "stddev"):
            self.assertEqual(fv(agg, "v", "float"), ref.OVERFLOW, agg)
        self.assertEqual(fv("max", "v", "float"), huge)
        # Back inside int64 by the end of the window: exact.
        evs.append(acc(1002, i=INT64_MIN))
        self.assertEqual(fv("sum", "i", "int"), big - 1)
        # Squared deviations beyond float64 with a finite sum.
        self.assertEqual(ref.feature_value(feat("stddev", "v", "float"), [acc(1000, v=1e200), acc(1001, v=-1e200)], 2000),
                         ref.OVERFLOW)

    def test_last_tie_break(self):
        f = feat("last", "m", "string", window=DAY, hop=HOUR)
        t = 10 * DAY
        # Same time: the greater JSON text wins, whatever the arrival order.
        for order in ([acc(t, m="m_1"), acc(t, m="m_2")], [acc(t, m="m_2"), acc(t, m="m_1")]):
            self.assertEqual(ref.feature_value(f, order, t), "m_2")
        # A later event wins over a greater value.
        self.assertEqual(ref.feature_value(f, [acc(t - 1, m="z"), acc(t - 2, m="zz"), acc(t - 3, m="a")], t), "z")
        # Events without the field are skipped, even if later.
        self.assertEqual(ref.feature_value(f, [acc(t - 5, m="a"), acc(t)], t), "a")
        fb = feat("last", "b", "bool", window=DAY, hop=HOUR)
        self.assertIs(ref.feature_value(fb, [acc(t, b=True), acc(t, b=False)], t), True)
        self.assertIs(ref.feature_value(fb, [acc(t, b=False), acc(t, b=True)], t), True)
        fi = feat("last", "i", "int", window=DAY, hop=HOUR)
        # JSON text order, not numeric order: "9" > "10".
        self.assertEqual(ref.feature_value(fi, [acc(t, i=10), acc(t, i=9)], t), 9)

    def test_go_json(self):
        # freshet's normalized JSON (pipeline/events AppendJSON): no HTML
        # escaping, \b and \f short forms, floats always with a point.
        self.assertEqual(ref.go_json("a<b&c>"), b'"a<b&c>"')
        self.assertEqual(ref.go_json("é\n\b\x01"), '"é\\n\\b\\u0001"'.encode())
        self.assertEqual(ref.go_json(12.0), b"12.0")
        self.assertEqual(ref.go_json(0.1), b"0.1")
        self.assertEqual(ref.go_json(1e21), b"1e+21")
        self.assertEqual(ref.go_json(1e20), b"100000000000000000000.0")
        self.assertEqual(ref.go_json(1.5e-7), b"1.5e-7")
        self.assertEqual(ref.go_json(False), b"false")


class LatenessTest(unittest.TestCase):
    def setUp(self):
        self.s = schema_from_text(TEST_SCHEMA)
        self.T = T_JUNE1

    def run_lines(self, lines, partitions=6):
        rep = ref.replay(self.s, lines, partitions)
        return rep, ref.compute(rep, [self.T + 10 * DAY])

    def test_per_view(self):
        T = self.T
        rep, out = self.run_lines([
            line(k="a", e="x", ts=T),
            line(k="a", e="x", ts=T - HOUR),              # exactly at watermark - 1h: kept by both
            line(k="a", e="x", ts=T - HOUR - 1),          # late for by_k only
            line(k="a", e="x", ts=T - 2 * HOUR),          # late for by_k only
            line(k="a", e="x", ts=T - DAY),               # late for by_k; kept by by_e (boundary)
            line(k="a", e="x", ts=T - 3 * DAY),           # late for both
        ])
        self.assertEqual(rep.valid, 6)
        self.assertEqual(rep.late, {"by_k": 4, "by_e": 1})
        self.assertEqual([e.time for e in rep.accepted["by_k"]["a"]], [T, T - HOUR])
        self.assertEqual([e.time for e in rep.accepted["by_e"]["x"]], [T, T - HOUR, T - HOUR - 1, T - 2 * HOUR, T - DAY])

    def test_watermark_is_per_partition(self):
        # Keys on different partitions (6 partitions): u1 -> 4, u2 -> 0.
        self.assertNotEqual(ref.partition_for(b"u1", 6), ref.partition_for(b"u2", 6))
        self.assertEqual(ref.partition_for(b"u1", 6), ref.partition_for(b"u3", 6))
        T = self.T
        rep, _ = self.run_lines([
            line(k="u1", ts=T),
            line(k="u2", ts=T - 2 * HOUR),   # other partition: not late
            line(k="u3", ts=T - 2 * HOUR),   # same partition as u1 (another key): late
        ])
        self.assertEqual(rep.late["by_k"], 1)
        self.assertIn("u2", rep.accepted["by_k"])
        self.assertNotIn("u3", rep.accepted["by_k"])
        # With a single partition, everything shares one watermark.
        rep, _ = self.run_lines([line(k="u1", ts=T), line(k="u2", ts=T - 2 * HOUR)], partitions=1)
        self.assertEqual(rep.late["by_k"], 1)

    def test_what_raises_the_watermark(self):
        T = self.T
        rep, _ = self.run_lines([
            line(k="a", ts=T, x=1.5),                    # invalid: does not raise it
            line(k="a", e="x", ts=T - 2 * HOUR),         # so this is on time
            line(k="a", ts=T + 30 * HOUR),               # valid, no `e`: raises it anyway
            line(k="a", e="x", ts=T + 5 * HOUR),         # 25h behind: late for both views
            line(k="a", ts=T - 3 * DAY),                 # no `e`: late for by_k only, not counted for by_e
        ])
        self.assertEqual((rep.valid, rep.invalid), (4, 1))
        self.assertEqual(rep.late, {"by_k": 2, "by_e": 1})
        self.assertEqual(len(rep.accepted["by_e"]["x"]), 1)

    def test_implausible_times_are_invalid_and_move_no_watermark(self):
        # Judged against now = T + 1h: at most 5 minutes ahead, not before 2000.
        T, now = self.T, self.T + HOUR
        lines = [
            line(k="a", e="x", ts=T),
            line(k="a", e="x", ts=T * 1000),                  # microseconds: year 58k
            line(k="a", e="x", ts=now + 6 * MIN),             # 6 minutes ahead
            line(k="a", e="x", ts=T // 1000),                 # seconds: 1970
            line(k="a", e="x", ts=now + 5 * MIN),             # within the skew: valid, raises it
            line(k="a", e="x", ts=T - 10 * MIN),              # 1h5m behind it: late for by_k only
            line(k="a", e="x", ts=T + 30 * MIN),              # not late: the implausible ones raised nothing
        ]
        rep = ref.replay(self.s, lines, 6, now_ms=now)
        self.assertEqual((rep.valid, rep.invalid), (4, 3))
        self.assertEqual(rep.invalid_reasons, {"implausible time": 3})
        self.assertEqual(rep.late, {"by_k": 1, "by_e": 0})
        self.assertEqual(sorted(e.time for e in rep.accepted["by_k"]["a"]), [T, T + 30 * MIN, now + 5 * MIN])
        # A later clock, a larger skew, an earlier floor: each one lets more in.
        self.assertEqual(ref.replay(self.s, lines, 6, now_ms=now, max_skew_ms=10 * MIN).invalid, 2)
        self.assertEqual(ref.replay(self.s, lines, 6, now_ms=now, floor_ms=0).invalid, 2)

    def test_event_time_ignores_dropped(self):
        T = self.T
        _, out = self.run_lines([line(k="a", e="x", ts=T), line(k="a", e="y", ts=T - 2 * HOUR)])
        self.assertEqual(out["views"]["by_k"]["a"]["event_time"], T)
        self.assertEqual(out["views"]["by_e"]["y"]["event_time"], T - 2 * HOUR)


class EventTimeAtTest(unittest.TestCase):
    """event_time_at: per as-of time, the newest accepted event at or before
    it, null before the first; event_time stays the newest of all."""

    def test_per_as_of_time(self):
        s = schema_from_text(TEST_SCHEMA)
        T = T_JUNE1
        # In send order, within 1h of each other: nothing is late for by_k.
        lines = [line(k="a", ts=T + 10), line(k="a", ts=T + 50 * 1000), line(k="a", ts=T + 3 * MIN)]
        ats = [T - 1, T + 10, T + 30_000, T + 3 * MIN - 1, T + 3 * MIN, T + DAY]
        out = ref.compute(ref.replay(s, lines, 6), ats)
        a = out["views"]["by_k"]["a"]
        self.assertEqual(a["event_time"], T + 3 * MIN)
        self.assertEqual(a["event_time_at"], {
            str(T - 1): None,                    # before every event
            str(T + 10): T + 10,                 # exactly at an event: it counts
            str(T + 30_000): T + 10,             # between two events
            str(T + 3 * MIN - 1): T + 50_000,    # one ms before the newest
            str(T + 3 * MIN): T + 3 * MIN,
            str(T + DAY): T + 3 * MIN,           # long after: the newest
        })
        self.assertEqual(sorted(a["event_time_at"]), sorted(a["at"]), "one per as-of time")

    def test_ignores_late_events(self):
        s = schema_from_text(TEST_SCHEMA)
        T = T_JUNE1
        # The second event is 2h behind the partition's watermark: late for
        # by_k (1h), on time for by_e (1d).
        out = ref.compute(ref.replay(s, [line(k="a", e="x", ts=T), line(k="a", e="x", ts=T - 2 * HOUR)], 6),
                          [T - HOUR, T])
        self.assertEqual(out["views"]["by_k"]["a"]["event_time_at"], {str(T - HOUR): None, str(T): T})
        self.assertEqual(out["views"]["by_e"]["x"]["event_time_at"], {str(T - HOUR): T - 2 * HOUR, str(T): T})

    def test_json_output_has_null(self):
        s = schema_from_text(TEST_SCHEMA)
        out = ref.compute(ref.replay(s, [line(k="a", ts=T_JUNE1)], 6), [T_JUNE1 - 1])
        text = json.dumps(out)
        self.assertIn('"event_time_at": {"%d": null}' % (T_JUNE1 - 1), text)


class CheckServeEventTimeTest(unittest.TestCase):
    """check_serve compares each answer's event_time with the reference's
    value for that answer's time."""

    def setUp(self):
        import check_serve  # noqa: E402  (scripts/ is on the path)
        self.cs = check_serve
        T = T_JUNE1
        self.T = T
        self.ref_row = {"event_time": T + 3 * MIN,
                        "at": {str(T): {"n": 1}, str(T - 1): {"n": 0}},
                        "event_time_at": {str(T): T + 10, str(T - 1): None}}

    def mismatches(self, t, event_time):
        row = {"entity": "a", "status": "PRESENT", "features": {"n": self.ref_row["at"][str(t)]["n"]},
               "event_time": event_time}
        return self.cs.compare_row("w", "v", "a", t, self.ref_row, row, 1e-9, 1e-9, "", expect_view=False).mismatches

    def test_rules(self):
        T = self.T
        self.assertEqual(self.mismatches(T, "2024-06-01T00:00:00.010Z"), [])
        self.assertEqual(self.mismatches(T, T + 10), [])                       # epoch ms is fine too
        self.assertEqual(len(self.mismatches(T, "2024-06-01T00:03:00.000Z")), 1)  # the newest of all: wrong as of T
        self.assertEqual(len(self.mismatches(T, None)), 1)
        self.assertEqual(self.mismatches(T - 1, None), [])                     # nothing at or before T - 1
        self.assertEqual(len(self.mismatches(T - 1, "2024-06-01T00:00:00.010Z")), 1)

    def test_old_reference_is_refused(self):
        del self.ref_row["event_time_at"]
        got = self.mismatches(self.T, "2024-06-01T00:00:00.010Z")
        self.assertEqual(len(got), 1)
        self.assertIn("event_time_at", got[0])


class DedupeTest(unittest.TestCase):
    """The example declares id: txn_id with dedupe_window: 1h: an event whose
    id its entity applied within an hour (either side) is skipped, per view."""

    def test_dedupe(self):
        s = ref.load_schema(EXAMPLE)
        self.assertEqual(s.events["transaction"].dedupe_ms, HOUR)
        t = T_JUNE1
        lines = [
            line(txn_id="a", user_id="u1", ts=t - 50 * MIN, amount=1, merchant_id="m1"),
            line(txn_id="a", user_id="u1", ts=t - 50 * MIN, amount=1, merchant_id="m1"),   # re-sent: skipped
            line(txn_id="a", user_id="u1", ts=t - 10 * MIN, amount=2, merchant_id="m1"),   # 40 min later: skipped
            line(txn_id="a", user_id="u2", ts=t - 10 * MIN, amount=4, merchant_id="m2"),   # another user and merchant
            line(txn_id="b", user_id="u1", ts=t - 5 * MIN, amount=8),
        ]
        out = ref.compute(ref.replay(s, lines, 6), [t])
        self.assertEqual(out["counts"]["duplicates"], {"merchant_activity": 2, "user_spend": 2})
        self.assertEqual(out["views"]["user_spend"]["u1"]["at"][str(t)]["amount_sum_24h"], 9.0)
        self.assertEqual(out["views"]["user_spend"]["u2"]["at"][str(t)]["amount_sum_24h"], 4.0)
        # Beyond the window the id counts again.
        lines.append(line(txn_id="a", user_id="u1", ts=t + 11 * MIN, amount=16))
        out = ref.compute(ref.replay(s, lines, 6), [t + 11 * MIN])
        self.assertEqual(out["views"]["user_spend"]["u1"]["at"][str(t + 11 * MIN)]["amount_sum_24h"], 25.0)

    def test_default_window_is_the_largest(self):
        s = schema_from_text(TEST_SCHEMA.replace("    key: k\n", "    key: k\n    id: e\n", 1))
        self.assertEqual(s.events["ev"].dedupe_ms, DAY)  # by_k's x_last: 1d, the largest window of both views


class HandComputedExampleTest(unittest.TestCase):
    """The example schema, a handful of events, every value worked by hand."""

    def test_example(self):
        s = ref.load_schema(EXAMPLE)
        t = T_JUNE1                                              # 2024-06-01T00:00:00Z
        # Sent in event-time order, so nothing is late.
        lines = [
            line(txn_id="4", user_id="u1", ts="2024-05-30T23:00:00.000Z", amount=100, items=5,
                 merchant_id="m1", card_present=False, device={"os": "ios"}),  # 25h before t
            line(txn_id="3", user_id="u1", ts=1717113600000, amount=4, merchant_id="m1"),  # 05-31 00:00Z
            line(txn_id="1", user_id="u1", ts="2024-05-31T23:30:00Z", amount=10, items=2,
                 merchant_id="m1", card_present=True),
            line(txn_id="2", user_id="u1", ts="2024-06-01T01:55:00+02:00", amount=30.5, items=1,
                 merchant_id="m2", card_present=False),          # 23:55Z
            line(txn_id="5", user_id="u1", ts="2024-05-31T23:59:00Z", amount="5", items=1),  # invalid
            "not json at all",
            line(txn_id="6", user_id="u2", ts="2024-05-31T23:58:00Z", amount=1.25, merchant_id=None),
        ]
        out = ref.compute(ref.replay(s, lines, 6), [t, t - 3 * DAY])
        self.assertEqual(out["counts"], {"valid": 5, "invalid": 2,
                                         "late": {"merchant_activity": 0, "user_spend": 0},
                                         "duplicates": {"merchant_activity": 0, "user_spend": 0}})
        u1 = out["views"]["user_spend"]["u1"]
        self.assertEqual(u1["event_time"], t - 5 * MIN)
        # Every event of u1 is after t - 3d; the newest at t is 23:55.
        self.assertEqual(u1["event_time_at"], {str(t): t - 5 * MIN, str(t - 3 * DAY): None})
        mean24 = (10 + 30.5 + 4) / 3
        self.assertEqual(u1["at"][str(t)], {
            "txn_count_1h": 2,                  # 23:30, 23:55 (window from 23:00)
            "amount_sum_24h": 44.5,             # window starts exactly at event 3 (05-31 00:00)
            "amount_mean_7d": 36.125,           # (10 + 30.5 + 4 + 100) / 4
            "amount_max_1h": 30.5,
            "items_min_1h": 1,
            "amount_std_24h": math.sqrt(((10 - mean24) ** 2 + (30.5 - mean24) ** 2 + (4 - mean24) ** 2) / 3),
            "last_merchant": "m2",
        })
        self.assertEqual(u1["at"][str(t - 3 * DAY)], {
            "txn_count_1h": 0, "amount_sum_24h": 0.0, "amount_mean_7d": None, "amount_max_1h": None,
            "items_min_1h": None, "amount_std_24h": None, "last_merchant": None,
        })
        u2 = out["views"]["user_spend"]["u2"]["at"][str(t)]
        self.assertEqual((u2["txn_count_1h"], u2["last_merchant"]), (1, None))
        ma = out["views"]["merchant_activity"]
        self.assertEqual(sorted(ma), ["m1", "m2"])              # u2's event has no merchant
        self.assertEqual(ma["m1"]["event_time"], t - 30 * MIN)
        self.assertEqual(ma["m1"]["at"][str(t)], {
            "txn_count_10m": 0, "txn_count_24h": 2, "amount_sum_1h": 10.0, "items_sum_1h": 2,
            "card_present_last": True,          # event 1; event 3 has no card_present, 4 is out of the window
        })
        self.assertEqual(ma["m2"]["at"][str(t)], {
            "txn_count_10m": 1, "txn_count_24h": 1, "amount_sum_1h": 30.5, "items_sum_1h": 1,
            "card_present_last": False,
        })
        self.assertIs(type(ma["m1"]["at"][str(t)]["items_sum_1h"]), int)
        self.assertIs(type(ma["m1"]["at"][str(t)]["amount_sum_1h"]), float)


class CliAndGeneratorTest(unittest.TestCase):
    def test_generator_counts_match_reference(self):
        with tempfile.TemporaryDirectory() as d:
            events, refout = os.path.join(d, "ev.ndjson"), os.path.join(d, "ref.json")
            args = ["--users", "40", "--merchants", "8", "--events", "600", "--seed", "7",
                    "--invalid", "14", "--late", "10", "--shuffle", "20", "--out", events]
            with redirect_stderr(io.StringIO()):
                gen_events.main(args)
                with open(events, "rb") as fh:
                    first = fh.read()
                gen_events.main(args)   # deterministic: same bytes again
                with open(events, "rb") as fh:
                    self.assertEqual(fh.read(), first)
                ref.main(["--schemas", EXAMPLE, "--events", events, "--at", "2024-06-01T00:00:00Z",
                          "--at", "1717156800000", "--out", refout])
            with open(refout) as fh:
                out = json.load(fh)
        # Shuffling (20 min < 1h) drops nothing; every appended late event is
        # late for user_spend, half of them also for merchant_activity.
        self.assertEqual(out["counts"], {"valid": 610, "invalid": 14,
                                         "late": {"merchant_activity": 5, "user_spend": 10},
                                         "duplicates": {"merchant_activity": 0, "user_spend": 0}})
        self.assertEqual(out["meta"]["at"], [1717156800000, T_JUNE1])
        some = next(iter(out["views"]["user_spend"].values()))
        self.assertEqual(sorted(some["at"]), ["1717156800000", "1717200000000"])

    def test_sample_file_is_clean(self):
        path = os.path.join(EXAMPLE, "events.ndjson")
        if not os.path.exists(path):
            self.skipTest("no sample events")
        s = ref.load_schema(EXAMPLE)
        rep = ref.replay(s, ref.iter_lines([path]), 6)
        self.assertEqual(rep.invalid, 0)
        self.assertEqual(rep.late, {"merchant_activity": 0, "user_spend": 0})


if __name__ == "__main__":
    unittest.main()
