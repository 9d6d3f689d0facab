#!/usr/bin/env python3
"""Independent offline reference for freshet's features.

This recomputes, by brute force over the raw events, what the Go services
should serve. It deliberately shares nothing with the Go code (it even parses
the YAML itself): when both implementations agree on a few thousand lookups we
can trust them far more than either one alone. Speed is not a goal here;
obviousness is. Every feature value is recomputed from scratch by scanning the
entity's accepted events.

Usage (from the repository root):

    python3 scripts/reference.py --schemas schemas/example --partitions 6 \
        --events schemas/example/events.ndjson \
        --at 2024-06-01T00:00:00Z --at 1717180000000 --out ref.json

Output JSON:

    {"views": {view: {entity: {"event_time": ms,
                               "at": {"<t ms>": {feature: value | null | {"status": "OVERFLOW"}}},
                               "event_time_at": {"<t ms>": ms | null}}}},
     "counts": {"valid": n, "invalid": n, "late": {view: n}, "duplicates": {view: n}},
     "meta": {...definitions as understood here, for check_serve.py...}}

Standard library only (Python 3.11).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Iterator

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
DEFAULT_PARTITIONS = 6


# ---------------------------------------------------------------------------
# Kafka's default partitioner (Java client Utils.murmur2 + toPositive % n)
# ---------------------------------------------------------------------------

def _i32(x: int) -> int:
    """Wrap to a signed 32-bit int, as Java int arithmetic does."""
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def murmur2(data: bytes) -> int:
    """Port of org.apache.kafka.common.utils.Utils.murmur2; returns a signed
    int32 exactly as Java would. Arithmetic is done on unsigned 32-bit values
    (so Java's >>> is a plain >>) and converted at the end."""
    length = len(data)
    m = 0x5BD1E995
    r = 24
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    # Java's switch falls through: case 3 also does 2 and 1.
    tail = length & ~3
    rem = length % 4
    if rem == 3:
        h ^= data[tail + 2] << 16
    if rem >= 2:
        h ^= data[tail + 1] << 8
    if rem >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return _i32(h)


def partition_for(key: bytes, partitions: int) -> int:
    # Utils.toPositive is `n & 0x7fffffff`, not abs(): abs(MIN_INT) overflows.
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_bytes(value: Any) -> bytes:
    """The Kafka message key for a key field value. Strings are UTF-8; an int
    key is assumed to be sent as its decimal text (the brief only covers
    string keys, so this is a guess)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("ascii")


# ---------------------------------------------------------------------------
# Durations: Go's time.ParseDuration syntax plus a leading "d" (24h) unit
# ---------------------------------------------------------------------------

_UNIT_NS = {
    "ns": 1,
    "us": 1_000, "µs": 1_000, "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
    "d": 86400 * 1_000_000_000,
}
_DUR_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)")


def parse_duration_ms(text: str) -> int:
    """Parse "1m", "1h30m", "7d", "1d12h", "1.5h" into whole milliseconds.
    Fractions are handled exactly so that "0.1s" is 100 ms, not 99."""
    s = str(text).strip()
    if not s:
        raise ValueError("empty duration")
    pos, total, seen_non_day = 0, Fraction(0), False
    while pos < len(s):
        m = _DUR_PART.match(s, pos)
        if not m:
            raise ValueError(f"invalid duration {text!r}")
        num, unit = m.group(1), m.group(2)
        # freshet only accepts days in front of the Go part ("1d12h", not "12h1d").
        if unit == "d" and seen_non_day:
            raise ValueError(f"invalid duration {text!r}: days must come first")
        seen_non_day = seen_non_day or unit != "d"
        total += Fraction(num) * _UNIT_NS[unit]
        pos = m.end()
    if total <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    if total % 1_000_000 != 0:
        raise ValueError(f"duration {text!r} is not a whole number of milliseconds")
    return int(total // 1_000_000)


def default_hop_ms(window: int) -> int:
    """Largest of 1d, 1h, 5m, 1m, 10s, 1s that fits 12 times in the window,
    so a window slides in at least 12 steps; tiny windows fall back to 1s
    (capped at the window itself)."""
    for h in (86_400_000, 3_600_000, 300_000, 60_000, 10_000, 1_000):
        if h * 12 <= window:
            return h
    return min(1_000, window)


# ---------------------------------------------------------------------------
# A minimal YAML reader for the definitions (used only without PyYAML)
# ---------------------------------------------------------------------------
# It handles exactly what schema files use: block mappings by indentation,
# block sequences ("- x"), flow sequences "[a, b]", flow mappings
# "{k: v, k2: v2}" (nestable), plain/quoted scalars and "#" comments.
# Scalars stay strings (null/~ become None); the schema only holds names,
# type names and durations, so no number/bool typing is needed.

class YamlError(ValueError):
    pass


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def _scalar(text: str) -> Any:
    t = text.strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"":
        body = t[1:-1]
        if t[0] == '"':
            return json.loads(t)  # double-quoted YAML escapes ~ JSON's for our needs
        return body.replace("''", "'")
    if t in ("", "~", "null", "Null", "NULL"):
        return None
    return t


def _parse_flow(text: str, pos: int = 0) -> tuple[Any, int]:
    """Parse a flow value starting at text[pos]; return (value, next pos)."""
    def skip_ws(p: int) -> int:
        while p < len(text) and text[p] in " \t":
            p += 1
        return p

    pos = skip_ws(pos)
    if pos < len(text) and text[pos] in "[{":
        closing = "]" if text[pos] == "[" else "}"
        is_map = text[pos] == "{"
        out: Any = {} if is_map else []
        pos = skip_ws(pos + 1)
        if pos < len(text) and text[pos] == closing:
            return out, pos + 1
        while True:
            if is_map:
                key, pos = _parse_flow_scalar(text, pos, stop=":,}")
                pos = skip_ws(pos)
                if pos >= len(text) or text[pos] != ":":
                    raise YamlError(f"expected ':' in flow mapping: {text!r}")
                val, pos = _parse_flow(text, pos + 1)
                if key in out:
                    raise YamlError(f"duplicate key {key!r}")
                out[key] = val
            else:
                val, pos = _parse_flow(text, pos)
                out.append(val)
            pos = skip_ws(pos)
            if pos >= len(text):
                raise YamlError(f"unterminated flow collection: {text!r}")
            if text[pos] == ",":
                pos += 1
                continue
            if text[pos] == closing:
                return out, pos + 1
            raise YamlError(f"unexpected {text[pos]!r} in {text!r}")
    return _parse_flow_scalar(text, pos, stop=",]}")


def _parse_flow_scalar(text: str, pos: int, stop: str) -> tuple[Any, int]:
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    if pos < len(text) and text[pos] in "'\"":
        q = text[pos]
        end = pos + 1
        while end < len(text):
            if text[end] == "\\" and q == '"':
                end += 2
                continue
            if text[end] == q:
                if q == "'" and end + 1 < len(text) and text[end + 1] == "'":
                    end += 2
                    continue
                break
            end += 1
        return _scalar(text[pos:end + 1]), end + 1
    start = pos
    while pos < len(text):
        ch = text[pos]
        # In flow context "a:b" is a plain scalar; ": " ends a key.
        if ch in stop and not (ch == ":" and pos + 1 < len(text) and text[pos + 1] not in " \t,}]"):
            break
        pos += 1
    return _scalar(text[start:pos]), pos


def _split_key(content: str) -> tuple[str, str] | None:
    """Split 'key: rest' (or 'key:'); None when the line is not a mapping entry."""
    if content[:1] in "'\"":
        key, pos = _parse_flow_scalar(content, 0, stop=":")
        rest = content[pos:]
        if not rest.startswith(":"):
            return None
        return str(key), rest[1:]
    m = re.match(r"([^:#\[\]{},][^:]*?)\s*:(?:\s+|$)", content)
    if not m:
        return None
    return m.group(1), content[m.end():]


def mini_yaml_load(text: str) -> Any:
    lines = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.strip() in ("---", "..."):
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"line {lineno}: tabs are not allowed for indentation")
        body = _strip_comment(raw).rstrip()
        if body.strip():
            lines.append((lineno, len(body) - len(body.lstrip(" ")), body.strip()))

    def parse_block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][2].startswith("- ") or lines[i][2] == "-":
            seq = []
            while i < len(lines) and lines[i][1] == indent and (lines[i][2].startswith("- ") or lines[i][2] == "-"):
                item = lines[i][2][1:].strip()
                if item:
                    seq.append(_parse_flow(item)[0])
                    i += 1
                else:
                    i += 1
                    if i < len(lines) and lines[i][1] > indent:
                        val, i = parse_block(i, lines[i][1])
                        seq.append(val)
                    else:
                        seq.append(None)
            return seq, i
        mapping: dict[str, Any] = {}
        while i < len(lines) and lines[i][1] == indent:
            lineno, _, content = lines[i]
            kv = _split_key(content)
            if kv is None:
                raise YamlError(f"line {lineno}: expected 'key: value', got {content!r}")
            key, rest = kv
            if key in mapping:
                raise YamlError(f"line {lineno}: duplicate key {key!r}")
            rest = rest.strip()
            i += 1
            if rest:
                val, end = _parse_flow(rest)
                if rest[end:].strip():
                    raise YamlError(f"line {lineno}: trailing text {rest[end:]!r}")
                mapping[key] = val
            elif i < len(lines) and lines[i][1] > indent:
                mapping[key], i = parse_block(i, lines[i][1])
            elif i < len(lines) and lines[i][1] == indent and lines[i][2].startswith("-"):
                mapping[key], i = parse_block(i, indent)  # "key:\n- a" style
            else:
                mapping[key] = None
        if i < len(lines) and lines[i][1] > indent:
            raise YamlError(f"line {lines[i][0]}: unexpected indentation")
        return mapping, i

    if not lines:
        return None
    value, i = parse_block(0, lines[0][1])
    if i != len(lines):
        raise YamlError(f"line {lines[i][0]}: unexpected indentation")
    return value


def yaml_load(text: str) -> Any:
    try:
        import yaml  # type: ignore
    except ImportError:
        return mini_yaml_load(text)
    return yaml.safe_load(text)


# ---------------------------------------------------------------------------
# Definitions
# ---------------------------------------------------------------------------

FIELD_TYPES = ("string", "int", "float", "bool", "timestamp")
AGGS = ("count", "sum", "mean", "min", "max", "stddev", "last")


@dataclass
class EventDef:
    name: str
    key: str
    timestamp: str
    fields: dict[str, str]          # name -> type, declaration order
    required: set[str]
    id_field: str | None = None
    # How long, in event time, an id is remembered (ms); the default is the
    # largest window of the event's views, as freshet's loader has it.
    dedupe_ms: int | None = None


@dataclass
class FeatureDef:
    name: str
    agg: str
    field: str | None
    field_type: str | None
    window: int
    hop: int


@dataclass
class ViewDef:
    name: str
    source: str
    entity: str
    max_lateness: int
    ttl: int
    features: list[FeatureDef]

    @property
    def max_window(self) -> int:
        return max(f.window for f in self.features)

    @property
    def max_hop(self) -> int:
        return max(f.hop for f in self.features)


@dataclass
class Schema:
    events: dict[str, EventDef] = field(default_factory=dict)
    views: dict[str, ViewDef] = field(default_factory=dict)

    def views_of(self, event: str) -> list[ViewDef]:
        return [self.views[n] for n in sorted(self.views) if self.views[n].source == event]


def _s(v: Any) -> str:
    # PyYAML may type scalars (numbers, bools); the schema wants text.
    return v if isinstance(v, str) else str(v)


def load_schema(path: str) -> Schema:
    """Read one YAML file or every *.yaml/*.yml of a directory (sorted)."""
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.yaml")) + glob.glob(os.path.join(path, "*.yml")))
        if not files:
            raise ValueError(f"no *.yaml files in {path}")
    else:
        files = [path]
    raw_events: dict[str, Any] = {}
    raw_views: dict[str, Any] = {}
    for f in files:
        with open(f, encoding="utf-8") as fh:
            doc = yaml_load(fh.read()) or {}
        for name, body in (doc.get("events") or {}).items():
            if name in raw_events:
                raise ValueError(f"{f}: duplicate event {name}")
            raw_events[name] = body
        for name, body in (doc.get("feature_views") or {}).items():
            if name in raw_views:
                raise ValueError(f"{f}: duplicate feature view {name}")
            raw_views[name] = body
    schema = Schema()
    for name, body in raw_events.items():
        fields = {_s(k): _s(v) for k, v in (body.get("fields") or {}).items()}
        for k, t in fields.items():
            if t not in FIELD_TYPES:
                raise ValueError(f"event {name}: field {k}: unknown type {t}")
        ts = _s(body["timestamp"])
        # The timestamp field need not be listed under fields.
        fields.setdefault(ts, "timestamp")
        if fields[ts] != "timestamp":
            raise ValueError(f"event {name}: timestamp field {ts} must be of type timestamp")
        key = _s(body["key"])
        required = {_s(r) for r in (body.get("required") or [])}
        # Without a key and an event time an event cannot be published at all.
        required |= {key, ts}
        id_field = _s(body["id"]) if body.get("id") is not None else None
        dedupe = parse_duration_ms(body["dedupe_window"]) if body.get("dedupe_window") is not None else None
        schema.events[name] = EventDef(name, key, ts, fields, required, id_field, dedupe)
    for name, body in raw_views.items():
        source = _s(body["source"])
        ev = schema.events[source]
        feats = []
        for fname, fb in (body.get("features") or {}).items():
            agg = _s(fb["agg"])
            if agg not in AGGS:
                raise ValueError(f"view {name}: feature {fname}: unknown agg {agg}")
            fld = _s(fb["field"]) if fb.get("field") is not None else None
            if fld is None and agg != "count":
                raise ValueError(f"view {name}: feature {fname}: {agg} needs a field")
            window = parse_duration_ms(fb["window"])
            hop = parse_duration_ms(fb["hop"]) if fb.get("hop") is not None else default_hop_ms(window)
            feats.append(FeatureDef(fname, agg, fld, ev.fields[fld] if fld else None, window, hop))
        if not feats:
            raise ValueError(f"view {name}: no features")
        v = ViewDef(name, source, _s(body["entity"]), 0, 0, feats)
        v.max_lateness = parse_duration_ms(body["max_lateness"]) if body.get("max_lateness") is not None else v.max_window
        v.ttl = parse_duration_ms(body["ttl"]) if body.get("ttl") is not None else v.max_window + v.max_hop
        schema.views[name] = v
    for ev in schema.events.values():
        if ev.id_field and ev.dedupe_ms is None:
            ev.dedupe_ms = max((v.max_window for v in schema.views_of(ev.name)), default=0)
    return schema


# ---------------------------------------------------------------------------
# Strict event decoding
# ---------------------------------------------------------------------------

class Invalid(ValueError):
    """The event is rejected (never counted)."""


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant).
    Own arithmetic rather than datetime, which cannot represent year 0."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        return 29 if (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def parse_rfc3339_ms(s: str) -> int:
    """RFC 3339 text to epoch ms, truncating below the millisecond (towards
    the past, i.e. floor, which is what Go's Time.UnixMilli does)."""
    m = _RFC3339.fullmatch(s)
    if not m:
        raise Invalid(f"not an RFC 3339 timestamp: {s!r}")
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac, off = m.group(7) or "", m.group(8)
    if not (1 <= mo <= 12 and 1 <= d <= _days_in_month(y, mo) and h <= 23 and mi <= 59 and sec <= 59):
        raise Invalid(f"timestamp out of range: {s!r}")
    off_s = 0
    if off != "Z":
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            raise Invalid(f"timestamp offset out of range: {s!r}")
        off_s = (oh * 3600 + om * 60) * (1 if off[0] == "+" else -1)
    secs = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_s
    return secs * 1000 + int((frac + "000")[:3])


def parse_time_arg(s: str) -> int:
    """--at values: RFC 3339 or integer epoch ms."""
    if re.fullmatch(r"-?\d+", s.strip()):
        return int(s)
    try:
        return parse_rfc3339_ms(s.strip())
    except Invalid as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN/Infinity, JSON does not.
    raise ValueError(f"not JSON: {name}")


def _is_int(v: Any) -> bool:
    return type(v) is int  # bool is a subclass of int: exclude it


def decode_value(ftype: str, v: Any) -> Any:
    if ftype == "string":
        if type(v) is not str:
            raise Invalid("expected a JSON string")
        return v
    if ftype == "int":
        # json.loads makes 3 an int and 3.0 / 3e0 floats, which is exactly the
        # "no fraction or exponent" rule.
        if not _is_int(v):
            raise Invalid("expected a JSON integer")
        if not INT64_MIN <= v <= INT64_MAX:
            raise Invalid("integer out of int64 range")
        return v
    if ftype == "float":
        if not (_is_int(v) or type(v) is float):
            raise Invalid("expected a JSON number")
        try:
            f = float(v)
        except OverflowError:
            raise Invalid("number out of float64 range") from None
        if not math.isfinite(f):  # 1e400 parses to inf
            raise Invalid("number out of float64 range")
        return f
    if ftype == "bool":
        if type(v) is not bool:
            raise Invalid("expected true or false")
        return v
    if ftype == "timestamp":
        if type(v) is str:
            return parse_rfc3339_ms(v)
        if _is_int(v):
            if not INT64_MIN <= v <= INT64_MAX:
                raise Invalid("epoch ms out of int64 range")
            return v
        raise Invalid("expected an RFC 3339 string or integer epoch ms")
    raise AssertionError(ftype)


def decode_event(line: bytes | str, ev: EventDef) -> dict[str, Any]:
    """Decode one NDJSON line into {field: value} (absent fields omitted) or
    raise Invalid."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("not UTF-8") from None
    try:
        obj = json.loads(line, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        raise Invalid(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise Invalid("not a JSON object")
    out: dict[str, Any] = {}
    for name, ftype in ev.fields.items():
        v = obj.get(name)
        if v is None:  # missing or null: absent
            if name in ev.required:
                raise Invalid(f"missing required field {name}")
            continue
        try:
            out[name] = decode_value(ftype, v)
        except Invalid as e:
            raise Invalid(f"field {name}: {e}") from None
    return out


# ---------------------------------------------------------------------------
# freshet's JSON text of a value, for the `last` tie-break
# ---------------------------------------------------------------------------

def go_json(v: Any) -> bytes:
    """The bytes freshet's normalized JSON holds for v (encoding/json's
    format, except that a float always shows a decimal point or exponent and
    <, >, & are not escaped). Only used to break ties between events with the
    same event time, where the spec compares the JSON texts of the values."""
    if v is True:
        return b"true"
    if v is False:
        return b"false"
    if _is_int(v):
        return str(v).encode()
    if isinstance(v, float):
        t = _go_float(v)
        if not any(c in t for c in ".eE"):
            t += ".0"  # 3.0, not 3
        return t.encode()
    if isinstance(v, str):
        return _go_string(v).encode("utf-8", "surrogatepass")
    raise TypeError(type(v))


def _go_float(f: float) -> str:
    # encoding/json: shortest round-trip digits; plain notation for
    # 1e-6 <= |f| < 1e21, else exponent form with "e-07" shortened to "e-7".
    # Python's repr has the same shortest digits, and in the exponent range
    # it already writes "1.5e-07" / "1e+21", i.e. Go's strconv 'e' format.
    if f == 0:
        return "-0" if math.copysign(1, f) < 0 else "0"
    r = repr(f)
    if 1e-6 <= abs(f) < 1e21:
        s = format(Decimal(r), "f")
        if "." in s:
            s = s.rstrip("0").rstrip(".")
        return s
    return re.sub(r"e-0(\d)$", r"e-\1", r)


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif c < 0x20 or c in (0x2028, 0x2029):
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------
# Replay: validation, partitioning, per-view lateness
# ---------------------------------------------------------------------------

@dataclass
class Accepted:
    time: int
    values: dict[str, Any]


@dataclass
class Replay:
    schema: Schema
    event: EventDef
    views: list[ViewDef]
    # view -> entity (as text) -> accepted events, in send order
    accepted: dict[str, dict[str, list[Accepted]]]
    valid: int
    invalid: int
    late: dict[str, int]
    invalid_reasons: dict[str, int]
    # Event×view updates skipped because the entity applied the same id
    # within the dedupe window before, as featurize skips them.
    duplicates: dict[str, int] = field(default_factory=dict)


def iter_lines(paths: Iterable[str]) -> Iterator[bytes]:
    """Lines of the files in order: concatenated files are the send order.
    Whitespace-only lines are skipped (not events at all, so not counted)."""
    for p in paths:
        with open(p, "rb") as fh:
            for raw in fh:
                raw = raw.rstrip(b"\r\n")
                if raw.strip():
                    yield raw


def entity_text(v: Any) -> str:
    return v if isinstance(v, str) else str(v)


# Plausible event times (ingest refuses the others, featurize skips them):
# at most this far ahead of the clock, and not before the floor.
DEFAULT_MAX_CLOCK_SKEW_MS = 5 * 60 * 1000
DEFAULT_MIN_EVENT_TIME_MS = 946684800000  # 2000-01-01T00:00:00Z


def replay(schema: Schema, lines: Iterable[bytes | str], partitions: int = DEFAULT_PARTITIONS,
           event_name: str | None = None, lateness: bool = True, now_ms: int | None = None,
           max_skew_ms: int = DEFAULT_MAX_CLOCK_SKEW_MS, floor_ms: int = DEFAULT_MIN_EVENT_TIME_MS) -> Replay:
    """Validate and route the events as the live pipeline does. lateness=False
    keeps every valid event, as a point-in-time backfill does (it sees all of
    history at once, so no event is late). An event whose time is more than
    max_skew_ms after now_ms (default: the wall clock) or before floor_ms is
    invalid: it never counts and never raises a watermark."""
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    if event_name is None:
        if len(schema.events) != 1:
            raise ValueError(f"several event types ({', '.join(sorted(schema.events))}): name one")
        event_name = next(iter(schema.events))
    ev = schema.events[event_name]
    views = schema.views_of(event_name)
    accepted: dict[str, dict[str, list[Accepted]]] = {v.name: {} for v in views}
    late = {v.name: 0 for v in views}
    reasons: dict[str, int] = {}
    valid = invalid = 0
    # Highest valid event time seen per partition; absent = nothing seen yet.
    watermark: dict[int, int] = {}
    # (view, entity, id) -> event times applied: featurize's rule skips an
    # event whose id the entity applied at a time within the dedupe window.
    applied: dict[tuple[str, str, str], list[int]] = {}
    duplicates = {v.name: 0 for v in views}
    for line in lines:
        try:
            values = decode_event(line, ev)
        except Invalid as e:
            invalid += 1
            r = str(e).split(":")[0]
            reasons[r] = reasons.get(r, 0) + 1
            continue
        t = values[ev.timestamp]
        if t > now_ms + max_skew_ms or t < floor_ms:
            invalid += 1
            reasons["implausible time"] = reasons.get("implausible time", 0) + 1
            continue
        valid += 1
        ident = values.get(ev.id_field) if ev.id_field else None
        p = partition_for(key_bytes(values[ev.key]), partitions)
        wm = watermark.get(p)
        for v in views:
            ent = values.get(v.entity)
            if ent is None:
                continue  # belongs to no entity of this view (not counted late either)
            # Lateness is judged against the watermark *before* this event.
            if lateness and wm is not None and t < wm - v.max_lateness:
                late[v.name] += 1
                continue
            if ident is not None:
                times = applied.setdefault((v.name, entity_text(ent), entity_text(ident)), [])
                if any(abs(t - x) <= ev.dedupe_ms for x in times):
                    duplicates[v.name] += 1
                    continue
                times.append(t)
            accepted[v.name].setdefault(entity_text(ent), []).append(Accepted(t, values))
        # Every valid event raises the partition's watermark, whichever view
        # dropped it (a late event can't raise it anyway).
        watermark[p] = t if wm is None else max(wm, t)
    return Replay(schema, ev, views, accepted, valid, invalid, late, reasons, duplicates)


# ---------------------------------------------------------------------------
# Feature values, brute force
# ---------------------------------------------------------------------------

def window_start(t: int, window: int, hop: int) -> int:
    # Python's // is floor division, also for negative numerators.
    return (t - window) // hop * hop


# A value that does not fit its type: served as null with the status
# OVERFLOW (see the README's "Overflow is not an empty window").
OVERFLOW = {"status": "OVERFLOW"}
FLOAT_MAX = Fraction(sys.float_info.max)


def feature_value(f: FeatureDef, events: list[Accepted], t: int) -> Any:
    lo = window_start(t, f.window, f.hop)
    in_win = [e for e in events if lo <= e.time <= t]
    if f.agg == "count":
        if f.field is None:
            return len(in_win)
        return sum(1 for e in in_win if f.field in e.values)
    with_field = [e for e in in_win if f.field in e.values]
    vals = [e.values[f.field] for e in with_field]
    if f.agg in ("sum", "mean", "stddev"):
        exact_sum = sum(Fraction(x) for x in vals)
        # A float field's sum beyond float64 overflows its sum, mean and
        # stddev; an int field's mean comes from its exact sum and never does.
        float_overflow = f.field_type == "float" and abs(exact_sum) > FLOAT_MAX
    if f.agg == "sum":
        if f.field_type == "float":
            if float_overflow:
                return OVERFLOW
            return math.fsum(vals)  # correctly rounded; 0.0 when empty
        total = sum(vals)  # exact int; 0 when empty
        return total if INT64_MIN <= total <= INT64_MAX else OVERFLOW
    if not vals:
        return None
    if f.agg == "mean":
        return OVERFLOW if float_overflow else float(exact_sum / len(vals))
    if f.agg == "min":
        return min(vals)
    if f.agg == "max":
        return max(vals)
    if f.agg == "stddev":
        if float_overflow:
            return OVERFLOW
        # Population stddev computed exactly, rounded once at the sqrt.
        fr = [Fraction(x) for x in vals]
        mean = exact_sum / len(fr)
        m2 = sum((x - mean) ** 2 for x in fr)
        if m2 > FLOAT_MAX:
            return OVERFLOW  # the sum of squared deviations leaves float64
        return math.sqrt(m2 / len(fr))
    if f.agg == "last":
        best = max(with_field, key=lambda e: (e.time, go_json(e.values[f.field])))
        return best.values[f.field]
    raise AssertionError(f.agg)


def event_time_at(events: list[Accepted], t: int) -> int | None:
    """The newest accepted event time at or before t, None when there is
    none: what an answer as of t gives as its event_time."""
    return max((e.time for e in events if e.time <= t), default=None)


def compute(rep: Replay, ats: list[int]) -> dict[str, Any]:
    """The reference output (see the module doc). Per entity, "event_time" is
    its newest accepted event time; "event_time_at" is, per as-of time t, the
    newest accepted event time at or before t (null when every event of the
    entity is later): what serve answers as event_time for a lookup as of t."""
    views_out: dict[str, Any] = {}
    for v in rep.views:
        ents: dict[str, Any] = {}
        for ent in sorted(rep.accepted[v.name]):
            evs = rep.accepted[v.name][ent]
            ents[ent] = {
                # The newest event of all: what an answer at or after it
                # gives, and what retention and ttl are measured from.
                "event_time": max(e.time for e in evs),
                "at": {str(t): {f.name: feature_value(f, evs, t) for f in v.features} for t in ats},
                "event_time_at": {str(t): event_time_at(evs, t) for t in ats},
            }
        views_out[v.name] = ents
    return {
        "views": views_out,
        "counts": {"valid": rep.valid, "invalid": rep.invalid, "late": dict(rep.late),
                   "duplicates": dict(rep.duplicates)},
        # Not part of the comparison: what this script understood of the
        # definitions, so that a reader (or check_serve.py) can see it.
        "meta": {
            "event": rep.event.name,
            "at": ats,
            "views": {
                v.name: {
                    "entity": v.entity,
                    "max_lateness_ms": v.max_lateness,
                    "ttl_ms": v.ttl,
                    "retention_ms": v.max_window + v.max_hop,
                    "features": {
                        f.name: {"agg": f.agg, "field": f.field, "field_type": f.field_type,
                                 "window_ms": f.window, "hop_ms": f.hop}
                        for f in v.features
                    },
                }
                for v in rep.views
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", required=True, help="YAML file or directory of *.yaml definitions")
    ap.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="topic partitions (default 6)")
    ap.add_argument("--event", help="event type (default: the only one defined)")
    ap.add_argument("--events", nargs="+", required=True, metavar="FILE",
                    help="NDJSON files, concatenated in order = send order")
    ap.add_argument("--at", action="append", required=True, type=parse_time_arg,
                    help="as-of time, RFC 3339 or epoch ms (repeatable)")
    ap.add_argument("--out", help="output file (default stdout)")
    ap.add_argument("--no-lateness", action="store_true",
                    help="keep late events, as a point-in-time backfill does")
    ap.add_argument("--now", type=parse_time_arg,
                    help="the clock event times are judged against, RFC 3339 or epoch ms (default: now)")
    ap.add_argument("--max-clock-skew", default="5m",
                    help="how far ahead of --now an event time may be (default 5m)")
    ap.add_argument("--min-event-time", type=parse_time_arg, default=DEFAULT_MIN_EVENT_TIME_MS,
                    help="earliest plausible event time (default 2000-01-01T00:00:00Z)")
    args = ap.parse_args(argv)

    schema = load_schema(args.schemas)
    rep = replay(schema, iter_lines(args.events), args.partitions, args.event, lateness=not args.no_lateness,
                 now_ms=args.now, max_skew_ms=parse_duration_ms(args.max_clock_skew), floor_ms=args.min_event_time)
    ats = sorted(set(args.at))
    out = compute(rep, ats)
    text = json.dumps(out, indent=1, sort_keys=False) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    ents = ", ".join(f"{v}: {len(e)} entities, {rep.late[v]} late" for v, e in rep.accepted.items())
    reasons = ", ".join(f"{k}: {n}" for k, n in sorted(rep.invalid_reasons.items()))
    print(f"reference: {rep.valid} valid, {rep.invalid} invalid{' (' + reasons + ')' if reasons else ''}; "
          f"{ents}; {len(ats)} as-of time(s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
