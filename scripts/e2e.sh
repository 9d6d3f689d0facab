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
#
# E2E_SECURE=1 runs the same, fully secured (#13 sections 5 and 8): bearer
# tokens on every HTTP API (made with `freshet token new`), HTTPS on all
# three services (a CA and a certificate for 127.0.0.1 made with openssl),
# Kafka over SASL_SSL (SCRAM-SHA-512) for ingest, its replay, featurize and
# the other producer, and Redis over TLS with the least-privilege users of
# docs/operations.md: featurize's for featurize, the read-only one for
# serve. It takes its servers from the variables that
# `scripts/kafka-local.sh start --sasl-ssl` and `scripts/redis-local.sh
# start tls` print (see secure_vars below; FRESHET_TEST_REDIS_URL and
# FRESHET_TEST_KAFKA_BROKERS are then unused). Every client sends its
# token and trusts only the test CA. On top of the same comparisons it
# checks the refusals (scripts/check_auth.py), that wrong passwords and a
# read-only Redis user stop featurize, serve and ingest within seconds
# with a clear error, and, last, that no secret (tokens, passwords, an
# OTLP header) appears in anything the run wrote: every log, every
# answer and /metrics scrape, the exported traces, the `freshet config`
# and --help output and the errors of the failing starts, and this
# script's own output (scripts/secret_scan.py, which first proves on
# canary files that it finds each secret). The services run with
# --log-level debug (access logs) and export traces to a local sink.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

secure=${E2E_SECURE:-}
case $secure in "" | 0) secure="" ;; esac
# What a secured run needs, as CI exports it: NAME:kind, kind "file" for
# a file that must be readable.
secure_vars=(
	FRESHET_TEST_KAFKA_SASL_BROKERS:value FRESHET_TEST_KAFKA_SASL_CA:file FRESHET_TEST_KAFKA_SASL_USERNAME:value
	FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE:file
	FRESHET_TEST_REDIS_TLS_URL:value FRESHET_TEST_REDIS_TLS_READONLY_URL:value
	FRESHET_TEST_REDIS_TLS_PASSWORD_FILE:file FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE:file
	FRESHET_TEST_REDIS_TLS_CA:file FRESHET_TEST_REDIS_TLS_CLIENT_CERT:file FRESHET_TEST_REDIS_TLS_CLIENT_KEY:file
)
if [ -n "$secure" ]; then
	case ${E2E_FROM_COMPOSE:-} in
	"" | 0) ;;
	*)
		echo "e2e: E2E_SECURE=1 runs the services as processes; it does not combine with E2E_FROM_COMPOSE" >&2
		exit 2
		;;
	esac
	bad=0
	for nk in "${secure_vars[@]}"; do
		v=${nk%%:*} kind=${nk##*:}
		if [ -z "${!v:-}" ]; then
			echo "e2e: E2E_SECURE=1 needs $v, which is not set" >&2
			bad=1
		elif [ "$kind" = file ] && [ ! -r "${!v}" ]; then
			echo "e2e: E2E_SECURE=1 needs $v to name a readable file; $v=${!v} is not one" >&2
			bad=1
		fi
	done
	if [ $bad = 1 ]; then
		echo "e2e: start the secured servers first and eval what they print:" >&2
		echo "e2e:   eval \"\$(scripts/kafka-local.sh start --sasl-ssl)\"; eval \"\$(scripts/redis-local.sh start tls)\"" >&2
		exit 2
	fi
	for tool in openssl curl; do
		command -v $tool >/dev/null 2>&1 || { echo "e2e: E2E_SECURE=1 needs $tool on PATH" >&2; exit 2; }
	done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/freshet-e2e.XXXXXX")
bin="$work/bin"
sec="$work/secrets" # what holds a secret; never searched, never printed
pids=()

cleanup() {
	local rc=$?
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	# The pids one by one: a bare `wait` could also wait for the tee of
	# this script's own output (a secured run), which ends only after it.
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ $rc -ne 0 ]; then
		echo "e2e: FAILED (rc=$rc); logs in $work" >&2
		for f in "$work"/*.log; do
			echo "--- $f (last 30 lines)" >&2
			if [ -n "$secure" ] && [ -d "$sec/values" ]; then
				# Printed with every secret masked: a log that leaked one
				# must not leak it again into CI's output.
				tail -n 30 "$f" | python3 scripts/secret_scan.py redact --secrets "$sec/values" >&2 || true
			else
				tail -n 30 "$f" >&2
			fi
		done
	else
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT

if [ -n "$secure" ]; then
	# A copy of everything this script prints, searched for secrets at the end.
	exec > >(tee "$work/e2e.stdout") 2> >(tee "$work/e2e.stderr" >&2)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() { # url, what
	for _ in $(seq 1 300); do
		if curl "${curl_tls[@]}" -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
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

if [ -n "$secure" ]; then
	redis_url=$FRESHET_TEST_REDIS_TLS_URL
elif [ -n "${FRESHET_TEST_REDIS_URL:-}" ]; then
	redis_url=$FRESHET_TEST_REDIS_URL
else
	port=$(free_port)
	redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >"$work/redis.log" 2>&1 &
	pids+=($!)
	redis_url="redis://127.0.0.1:$port/0"
fi
if [ -n "$secure" ]; then
	brokers=$FRESHET_TEST_KAFKA_SASL_BROKERS
elif [ -n "${FRESHET_TEST_KAFKA_BROKERS:-}" ]; then
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

# How the services are reached: plain HTTP and no options, or (secured)
# HTTPS trusting the test CA only, each client with its own token. The
# cli_* options are those of scripts/e2e_http.py.
scheme=http curl_tls=() cli_ingest=() cli_serve=() cli_metrics=()
# Per service, what differs from the exported settings.
svc_env=() serve_env=()
if [ -n "$secure" ]; then
	echo "e2e: secured: Kafka over SASL_SSL at $brokers (SCRAM-SHA-512, user $FRESHET_TEST_KAFKA_SASL_USERNAME);" \
		"Redis over TLS: featurize as $redis_url, serve as $FRESHET_TEST_REDIS_TLS_READONLY_URL"
	mkdir -m 700 "$sec" "$sec/values"
	tls="$work/tls"
	mkdir "$tls" "$work/answers"
	# Every secret of the run, one file each (scripts/secret_scan.py): those
	# it was given, and those it makes.
	head -n 1 "$FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE" >"$sec/values/kafka-password"
	head -n 1 "$FRESHET_TEST_REDIS_TLS_PASSWORD_FILE" >"$sec/values/redis-featurize-password"
	head -n 1 "$FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE" >"$sec/values/redis-serve-password"
	echo "e2e: secured: tokens of scopes ingest, serve, metrics and admin (freshet token new) in $work/tokens"
	: >"$work/tokens"
	for scope in ingest serve metrics admin; do
		"$bin/freshet" token new "e2e-$scope" "$scope" >"$sec/token-$scope.out"
		# The token, then its line of the tokens file; comments around them.
		mapfile -t tl < <(grep -v '^#' "$sec/token-$scope.out" | grep .)
		if [ ${#tl[@]} -ne 2 ] || [[ ${tl[1]} != "e2e-$scope $scope sha256:"* ]]; then
			echo "e2e: freshet token new e2e-$scope $scope printed something else than a token and its line" >&2
			exit 1
		fi
		printf '%s\n' "${tl[0]}" >"$sec/values/token-$scope"
		printf 'Authorization: Bearer %s\n' "${tl[0]}" >"$sec/header-$scope"
		printf '%s\n' "${tl[1]}" >>"$work/tokens"
	done
	unset tl
	# Secrets that must never be accepted, or shown, either: a token in no
	# file, wrong passwords (for the failing starts below), and a header
	# of the trace exporter.
	openssl rand -base64 32 | tr '+/' '-_' | tr -d '=' >"$sec/values/token-unknown"
	openssl rand -hex 16 >"$sec/values/wrong-kafka-password"
	openssl rand -hex 24 >"$sec/values/wrong-redis-password"
	openssl rand -hex 20 >"$sec/values/otlp-header"
	echo "e2e: secured: a CA and a certificate for 127.0.0.1 (openssl) for HTTPS on ingest, featurize and serve"
	(
		cd "$tls"
		openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -sha256 -days 2 \
			-subj "/CN=freshet e2e CA" -keyout "$sec/ca.key" -out ca.crt
		openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=127.0.0.1" \
			-keyout "$sec/server.key" -out server.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey "$sec/ca.key" -CAcreateserial -days 2 -sha256 \
			-extfile server.ext -out server.crt
	) >"$work/openssl.log" 2>&1 || { echo "e2e: openssl failed making the HTTPS certificates" >&2; exit 1; }
	ca="$tls/ca.crt"
	# The settings by their documented names: every program of the run
	# (services, replay, backfill, the other producer) reads them.
	export FRESHET_TOKENS="$work/tokens" FRESHET_TLS_CERT="$tls/server.crt" FRESHET_TLS_KEY="$sec/server.key"
	export FRESHET_KAFKA_TLS=true FRESHET_KAFKA_CA="$FRESHET_TEST_KAFKA_SASL_CA" FRESHET_KAFKA_SASL=scram-sha-512
	export FRESHET_KAFKA_USERNAME="$FRESHET_TEST_KAFKA_SASL_USERNAME"
	export FRESHET_KAFKA_PASSWORD_FILE="$FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE"
	export FRESHET_REDIS_CA="$FRESHET_TEST_REDIS_TLS_CA"
	export FRESHET_REDIS_CERT="$FRESHET_TEST_REDIS_TLS_CLIENT_CERT" FRESHET_REDIS_KEY="$FRESHET_TEST_REDIS_TLS_CLIENT_KEY"
	# featurize's user (FRESHET_REDIS_URL above); serve gets the read-only one.
	export FRESHET_REDIS_PASSWORD_FILE="$FRESHET_TEST_REDIS_TLS_PASSWORD_FILE"
	serve_env=(FRESHET_REDIS_URL="$FRESHET_TEST_REDIS_TLS_READONLY_URL"
		FRESHET_REDIS_PASSWORD_FILE="$FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE")
	# Access logs and everything else a service logs, to be searched.
	svc_env=(FRESHET_LOG_LEVEL=debug)
	# Traces, to be searched too: to a local sink, with a secret header.
	python3 scripts/otlp_sink.py --port-file "$work/otlp.port" --out "$work/traces.otlp" \
		--status "$work/otlp-status.json" --header x-e2e-otlp-key --header-value-file "$sec/values/otlp-header" \
		>"$work/otlp-sink.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 1 100); do [ -s "$work/otlp.port" ] && break; sleep 0.1; done
	[ -s "$work/otlp.port" ] || { echo "e2e: the OTLP sink did not start" >&2; exit 1; }
	export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$(cat "$work/otlp.port")"
	OTEL_EXPORTER_OTLP_HEADERS="x-e2e-otlp-key=$(cat "$sec/values/otlp-header")"
	export OTEL_EXPORTER_OTLP_HEADERS
	scheme=https curl_tls=(--cacert "$ca")
	cli_ingest=(--ca "$ca" --token-file "$sec/values/token-ingest" --save-answers "$work/answers/ingest.txt")
	cli_serve=(--ca "$ca" --token-file "$sec/values/token-serve" --save-answers "$work/answers/serve.txt")
	cli_metrics=(--ca "$ca" --token-file "$sec/values/token-metrics" --save-answers "$work/answers/metrics.txt")
fi

if [ -z "$from_compose" ]; then
	ingest_port=$(free_port) serve_port=$(free_port) feat_port=$(free_port)
	ingest="$scheme://127.0.0.1:$ingest_port" serve="$scheme://127.0.0.1:$serve_port" feats=("$scheme://127.0.0.1:$feat_port")

	FRESHET_HTTP_ADDR="127.0.0.1:$ingest_port" env "${svc_env[@]}" "$bin/ingest" >"$work/ingest.log" 2>&1 &
	ingest_pid=$!
	pids+=($ingest_pid)
	FRESHET_HTTP_ADDR="127.0.0.1:$feat_port" env "${svc_env[@]}" "$bin/featurize" >"$work/featurize.log" 2>&1 &
	feat_pid=$!
	pids+=($feat_pid)
	FRESHET_HTTP_ADDR="127.0.0.1:$serve_port" env "${svc_env[@]}" "${serve_env[@]}" "$bin/serve" >"$work/serve.log" 2>&1 &
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

if [ -n "$secure" ]; then
	echo "e2e: secured: tokens and TLS of every service (scripts/check_auth.py)"
	python3 scripts/check_auth.py --ca "$ca" --tokens "$sec/values" --ingest "$ingest" --serve "$serve" \
		"${feats[@]/#/--featurize=}" --save-answers "$work/answers/auth.txt" | tee "$work/check_auth.out"
	# freshet healthcheck, the compose stack's probe: trusting --ca; in a
	# service's container (FRESHET_TLS_CERT set) an http:// URL over
	# https; with neither, the test certificate is not trusted.
	{
		"$bin/freshet" healthcheck --ca "$ca" "$serve/readyz" &&
			"$bin/freshet" healthcheck "http://${ingest#https://}/readyz" &&
			! env -u FRESHET_TLS_CERT -u FRESHET_TLS_KEY "$bin/freshet" healthcheck "$serve/readyz"
	} >"$work/healthcheck.log" 2>&1 || {
		echo "e2e: freshet healthcheck: want success with --ca and with FRESHET_TLS_CERT, failure with neither" >&2
		exit 1
	}
	echo "e2e: freshet healthcheck trusts --ca and the service's own certificate, and nothing else"
fi

# feat_stats prints GET /v1/stats summed over every featurize instance.
feat_stats() {
	python3 - "${cli_metrics[@]}" "${feats[@]}" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import e2e_http
client, bases = e2e_http.split_args(sys.argv[1:])
total = {}
for base in bases:
    code, _, raw = client.request("GET", base + "/v1/stats")
    if code != 200:
        sys.exit(f"e2e: GET {base}/v1/stats: HTTP {code} {raw[:200]!r}")
    for k, v in json.loads(raw).items():
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
python3 - "${cli_ingest[@]}" "$ingest" "$now_ms" <<'PY'
import json, os, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import e2e_http
client, (ingest, now_ms) = e2e_http.split_args(sys.argv[1:])
now_ms = int(now_ms)
body = json.dumps([{"txn_id": "unit-check", "user_id": "u_0001", "amount": 1.0, "ts": now_ms},
                   {"txn_id": "unit-check", "user_id": "u_0001", "amount": "x", "ts": now_ms * 1000}]).encode()
code, _, raw = client.request("POST", f"{ingest}/v1/events/transaction", body, {"Content-Type": "application/json"})
if code < 300:
    sys.exit("e2e: a microsecond timestamp was accepted")
ans = json.loads(raw)
if code != 422:
    sys.exit(f"e2e: want 422, got {code} {ans}")
fields = sorted((d["index"], d.get("field")) for d in ans["details"])
ts = [d["error"] for d in ans["details"] if d.get("field") == "ts"]
if fields != [(1, "amount"), (1, "ts")] or "looks like epoch microseconds" not in ts[0]:
    sys.exit(f"e2e: want every bad field of event 1, the time named as microseconds: {ans}")
print(f"e2e: 422 as expected: {ts[0]}")
PY

echo "e2e: sending $(wc -l <"$work/http.ndjson") lines over HTTP"
python3 scripts/send_http.py --ingest "$ingest" --event transaction --batch 250 \
	--accepted-out "$work/http.accepted.ndjson" "${cli_ingest[@]}" "$work/http.ndjson"

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
python3 scripts/check_serve.py --ref "$work/ref.json" --serve "$serve" "${cli_serve[@]}" | tee "$work/check_serve.out"

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
		--view "$view" --entity-column "$col" --at-column ts 2>&1 | tee "$work/check_backfill-$view.out"
done

echo "e2e: scraping /metrics of every service and checking the counters against what was sent"
python3 - "${cli_metrics[@]}" "$work" "$ingest" "$feats_csv" "$serve" "$(feat_stats)" "$partitions" "$raw_n" "${secure:-0}" <<'PY'
import json, os, re, sys
sys.path.insert(0, os.path.join(os.getcwd(), "scripts"))
import e2e_http
client, args = e2e_http.split_args(sys.argv[1:])
work, ingest, feats, serve = args[0:4]
stats, partitions, raw_n, secure = json.loads(args[4]), int(args[5]), int(args[6]), args[7] != "0"
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

def scrape(base):
    code, _, raw = client.request("GET", base + "/metrics")
    if code != 200:
        sys.exit(f"e2e: GET {base}/metrics: HTTP {code} {raw[:200]!r}")
    text = raw.decode()
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
by_service = {"ingest": m}
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
    by_service[f"featurize {feat}"] = series
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
by_service["serve"] = m
present = total(m, "freshet_serve_lookups_total", status="PRESENT")
if present == 0 or total(m, "freshet_serve_lookups_total", status="NOT_FOUND") == 0:
    errors.append(f"serve lookups: want PRESENT and NOT_FOUND ones (check_serve asks for an unknown entity), got {present:g} PRESENT")
routes = {labels.get("http_route") for n, labels, _ in m if n == "http_server_request_duration_seconds_count"}
# /metrics: a refused scrape (401, 403) is counted, by its route.
if not routes or not routes <= {"/v1/features/{view}/{entity}", "/v1/features/{view}", "/get-online-features", "/v1/views",
                                "/metrics", "/", None}:
    errors.append(f"serve http_route labels are not route patterns: {routes}")
if total(m, "freshet_serve_store_read_duration_seconds_count", outcome="ok") == 0:
    errors.append("serve: no store read timed")

for svc, text in texts.items():
    if not re.search(r"^go_goroutine_count", text, re.M):
        errors.append(f"{svc}: no Go runtime metrics")
    if re.search(r'"(u_\d{4}|m_\d{3}|__freshet_never_seen__)"', text):
        errors.append(f"{svc}: an entity id is a label value")
auth_note = ""
if secure:
    # The name of the token, never the token, labels the requests; the
    # refusals of check_auth are counted by status.
    def req_series(svc, **want):
        return [(l, v) for n, l, v in by_service[svc] if n == "http_server_request_duration_seconds_count"
                and all(l.get(k) == w for k, w in want.items())]
    names = {"e2e-ingest", "e2e-serve", "e2e-metrics", "e2e-admin"}
    for svc in by_service:
        bad = {l.get("token") for l, _ in req_series(svc)} - names - {None}
        if bad:
            errors.append(f"{svc}: token label values {bad} are not token names")
    accepted_by = {l.get("token") for l, _ in req_series("ingest", http_route="/v1/events/{event}", http_response_status_code="202")}
    if accepted_by != {"e2e-ingest"}:
        errors.append(f"ingest: 202s labelled token={accepted_by}, want only e2e-ingest")
    served_by = {l.get("token") for l, _ in req_series("serve", http_response_status_code="200")}
    if served_by != {"e2e-serve"}:
        errors.append(f"serve: 200s labelled token={served_by}, want only e2e-serve")
    refused = {}
    for svc in ("ingest", "serve"):
        for code in ("401", "403"):
            refused[(svc, code)] = sum(v for _, v in req_series(svc, http_response_status_code=code))
            if refused[(svc, code)] == 0:
                errors.append(f"{svc}: no {code} counted, though check_auth was refused some")
    # Refused scrapes are counted too, by their route.
    if sum(v for _, v in req_series("serve", http_route="/metrics", http_response_status_code="401")) == 0:
        errors.append("serve: check_auth's refused /metrics scrapes (401) are not counted")
    auth_note = "; refused " + ", ".join(f"{svc} {code}: {v:g}" for (svc, code), v in refused.items())
if errors:
    sys.exit("e2e: metrics disagree with what was sent:\n  " + "\n  ".join(errors))
print(f"e2e: metrics agree: {http_accepted} accepted and {http_lines - http_accepted} rejected over HTTP, "
      f"{published} consumed, {stats['applied']} applied, {late} late, {present:g} PRESENT lookups{auth_note}")
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

if [ -n "$secure" ]; then
	# The services are stopped: what follows starts others, each on its
	# own port, group and key prefix, so that nothing of them can touch
	# the run's figures (already taken).
	fail_group="freshet-$run_id-fail" fail_prefix="freshet:$run_id-fail:"

	# must_fail NAME WANT SECONDS CMD...: CMD, a service given a bad secret
	# or setting, must stop by itself within SECONDS with a non-zero
	# status and an error matching the extended regex WANT. Its output is
	# kept in $work/fail-NAME.log, to be searched for secrets with the rest.
	must_fail() {
		local name=$1 want=$2 limit=$3 t0 ms rc=0 out
		shift 3
		out="$work/fail-$name.log"
		t0=$(date +%s%3N)
		FRESHET_HTTP_ADDR="127.0.0.1:$(free_port)" FRESHET_GROUP_ID="$fail_group" FRESHET_REDIS_PREFIX="$fail_prefix" \
			timeout 60 "$@" >"$out" 2>&1 </dev/null || rc=$?
		ms=$(($(date +%s%3N) - t0))
		if [ $rc -eq 0 ] || [ $rc -eq 124 ]; then
			echo "e2e: $name: want a failure within ${limit}s; got exit $rc after ${ms}ms" >&2
			return 1
		fi
		if [ $ms -gt $((limit * 1000)) ]; then
			echo "e2e: $name: failed, but only after ${ms}ms (want within ${limit}s)" >&2
			return 1
		fi
		if ! grep -qE "$want" "$out"; then
			echo "e2e: $name: exit $rc, but its output does not say /$want/ (see $out)" >&2
			return 1
		fi
		# What it said, masked: the search for secrets comes later.
		printf 'e2e: %s: exit %d after %d.%03ds: %s\n' "$name" $rc $((ms / 1000)) $((ms % 1000)) \
			"$(grep -oE "($want).{0,90}" "$out" | head -n 1 | python3 scripts/secret_scan.py redact --secrets "$sec/values")"
	}
	# with_secret VAR FILE CMD...: CMD (a function too) with VAR set to the
	# first line of FILE, a secret, in a subshell's environment: never on
	# a command line.
	with_secret() {
		local v=$1 f=$2
		shift 2
		(
			export "$v=$(head -n 1 "$f")"
			"$@"
		)
	}
	sv="$sec/values"
	ro_env=(FRESHET_REDIS_URL="$FRESHET_TEST_REDIS_TLS_READONLY_URL"
		FRESHET_REDIS_PASSWORD_FILE="$FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE")
	# The services ran as they should have: serve as the read-only user,
	# with access logs naming the tokens.
	grep -qF "redis-url=$FRESHET_TEST_REDIS_TLS_READONLY_URL " "$work/serve.log" ||
		{ echo "e2e: serve's start line does not name the read-only Redis user" >&2; exit 1; }
	grep -qF "redis-url=$FRESHET_TEST_REDIS_TLS_URL " "$work/featurize.log" ||
		{ echo "e2e: featurize's start line does not name its Redis user" >&2; exit 1; }
	for st in ingest:e2e-ingest serve:e2e-serve featurize:e2e-metrics; do
		grep -q "msg=\"http request\".* token=${st#*:}" "$work/${st%%:*}.log" ||
			{ echo "e2e: ${st%%:*}'s access log names no request of token ${st#*:}" >&2; exit 1; }
	done
	echo "e2e: secured: serve read Redis as $FRESHET_TEST_REDIS_TLS_READONLY_URL; the access logs name the tokens"

	echo "e2e: secured: wrong passwords, an untrusted CA and the read-only user stop the services with a clear error"
	must_fail featurize-wrong-redis-password 'WRONGPASS' 20 \
		env FRESHET_REDIS_PASSWORD_FILE="$sv/wrong-redis-password" "$bin/featurize"
	must_fail serve-wrong-redis-password 'WRONGPASS' 20 \
		env "${ro_env[@]}" FRESHET_REDIS_PASSWORD_FILE="$sv/wrong-redis-password" "$bin/serve"
	must_fail featurize-wrong-kafka-password 'SASL authentication failed' 20 \
		env FRESHET_KAFKA_PASSWORD_FILE="$sv/wrong-kafka-password" "$bin/featurize"
	must_fail ingest-wrong-kafka-password 'SASL authentication failed' 20 \
		env FRESHET_KAFKA_PASSWORD_FILE="$sv/wrong-kafka-password" "$bin/ingest"
	must_fail replay-wrong-kafka-password 'SASL authentication failed' 20 \
		env FRESHET_KAFKA_PASSWORD_FILE="$sv/wrong-kafka-password" "$bin/ingest" replay --event transaction \
		--max-errors 1000 "$work/replay.ndjson"
	with_secret FRESHET_KAFKA_PASSWORD "$sv/wrong-kafka-password" \
		must_fail featurize-wrong-kafka-password-env 'SASL authentication failed' 20 \
		env -u FRESHET_KAFKA_PASSWORD_FILE "$bin/featurize"
	must_fail featurize-kafka-untrusted-ca 'certificate signed by unknown authority' 20 \
		env FRESHET_KAFKA_CA="$ca" "$bin/featurize"
	must_fail featurize-redis-untrusted-ca 'certificate signed by unknown authority' 20 \
		env FRESHET_REDIS_CA="$ca" "$bin/featurize"
	must_fail featurize-read-only-redis-user 'NOPERM' 20 env "${ro_env[@]}" "$bin/featurize"
	must_fail serve-unknown-redis-user 'WRONGPASS' 20 \
		env "${ro_env[@]}" FRESHET_REDIS_URL="${FRESHET_TEST_REDIS_TLS_READONLY_URL/freshet-serve@/freshet-nobody@}" "$bin/serve"
	# Settings refused before any connection, with the secrets in the
	# environment: a password given twice, a Redis URL holding a
	# password with a bad port, tokens pasted into the tokens file.
	with_secret FRESHET_KAFKA_PASSWORD "$sv/kafka-password" \
		must_fail featurize-kafka-password-twice 'kafka-password: [^;]*is set together with kafka-password-file' 10 \
		"$bin/featurize"
	url_with_pw() { # URL PASSWORD-FILE: URL with the password after its user
		local u=$1
		[[ $u == *://*@* ]] || { echo "e2e: $u names no user to give a password to" >&2; return 1; }
		printf '%s' "${u%%@*}:$(head -n 1 "$2")@${u#*@}"
	}
	with_secret FRESHET_REDIS_URL <(url_with_pw "${FRESHET_TEST_REDIS_TLS_READONLY_URL/:[0-9]*\//:99x/}" "$sv/redis-serve-password") \
		must_fail serve-redis-url-with-password-bad-port 'is not a valid Redis URL' 10 \
		env -u FRESHET_REDIS_PASSWORD_FILE "$bin/serve"
	{
		echo "e2e-pasted metrics $(cat "$sv/token-metrics")"
		cat "$sv/token-serve"
	} >"$sec/tokens-pasted"
	must_fail serve-tokens-file-with-tokens 'tokens-pasted:1: ' 10 env FRESHET_TOKENS="$sec/tokens-pasted" "$bin/serve"

	echo "e2e: secured: passwords in the environment and in the Redis URL instead of files"
	# start_stop NAME WHAT CMD...: a service that must start, answer
	# WHAT (a URL path) with its token and stop cleanly on SIGTERM.
	start_stop() {
		local name=$1 path=$2 port pid rc=0
		shift 2
		port=$(free_port)
		FRESHET_HTTP_ADDR="127.0.0.1:$port" FRESHET_LOG_LEVEL=debug "$@" >"$work/$name.log" 2>&1 &
		pid=$!
		wait_http "https://127.0.0.1:$port/readyz" "$name" || { kill $pid; return 1; }
		curl "${curl_tls[@]}" -fsS -H @"$sec/header-serve" -o "$work/answers/$name.json" -D "$work/answers/$name.headers" \
			"https://127.0.0.1:$port$path" || { echo "e2e: $name: $path failed" >&2; kill $pid; return 1; }
		kill -TERM $pid
		wait $pid || rc=$?
		[ $rc -eq 0 ] || { echo "e2e: $name exited $rc after SIGTERM" >&2; return 1; }
		echo "e2e: $name: started, answered $path, stopped"
	}
	with_secret FRESHET_REDIS_URL <(url_with_pw "$FRESHET_TEST_REDIS_TLS_READONLY_URL" "$sv/redis-serve-password") \
		start_stop serve-redis-password-in-url /v1/features/user_spend/u_0007 \
		env -u FRESHET_REDIS_PASSWORD_FILE "$bin/serve"
	grep -q '"PRESENT"' "$work/answers/serve-redis-password-in-url.json" ||
		{ echo "e2e: serve with the password in its URL did not find u_0007" >&2; exit 1; }
	with_secret FRESHET_KAFKA_PASSWORD "$sv/kafka-password" \
		start_stop ingest-kafka-password-in-env /readyz env -u FRESHET_KAFKA_PASSWORD_FILE "$bin/ingest"

	echo "e2e: secured: freshet config and every --help, with every secret in the environment"
	(
		export FRESHET_KAFKA_PASSWORD="$(head -n 1 "$sv/kafka-password")"
		FRESHET_REDIS_URL="$(url_with_pw "$FRESHET_TEST_REDIS_TLS_URL" "$sv/redis-featurize-password")"
		export FRESHET_REDIS_URL
		"$bin/freshet" config >"$work/freshet-config.txt" 2>&1
		grep -q FRESHET_KAFKA_PASSWORD "$work/freshet-config.txt"
		for c in "ingest" "ingest replay" "featurize" "featurize rebuild" "featurize backfill" "serve" "freshet" \
			"freshet dev" "freshet token new" "freshet healthcheck"; do
			read -ra words <<<"$c"
			"$bin/${words[0]}" "${words[@]:1}" --help >"$work/help-${c// /-}.txt" 2>&1 || true
		done
	) || { echo "e2e: freshet config failed (see $work/freshet-config.txt)" >&2; exit 1; }

	# The traces: every service exported some, each request with the
	# exporter's header (so its secret was in use).
	python3 - "$work/otlp-status.json" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
n = st["requests"].get("/v1/traces", 0)
problems = []
if n == 0:
    problems.append("no trace export received")
if set(st["services"]) != {"ingest", "featurize", "serve"}:
    problems.append(f"traces of {st['services']}, want ingest, featurize and serve")
if st["header_missing_or_wrong"]:
    problems.append(f"{st['header_missing_or_wrong']} exports without the OTEL_EXPORTER_OTLP_HEADERS header")
if problems:
    sys.exit("e2e: traces: " + "; ".join(problems))
print(f"e2e: traces: {n} exports ({st['bytes']['/v1/traces']} bytes) from {', '.join(st['services'])}, "
      f"each with the exporter's secret header")
PY

	echo "e2e: secured: searching everything the run wrote for its $(ls "$sv" | wc -l) secrets ($(ls "$sv" | tr '\n' ' '))"
	python3 scripts/secret_scan.py selftest --secrets "$sv" --dir "$work/canary"
	# Everything under $work but the secrets themselves and the binaries,
	# built before any secret existed: logs, answers, scrapes, traces,
	# config and help output, the failing starts' errors, this script's
	# own output.
	if ! python3 scripts/secret_scan.py scan --secrets "$sv" --exclude "$sec" --exclude "$bin" \
		--exclude "$work/tools" "$work" | tee "$work/secret-scan.out"; then
		echo "e2e: a secret appears in what the run wrote (file and secret named above)" >&2
		exit 1
	fi
fi

# One line to set this run beside the others.
serve_line=$(grep -o 'checked [0-9]* values; [0-9]* mismatch' "$work/check_serve.out")
bf_values=0 bf_bad=0
for view in user_spend merchant_activity; do
	l=$(grep -o 'checked [0-9]* values; [0-9]* mismatch' "$work/check_backfill-$view.out")
	read -r _ n _ k _ <<<"$l"
	bf_values=$((bf_values + n)) bf_bad=$((bf_bad + k))
done
read -r _ sv_n _ sv_k _ <<<"$serve_line"
mode=plaintext
[ -n "$from_compose" ] && mode=compose
[ -n "$secure" ] && mode="secured (tokens, HTTPS, Kafka SASL_SSL, Redis TLS + ACL users)"
summary="e2e: summary: $mode, Redis $redis_url: serve $sv_n values compared, $sv_k mismatches;"
summary+=" backfill $bf_values values compared, $bf_bad mismatches"
if [ -n "$secure" ]; then
	summary+="; $(grep -o '[0-9]* checks of tokens' "$work/check_auth.out" | cut -d' ' -f1) auth/TLS checks"
	summary+=", $(ls "$work"/fail-*.log | wc -l) failing starts"
	summary+="; secret scan: $(sed -n 's/^secret_scan: \([0-9]*\) files.* \([0-9]*\) found$/\2 found in \1 files/p' "$work/secret-scan.out")"
fi
summary+="; ${SECONDS}s"
echo "$summary"
echo "e2e: OK"
