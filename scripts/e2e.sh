#!/usr/bin/env bash
# End-to-end check: ingest, featurize and serve as separate processes against
# a Redis server and a Kafka-protocol broker. Events go in over HTTP and by
# file replay, out of order, with invalid rows and late events among them;
# what serve answers is compared with scripts/reference.py, an offline
# computation that shares no code with the Go aggregation.
#
# Uses FRESHET_TEST_REDIS_URL and FRESHET_TEST_KAFKA_BROKERS when set;
# otherwise starts redis-server and `freshet kafka` (kfake) on free ports.
# Runnable by hand from the repository root: scripts/e2e.sh
#
# E2E_FROM_COMPOSE=1 runs the services as the compose stack
# (deploy/compose/docker-compose.yml) runs them: every instance (featurize's
# two replicas too) with exactly the command and environment the stack and
# its image give it, as deploy/compose/composeenv prints them, started with
# `env -i`, and waited for with its own healthcheck command. Only what
# cannot be the same outside containers changes, and each change is
# printed: the addresses of kafka and redis (these test servers; Redis must
# be standalone, as the stack's is), each instance's HTTP port (a free one),
# the bind-mounted /schemas (the repository's), PATH (the built binaries),
# and the topic prefix, group id and Redis prefix (this run's, so runs on a
# shared broker stay apart).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/freshet-e2e.XXXXXX")
bin="$work/bin"
pids=()

cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ $rc -ne 0 ]; then
		echo "e2e: FAILED (rc=$rc); logs in $work" >&2
		for f in "$work"/*.log; do echo "--- $f (last 30 lines)" >&2; tail -n 30 "$f" >&2; done
	else
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url, what
	for _ in $(seq 1 300); do
		if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	echo "e2e: $2 did not become ready at $1" >&2
	return 1
}

from_compose=${E2E_FROM_COMPOSE:-}
case $from_compose in "" | 0) from_compose="" ;; esac

echo "e2e: building binaries"
go build -o "$bin/" ./cmd/ingest ./cmd/featurize ./cmd/serve ./cmd/freshet
go build -o "$work/tools/" ./scripts/kafkaproduce
if [ -n "$from_compose" ]; then
	go build -o "$work/tools/" ./deploy/compose/composeenv
fi

if [ -n "${FRESHET_TEST_REDIS_URL:-}" ]; then
	redis_url=$FRESHET_TEST_REDIS_URL
else
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	pids+=($!)
	redis_url="redis://127.0.0.1:$port/0"
fi
if [ -n "${FRESHET_TEST_KAFKA_BROKERS:-}" ]; then
	brokers=$FRESHET_TEST_KAFKA_BROKERS
else
	port=$(free_port)
	"$bin/freshet" kafka --port "$port" >"$work/kafka.log" 2>&1 &
	pids+=($!)
	brokers="127.0.0.1:$port"
	sleep 0.5
fi

run_id="e2e$$x$RANDOM"
export FRESHET_SCHEMAS="$root/schemas/example"
export FRESHET_KAFKA_BROKERS="$brokers"
export FRESHET_REDIS_URL="$redis_url"
export FRESHET_TOPIC_PREFIX="freshet.$run_id."
export FRESHET_GROUP_ID="freshet-$run_id"
export FRESHET_REDIS_PREFIX="freshet:$run_id:"
export FRESHET_PARTITIONS=6
partitions=6

if [ -z "$from_compose" ]; then
	ingest_port=$(free_port) serve_port=$(free_port) feat_port=$(free_port)
	ingest="http://127.0.0.1:$ingest_port" serve="http://127.0.0.1:$serve_port" feats=("http://127.0.0.1:$feat_port")

	FRESHET_HTTP_ADDR="127.0.0.1:$ingest_port" "$bin/ingest" >"$work/ingest.log" 2>&1 &
	ingest_pid=$!
	pids+=($ingest_pid)
	FRESHET_HTTP_ADDR="127.0.0.1:$feat_port" "$bin/featurize" >"$work/featurize.log" 2>&1 &
	feat_pid=$!
	pids+=($feat_pid)
	FRESHET_HTTP_ADDR="127.0.0.1:$serve_port" "$bin/serve" >"$work/serve.log" 2>&1 &
	serve_pid=$!
	pids+=($serve_pid)
	procs=("featurize:$feat_pid" "ingest:$ingest_pid" "serve:$serve_pid")
	wait_http "$ingest/readyz" ingest
	wait_http "${feats[0]}/healthz" featurize
	wait_http "$serve/readyz" serve
	replay() { "$bin/ingest" replay "$@"; }
else
	case $redis_url in
	redis://*,* | *,* | redis+cluster://*)
		echo "e2e: E2E_FROM_COMPOSE needs a standalone Redis, as the stack runs (got $redis_url)" >&2
		exit 2
		;;
	esac
	redis_addr=${redis_url#redis://}
	redis_addr=${redis_addr%%/*}
	"$work/tools/composeenv" -bin "$bin" -addr "kafka:9092=$brokers" -addr "redis:6379=$redis_addr" \
		-env "FRESHET_TOPIC_PREFIX=$FRESHET_TOPIC_PREFIX" -env "FRESHET_GROUP_ID=$FRESHET_GROUP_ID" \
		-env "FRESHET_REDIS_PREFIX=$FRESHET_REDIS_PREFIX" >"$work/compose.sh"
	sed -n 's/^# /e2e: compose: /p' "$work/compose.sh"
	eval "$(cat "$work/compose.sh")"
	# compose_get INSTANCE FIELD copies the array compose_INSTANCE_FIELD into got.
	compose_get() {
		local -n src="compose_$1_$2"
		got=("${src[@]}")
	}
	feats=() procs=()
	for inst in "${compose_instances[@]}"; do
		compose_get "$inst" env
		inst_env=("${got[@]}")
		compose_get "$inst" cmd
		env -i "${inst_env[@]}" "${got[@]}" >"$work/$inst.log" 2>&1 &
		pids+=($!)
		procs+=("$inst:$!")
		compose_get "$inst" service
		svc=${got[0]}
		compose_get "$inst" url
		case $svc in
		ingest) ingest=${got[0]} ;;
		serve) serve=${got[0]} ;;
		featurize) feats+=("${got[0]}") ;;
		*)
			echo "e2e: compose service $svc: not part of this test" >&2
			exit 1
			;;
		esac
	done
	for inst in "${compose_instances[@]}"; do
		compose_get "$inst" env
		inst_env=("${got[@]}")
		compose_get "$inst" health
		ok=""
		for _ in $(seq 1 300); do
			if env -i "${inst_env[@]}" "${got[@]}" >/dev/null 2>&1; then
				ok=1
				break
			fi
			sleep 0.1
		done
		[ -n "$ok" ] || { echo "e2e: $inst not healthy: ${got[*]}" >&2; exit 1; }
	done
	echo "e2e: compose: ${compose_instances[*]} healthy, each by its own healthcheck"
	# Events sent while the replicas' consumer group still rebalances would
	# be redelivered (counted twice by the checks below, which expect each
	# message once): wait until it has settled with every replica in it.
	echo "e2e: compose: $("$work/tools/composeenv" wait-group -brokers "$brokers" -group "$FRESHET_GROUP_ID" -members "${#feats[@]}")"
	compose_get ingest env
	ingest_env=("${got[@]}")
	for kv in "${ingest_env[@]}"; do
		case $kv in FRESHET_PARTITIONS=*) partitions=${kv#*=} ;; esac
	done
	replay() { env -i "${ingest_env[@]}" ingest replay "$@"; }
fi
feats_csv=$(
	IFS=,
	echo "${feats[*]}"
)

# feat_stats prints GET /v1/stats summed over every featurize instance.
feat_stats() {
	python3 - "${feats[@]}" <<'PY'
import json, sys, urllib.request
total = {}
for base in sys.argv[1:]:
    for k, v in json.load(urllib.request.urlopen(base + "/v1/stats", timeout=10)).items():
        total[k] = total.get(k, 0) + v
print(json.dumps(total))
PY
}

echo "e2e: generating events"
python3 scripts/gen_events.py --users 400 --merchants 50 --events 12000 --start 2024-03-01T00:00:00Z \
	--span 48h --shuffle 20 --invalid 40 --late 30 --seed 11 --out "$work/all.ndjson" 2>"$work/gen.log"
# The first 40% go over HTTP, the rest by file replay, in that order, so
# each partition sees events in file order, as the reference assumes.
total=$(wc -l <"$work/all.ndjson")
head -n $((total * 4 / 10)) "$work/all.ndjson" >"$work/http.ndjson"
tail -n +$((total * 4 / 10 + 1)) "$work/all.ndjson" >"$work/replay.ndjson"

# Events whose time is in the wrong unit (microseconds, seconds) or a year
# ahead, in the middle of both parts: ingest refuses them (422, invalid
# replay rows) naming the likely unit, and the reference counts them
# invalid.
now_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
python3 - "$work" "$now_ms" <<'PY'
import datetime, json, sys
work, now_ms = sys.argv[1], int(sys.argv[2])
ahead = datetime.datetime.fromtimestamp(now_ms // 1000 + 366 * 86400, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
def ev(i, user, ts):
    return json.dumps({"txn_id": f"implausible_{i}", "user_id": user, "merchant_id": "m_001", "amount": 1.0, "ts": ts},
                      separators=(",", ":"))
bad = [ev(0, "u_0001", now_ms * 1000), ev(1, "u_0002", ahead), ev(2, "u_0003", now_ms // 1000)]
for name in ("http", "replay"):
    path = f"{work}/{name}.ndjson"
    lines = open(path, encoding="utf-8").read().splitlines()
    mid = len(lines) // 2
    lines[mid:mid] = bad
    open(path, "w", encoding="utf-8").write("\n".join(lines) + "\n")
PY

echo "e2e: an event in microseconds gets 422 naming the unit"
python3 - "$ingest" "$now_ms" <<'PY'
import json, sys, urllib.error, urllib.request
ingest, now_ms = sys.argv[1], int(sys.argv[2])
body = json.dumps([{"txn_id": "unit-check", "user_id": "u_0001", "amount": 1.0, "ts": now_ms},
                   {"txn_id": "unit-check", "user_id": "u_0001", "amount": "x", "ts": now_ms * 1000}]).encode()
req = urllib.request.Request(f"{ingest}/v1/events/transaction", data=body, method="POST",
                             headers={"Content-Type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=10)
    sys.exit("e2e: a microsecond timestamp was accepted")
except urllib.error.HTTPError as e:
    ans = json.loads(e.read())
    if e.code != 422:
        sys.exit(f"e2e: want 422, got {e.code} {ans}")
fields = sorted((d["index"], d.get("field")) for d in ans["details"])
ts = [d["error"] for d in ans["details"] if d.get("field") == "ts"]
if fields != [(1, "amount"), (1, "ts")] or "looks like epoch microseconds" not in ts[0]:
    sys.exit(f"e2e: want every bad field of event 1, the time named as microseconds: {ans}")
print(f"e2e: 422 as expected: {ts[0]}")
PY

echo "e2e: sending $(wc -l <"$work/http.ndjson") lines over HTTP"
python3 scripts/send_http.py --ingest "$ingest" --event transaction --batch 250 \
	--accepted-out "$work/http.accepted.ndjson" "$work/http.ndjson"

# Another producer than ingest writes events a year ahead and in
# microseconds straight to the topic, between the two parts: featurize
# counts them as rejected_time and they must not move any partition's
# watermark (the comparisons below would find the replayed events late).
python3 - "$work" "$now_ms" <<'PY'
import json, sys
work, now_ms = sys.argv[1], int(sys.argv[2])
with open(f"{work}/raw.tsv", "w", encoding="utf-8") as out:
    for i in range(1, 13):
        user = f"u_{i:04d}"
        ts = now_ms + 366 * 86400 * 1000 if i % 2 else now_ms * 1000
        out.write(user + "\t" + json.dumps({"txn_id": f"raw_{i}", "user_id": user, "merchant_id": "m_001",
                                              "amount": 1.0, "ts": ts}, separators=(",", ":")) + "\n")
PY
raw_n=$(wc -l <"$work/raw.tsv")
"$work/tools/kafkaproduce" -brokers "$brokers" -topic "${FRESHET_TOPIC_PREFIX}transaction" "$work/raw.tsv"

echo "e2e: replaying $(wc -l <"$work/replay.ndjson") lines from a file"
replay --event transaction --max-errors 1000 --rejects "$work/rejects.txt" "$work/replay.ndjson" \
	2>"$work/replay.log"
tail -n 1 "$work/replay.log"

# Offline reference over exactly what was sent, in send order.
ats=(2024-03-02T11:59:59.999Z 2024-03-02T23:59:59.999Z 2024-03-03T06:00:00Z 2024-03-03T09:00:00Z 2024-03-04T00:00:00Z)
at_args=()
for t in "${ats[@]}"; do at_args+=(--at "$t"); done
python3 scripts/reference.py --schemas schemas/example --partitions "$partitions" --now "$now_ms" \
	--events "$work/http.accepted.ndjson" "$work/replay.ndjson" "${at_args[@]}" --out "$work/ref.json"
python3 scripts/reference.py --schemas schemas/example --partitions "$partitions" --now "$now_ms" \
	--events "$work/http.accepted.ndjson" "${at_args[@]}" --out "$work/ref-http.json" 2>/dev/null

# The replay said, before publishing, how many of its rows featurize would
# drop as late: it must be what the reference finds in the replayed part.
python3 - "$work" <<'PY'
import json, re, sys
work = sys.argv[1]
ref, ref_http = (json.load(open(f"{work}/{n}.json")) for n in ("ref", "ref-http"))
want = {v: n - ref_http["counts"]["late"][v] for v, n in ref["counts"]["late"].items()}
last = open(f"{work}/replay.log", encoding="utf-8").read().strip().splitlines()[-1]
m = re.search(r"will be dropped as late by featurize \(([^)]*)\)", last)
got = {v: 0 for v in want}
if m:
    for part in m.group(1).split(", "):
        view, n = part.rsplit(" ", 1)
        got[view] = int(n)
if got != want:
    sys.exit(f"e2e: the replay estimated late rows {got}, the reference finds {want} in the replayed part: {last}")
print(f"e2e: the replay's late estimate {got} is the reference's")
PY

expected_invalid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["invalid"])' "$work/ref.json")
rejected=$(grep -c . "$work/rejects.txt" || true)
if [ "$rejected" != "$expected_invalid" ]; then
	echo "e2e: replay rejected $rejected rows, the reference finds $expected_invalid invalid" >&2
	exit 1
fi

published=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["valid"])' "$work/ref.json")
messages=$((published + raw_n))
echo "e2e: waiting for featurize to consume $messages messages ($published published by ingest, $raw_n by another producer)"
for _ in $(seq 1 600); do
	got=$(feat_stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')
	[ "$got" -ge "$messages" ] && break
	sleep 0.1
done
[ "$got" -eq "$messages" ] || { echo "e2e: featurize consumed $got of $messages messages" >&2; exit 1; }
feat_stats

python3 - "$work/ref.json" "$(feat_stats)" "$raw_n" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
stats, raw_n = json.loads(sys.argv[2]), int(sys.argv[3])
late = sum(ref["counts"]["late"].values())
if stats["late"] != late:
    sys.exit(f"featurize dropped {stats['late']} event updates as late, the reference {late}")
if stats["undecodable"] != 0:
    sys.exit(f"featurize found {stats['undecodable']} undecodable messages: ingest published something invalid")
if stats["rejected_time"] != raw_n:
    sys.exit(f"featurize rejected {stats['rejected_time']} messages for their time, want the {raw_n} written with implausible times")
print(f"e2e: late updates {late} as the reference; {raw_n} implausible times rejected")
PY

echo "e2e: comparing served features with the reference at ${ats[*]}"
python3 scripts/check_serve.py --ref "$work/ref.json" --serve "$serve"

echo "e2e: point-in-time backfill of the same files at non-aligned times, against the reference"
bf_ats=(2024-03-01T17:23:41.123Z 2024-03-02T08:07:13.457Z 2024-03-02T21:59:02.001Z 2024-03-03T01:12:00.500Z)
bf_args=()
for t in "${bf_ats[@]}"; do bf_args+=(--at "$t"); done
python3 scripts/reference.py --schemas schemas/example --partitions "$partitions" --no-lateness \
	--events "$work/http.accepted.ndjson" "$work/replay.ndjson" "${bf_args[@]}" --out "$work/ref-backfill.json" 2>/dev/null
python3 - "$work" "${bf_ats[@]}" <<'PY'
import csv, json, sys
work, ats = sys.argv[1], sys.argv[2:]
ref = json.load(open(f"{work}/ref-backfill.json"))
for view, col in (("user_spend", "user_id"), ("merchant_activity", "merchant_id")):
    with open(f"{work}/spine-{view}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([col, "ts", "label"])
        for i, ent in enumerate(sorted(ref["views"][view]) + ["never-seen"]):
            for t in ats:
                w.writerow([ent, t, i % 2])
PY
for vc in user_spend:user_id merchant_activity:merchant_id; do
	view=${vc%%:*} col=${vc##*:}
	"$bin/featurize" backfill --view "$view" --events "$work/http.accepted.ndjson" "$work/replay.ndjson" \
		--spine "$work/spine-$view.csv" --out "$work/backfill-$view.csv" --max-errors 1000 2>"$work/backfill-$view.log"
	tail -n 1 "$work/backfill-$view.log"
	python3 scripts/check_backfill.py --ref "$work/ref-backfill.json" --out "$work/backfill-$view.csv" \
		--view "$view" --entity-column "$col" --at-column ts
done

echo "e2e: scraping /metrics of every service and checking the counters against what was sent"
python3 - "$work" "$ingest" "$feats_csv" "$serve" "$(feat_stats)" "$partitions" "$raw_n" <<'PY'
import json, re, sys, urllib.request
work, ingest, feats, serve = sys.argv[1:5]
stats, partitions, raw_n = json.loads(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def scrape(base):
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    series = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            m = LINE.match(line)
            if not m:
                sys.exit(f"{base}/metrics: unparsable line {line!r}")
            series.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return text, series

def total(series, name, **want):
    return sum(v for n, labels, v in series if n == name and all(labels.get(k) == w for k, w in want.items()))

def lines(path):
    return sum(1 for l in open(path, encoding="utf-8") if l.strip())

errors = []
def expect(what, got, want):
    if got != want:
        errors.append(f"{what}: metrics say {got:g}, want {want:g}")

ref = json.load(open(f"{work}/ref.json"))
http_lines, http_accepted = lines(f"{work}/http.ndjson"), lines(f"{work}/http.accepted.ndjson")
published = ref["counts"]["valid"]  # accepted over HTTP + replayed
late = sum(ref["counts"]["late"].values())
texts = {}

text, m = scrape(ingest)
texts["ingest"] = text
expect("ingest accepted (events accepted over HTTP)", total(m, "freshet_ingest_events_accepted_total", event="transaction"), http_accepted)
# The unit check's request adds one invalid event (and one valid event of
# that request, refused with it as batch_invalid).
expect("ingest rejected as invalid (lines sent over HTTP that were not accepted, and the unit check's)",
       total(m, "freshet_ingest_events_rejected_total", event="transaction", reason="invalid"), http_lines - http_accepted + 1)
for reason in ("too_large", "kafka_unavailable"):
    expect(f"ingest rejected for {reason}", total(m, "freshet_ingest_events_rejected_total", reason=reason), 0)
expect("ingest events written to Kafka (HTTP)", total(m, "freshet_ingest_kafka_write_events_sum"), http_accepted)
if total(m, "http_server_request_duration_seconds_count", http_route="/v1/events/{event}", http_response_status_code="202") == 0:
    errors.append("ingest: no 202 in http_server_request_duration_seconds")

m = []  # every featurize instance's series together
for feat in feats.split(","):
    text, series = scrape(feat)
    texts[f"featurize {feat}"] = text
    m += series
expect("featurize messages (accepted over HTTP + replayed + another producer's)", total(m, "freshet_featurize_messages_total"), published + raw_n)
expect("featurize rejected_time (another producer's implausible times, per view)",
       total(m, "freshet_featurize_events_total", outcome="rejected_time"), raw_n * len(ref["counts"]["late"]))
expect("featurize messages (GET /v1/stats)", total(m, "freshet_featurize_messages_total"), stats["messages"])
expect("featurize applied (GET /v1/stats)", total(m, "freshet_featurize_events_total", outcome="applied"), stats["applied"])
expect("featurize late (the reference)", total(m, "freshet_featurize_events_total", outcome="late"), late)
expect("featurize duplicates (GET /v1/stats)", total(m, "freshet_featurize_events_total", outcome="duplicate"), stats["duplicates"])
expect("featurize undecodable", total(m, "freshet_featurize_events_total", outcome="undecodable"), 0)
expect("featurize freshness samples (one per applied update)", total(m, "freshet_featurize_freshness_seconds_count"), stats["applied"])
expect("featurize end-to-end delay samples (every message carries its ingest time)",
       total(m, "freshet_featurize_end_to_end_delay_seconds_count"), published)
# Per partition, the smallest lag any instance reports: a replica keeps its
# last value for a partition it no longer owns.
lags = {}
for n, labels, v in m:
    if n == "freshet_featurize_consumer_lag_messages":
        key = (labels.get("topic"), labels.get("partition"))
        lags[key] = min(v, lags.get(key, v))
if len(lags) != partitions or any(v != 0 for v in lags.values()):
    errors.append(f"featurize consumer lag after catching up: want 0 on {partitions} partitions, got {lags}")

text, m = scrape(serve)
texts["serve"] = text
present = total(m, "freshet_serve_lookups_total", status="PRESENT")
if present == 0 or total(m, "freshet_serve_lookups_total", status="NOT_FOUND") == 0:
    errors.append(f"serve lookups: want PRESENT and NOT_FOUND ones (check_serve asks for an unknown entity), got {present:g} PRESENT")
routes = {labels.get("http_route") for n, labels, _ in m if n == "http_server_request_duration_seconds_count"}
if not routes or not routes <= {"/v1/features/{view}/{entity}", "/v1/features/{view}", "/get-online-features", "/", None}:
    errors.append(f"serve http_route labels are not route patterns: {routes}")
if total(m, "freshet_serve_store_read_duration_seconds_count", outcome="ok") == 0:
    errors.append("serve: no store read timed")

for svc, text in texts.items():
    if not re.search(r"^go_goroutine_count", text, re.M):
        errors.append(f"{svc}: no Go runtime metrics")
    if re.search(r'"(u_\d{4}|m_\d{3}|__freshet_never_seen__)"', text):
        errors.append(f"{svc}: an entity id is a label value")
if errors:
    sys.exit("e2e: metrics disagree with what was sent:\n  " + "\n  ".join(errors))
print(f"e2e: metrics agree: {http_accepted} accepted and {http_lines - http_accepted} rejected over HTTP, "
      f"{published} consumed, {stats['applied']} applied, {late} late, {present:g} PRESENT lookups")
PY

echo "e2e: SIGTERM to every service: each must exit 0 within 10s"
for svc_pid in "${procs[@]}"; do
	svc=${svc_pid%%:*} pid=${svc_pid##*:}
	kill -TERM "$pid"
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then echo "e2e: $svc still running 10s after SIGTERM" >&2; exit 1; fi
	rc=0
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || { echo "e2e: $svc exited $rc after SIGTERM" >&2; exit 1; }
done
echo "e2e: OK"
