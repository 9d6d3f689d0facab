#!/usr/bin/env bash
# Runs a real Apache Kafka broker for tests: one node in KRaft mode (combined
# broker+controller), assembled from the org.apache.kafka jars on Maven Central
# (scripts/kafka/pom.xml), because CI and developer machines reach Maven Central
# but not kafka.apache.org. The in-process fake (kfake) covers `go test ./...`
# on a bare machine; this broker is what catches protocol and timing
# differences from the real thing.
#
#   scripts/kafka-local.sh start    # prints the export line on stdout when ready
#   scripts/kafka-local.sh start --sasl-ssl   # also a SASL_SSL and an mTLS listener (below)
#   scripts/kafka-local.sh env      # export FRESHET_TEST_KAFKA_BROKERS=127.0.0.1:9092
#   scripts/kafka-local.sh status
#   scripts/kafka-local.sh stop
#   scripts/kafka-local.sh class org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#
# Typical use:  eval "$(scripts/kafka-local.sh start)" && go test ./...
#
# Settings (environment):
#   FRESHET_KAFKA_DIR             work dir (libs, data, logs, pid)   default /tmp/freshet-kafka
#   FRESHET_KAFKA_PORT            client (PLAINTEXT) port            default 9092
#   FRESHET_KAFKA_CONTROLLER_PORT KRaft controller port              default port+1
#   FRESHET_KAFKA_START_TIMEOUT   seconds to wait for readiness      default 120
#   FRESHET_KAFKA_HEAP_OPTS       broker heap                        default -Xms256m -Xmx512m
#   FRESHET_KAFKA_KEEP_DATA=1     reuse the data dir of the last run instead of a fresh cluster
#   FRESHET_KAFKA_SASL_SSL=1      same as start --sasl-ssl
#   FRESHET_KAFKA_SASL_SSL_PORT   SASL_SSL port (with --sasl-ssl)     default port+2
#   FRESHET_KAFKA_MTLS_PORT       SSL port requiring a client
#                                 certificate (with --sasl-ssl)      default port+3
#
# With --sasl-ssl, start generates (openssl) a CA, a broker certificate for
# 127.0.0.1/localhost and a client certificate in $FRESHET_KAFKA_DIR/tls, adds
# a SASL_SSL listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN; user freshet,
# password in tls/password, kept across restarts) and an SSL listener that
# requires a client certificate, beside the PLAINTEXT one (unchanged), and
# prints their exports too: FRESHET_TEST_KAFKA_SASL_BROKERS,
# FRESHET_TEST_KAFKA_SASL_CA, FRESHET_TEST_KAFKA_SASL_USERNAME,
# FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE, FRESHET_TEST_KAFKA_MTLS_BROKERS,
# FRESHET_TEST_KAFKA_CLIENT_CERT, FRESHET_TEST_KAFKA_CLIENT_KEY.
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 java or mvn missing (callers then
# fall back to kfake, loudly), status: 1 when not running.
#
# Progress goes to stderr; stdout carries only the export line, so the output
# of `start` and `env` can be eval'd.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pom="$script_dir/kafka/pom.xml"
log4j_conf="$script_dir/kafka/log4j2.properties"

dir=${FRESHET_KAFKA_DIR:-/tmp/freshet-kafka}
port=${FRESHET_KAFKA_PORT:-9092}
cport=${FRESHET_KAFKA_CONTROLLER_PORT:-$((port + 1))}
timeout_s=${FRESHET_KAFKA_START_TIMEOUT:-120}
heap_opts=${FRESHET_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}
sasl_ssl=${FRESHET_KAFKA_SASL_SSL:-0}
sasl_port=${FRESHET_KAFKA_SASL_SSL_PORT:-$((port + 2))}
mtls_port=${FRESHET_KAFKA_MTLS_PORT:-$((port + 3))}
sasl_user=freshet
kept_data=0
host=127.0.0.1

libs="$dir/libs"
data="$dir/data"
props="$dir/server.properties"
pidfile="$dir/kafka.pid"
server_log="$dir/server.log" # written by log4j2 (kafka/log4j2.properties)
tls_dir="$dir/tls"             # CA, certificates and password of --sasl-ssl
tls_on="$tls_dir/listening"    # present while the running broker has those listeners
out_log="$dir/kafka.out"     # the JVM's own stdout/stderr: crashes, OOM
java=${JAVA_HOME:+$JAVA_HOME/bin/}java

say() { echo "kafka-local: $*" >&2; }

usage() {
	cat >&2 <<EOF
usage: $0 start [--sasl-ssl]|stop|status|env
       $0 class MAIN_CLASS [ARGS...]   run a Kafka CLI class (e.g. org.apache.kafka.tools.TopicCommand)
Runs a single-node KRaft Kafka broker on $host:$port (controller $cport) in $dir.
See the header of this script for the settings.
EOF
	exit 2
}

# now_ms: wall clock in milliseconds, for the timings printed by start.
now_ms() { date +%s%3N; }
secs_since() { # start_ms -> "1.234"
	local d=$(($(now_ms) - $1))
	printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

# running: true when the pid file names a live JVM running *our* broker. The
# command line is checked so a recycled pid (or a stale file after a reboot)
# is never mistaken for the broker, and never killed by stop.
running() {
	local pid
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $props" || return 1
	echo "$pid"
}

# alive PID: running and not a zombie. kill -0 alone is not enough: where
# PID 1 reaps orphans slowly (some containers), an exited server lingers as a
# zombie for seconds and would look alive.
alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# port_open HOST PORT: a TCP connect succeeds (bash's /dev/tcp, no nc needed).
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

print_env() {
	echo "export FRESHET_TEST_KAFKA_BROKERS=$host:$port"
	[ -f "$tls_on" ] || return 0
	local on_sasl_port on_mtls_port
	# shellcheck disable=SC1090 # written by start: the ports of that start
	. "$tls_on"
	echo "export FRESHET_TEST_KAFKA_SASL_BROKERS=$host:$on_sasl_port FRESHET_TEST_KAFKA_SASL_CA=$tls_dir/ca.pem" \
		"FRESHET_TEST_KAFKA_SASL_USERNAME=$sasl_user FRESHET_TEST_KAFKA_SASL_PASSWORD_FILE=$tls_dir/password"
	echo "export FRESHET_TEST_KAFKA_MTLS_BROKERS=$host:$on_mtls_port FRESHET_TEST_KAFKA_CLIENT_CERT=$tls_dir/client.pem" \
		"FRESHET_TEST_KAFKA_CLIENT_KEY=$tls_dir/client-key.pem"
}

# make_tls: a fresh CA, a broker certificate for 127.0.0.1 and localhost
# (the broker's PEM keystore: unencrypted PKCS#8 key, then the certificate)
# and a client certificate, all valid for 30 days; the password of user
# $sasl_user is made once and kept, so that a kept data dir
# (FRESHET_KAFKA_KEEP_DATA) and its SCRAM credential still agree.
make_tls() {
	local olog="$dir/openssl.log"
	command -v openssl >/dev/null 2>&1 || { say "ERROR: --sasl-ssl needs openssl on PATH"; exit 3; }
	mkdir -p "$tls_dir"
	[ -s "$tls_dir/password" ] || (umask 077 && openssl rand -hex 16 >"$tls_dir/password")
	(
		cd "$tls_dir"
		set -e
		openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=freshet test CA" \
			-keyout ca-key.pem -out ca.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout broker-key.pem -out broker.csr
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >broker.ext
		openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
			-extfile broker.ext -out broker.pem
		openssl pkcs8 -topk8 -nocrypt -in broker-key.pem -out broker-key.p8
		cat broker-key.p8 broker.pem >broker-keystore.pem
		openssl req -newkey rsa:2048 -nodes -subj "/CN=freshet-client" -keyout client-key.pem -out client.csr
		printf 'extendedKeyUsage=clientAuth\n' >client.ext
		openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 30 \
			-extfile client.ext -out client.pem
		rm -f ./*.csr ./*.ext ./*.srl broker-key.p8
	) >"$olog" 2>&1 || { say "ERROR: generating the certificates failed:"; cat "$olog" >&2; exit 1; }
}

# scram_format_args: the storage format's arguments that create the SCRAM
# credentials of $sasl_user (both hashes) in a fresh cluster.
scram_format_args() {
	local pw m
	pw=$(cat "$tls_dir/password")
	for m in SCRAM-SHA-512 SCRAM-SHA-256; do
		echo "--add-scram"
		echo "$m=[name=$sasl_user,password=$pw]"
	done
}

# add_scram_user: the same credentials in a kept data dir, which may predate
# --sasl-ssl, through the PLAINTEXT listener (an upsert; one hash per call).
add_scram_user() {
	local pw m
	pw=$(cat "$tls_dir/password")
	for m in SCRAM-SHA-512 SCRAM-SHA-256; do
		if ! timeout 60 "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$libs/*" \
			org.apache.kafka.tools.ConfigCommand --bootstrap-server "$host:$port" --alter \
			--add-config "$m=[password=$pw]" --entity-type users --entity-name "$sasl_user" \
			>"$dir/scram.log" 2>&1 </dev/null; then
			say "ERROR: creating the SCRAM user failed:"
			cat "$dir/scram.log" >&2
			return 1
		fi
	done
}

tail_logs() {
	local f shown=0
	for f in "$out_log" "$server_log"; do
		[ -s "$f" ] || continue
		say "--- last 60 lines of $f"
		tail -n 60 "$f" >&2
		shown=1
	done
	[ "$shown" = 1 ] || say "(the broker has written no log yet: $out_log and $server_log are empty)"
}

need_tools() {
	local missing=()
	command -v "$java" >/dev/null 2>&1 || missing+=(java)
	command -v mvn >/dev/null 2>&1 || missing+=(mvn)
	if [ ${#missing[@]} -gt 0 ]; then
		say "ERROR: ${missing[*]} not found on PATH; a real Kafka broker needs Java 17+ and Maven"
		say "       (Debian: apt-get install -y openjdk-17-jre-headless maven). Not starting."
		exit 3
	fi
	# Kafka 4 brokers are Java 17 bytecode; an older JVM fails with an
	# UnsupportedClassVersionError deep in the log, so say it up front.
	local v
	v=$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	if [ -n "$v" ] && [ "${v%%.*}" -lt 17 ] 2>/dev/null; then
		say "ERROR: $java is Java $v; Kafka 4 needs Java 17 or newer. Not starting."
		exit 3
	fi
}

# fetch_libs: copy the broker's jars into $libs with Maven. Skipped when the
# jars there came from the current pom.xml (a stamp holds its checksum), so a
# restart costs no Maven start-up at all; otherwise Maven copies from ~/.m2,
# first offline (fast, no network), then online for the first download, with
# one retry for a flaky network. The copy goes to a temporary dir and is
# swapped in whole, so an interrupted download never leaves a half classpath,
# and jars of an older Kafka version never linger beside the new ones.
fetch_libs() {
	local sum tmp mlog attempt
	sum=$(sha256sum "$pom" | cut -d' ' -f1)
	if [ -f "$libs/.pom.sha256" ] && [ "$(cat "$libs/.pom.sha256")" = "$sum" ]; then
		return 0
	fi
	tmp="$dir/libs.tmp"
	mlog="$dir/maven.log"
	rm -rf "$tmp"
	for attempt in offline online retry; do
		local mode=()
		[ "$attempt" = offline ] && mode=(-o)
		[ "$attempt" = offline ] || say "resolving Kafka jars with Maven ($attempt; first run downloads ~45 MB into ~/.m2)"
		# -B: batch mode, no TTY or progress bars; -ntp: no transfer log;
		# </dev/null: never wait for input in CI.
		if mvn -B -q -ntp "${mode[@]}" -Dstyle.color=never -f "$pom" \
			dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime \
			>"$mlog" 2>&1 </dev/null; then
			echo "$sum" >"$tmp/.pom.sha256"
			rm -rf "$libs"
			mv "$tmp" "$libs"
			return 0
		fi
		rm -rf "$tmp"
		[ "$attempt" = online ] && sleep 5
	done
	say "ERROR: Maven could not resolve the Kafka jars; last lines of $mlog:"
	tail -n 40 "$mlog" >&2
	exit 1
}

# write_config: server.properties for one combined broker+controller, with
# the SASL_SSL and mTLS listeners when asked.
write_config() {
	local listeners="PLAINTEXT://$host:$port,CONTROLLER://$host:$cport"
	local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	if [ "$sasl_ssl" = 1 ]; then
		listeners+=",SASL_SSL://$host:$sasl_port,MTLS://$host:$mtls_port"
		protocols+=",SASL_SSL:SASL_SSL,MTLS:SSL"
	fi
	cat >"$props" <<EOF
# Generated by scripts/kafka-local.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
# Kafka 4 KRaft with a dynamic quorum (KIP-853): the controller is found
# through bootstrap servers and the storage is formatted with --standalone;
# controller.quorum.voters (static quorum) must then not be set.
controller.quorum.bootstrap.servers=$host:$cport
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$listeners
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$data

# Topics: freshet creates its topics itself (broker.EnsureTopics, with its
# configured partitions), as production must. Auto-creation is off so that a
# code path which forgets to create a topic fails here with
# UNKNOWN_TOPIC_OR_PARTITION, as it would in production and under kfake,
# instead of silently getting a broker-default topic (a metadata probe with
# auto-creation on can even create the topic before EnsureTopics does).
auto.create.topics.enable=false
num.partitions=6
default.replication.factor=1
min.insync.replicas=1

# Single node: internal topics cannot have the default replication of 3.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer partitions than the default 50 for the internal topics: they are
# created on first use (the first consumer group), and 50 partitions make that
# first join noticeably slower on a 2-core machine. Semantics are unchanged.
offsets.topic.num.partitions=6
transaction.state.log.num.partitions=6
# Tests join groups constantly; the default 3 s delay would slow each first join.
group.initial.rebalance.delay.ms=0

# Small machine (2 cores): fewer threads than the defaults (3 network, 8 io).
num.network.threads=2
num.io.threads=4
EOF
	[ "$sasl_ssl" = 1 ] || return 0
	cat >>"$props" <<EOF

# --sasl-ssl: TLS with the certificates of $tls_dir (PEM stores), SASL on
# SASL_SSL (SCRAM users are created after start; PLAIN's are listed here),
# and a client certificate required on MTLS.
ssl.keystore.type=PEM
ssl.keystore.location=$tls_dir/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$tls_dir/ca.pem
listener.name.mtls.ssl.client.auth=required
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$sasl_user="$(cat "$tls_dir/password")";
EOF
}

# new_cluster_id: a Kafka cluster id is 16 random bytes in unpadded URL-safe
# base64 (what `kafka.tools.StorageTool random-uuid` prints); made here to
# save a JVM start. Like Kafka's Uuid.randomUuid, avoid a leading '-', which a
# CLI would read as an option.
new_cluster_id() {
	local id
	while :; do
		id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[ "${id:0:1}" != "-" ] && break
	done
	echo "$id"
}

format_storage() {
	local id flog="$dir/format.log" scram=()
	if [ "${FRESHET_KAFKA_KEEP_DATA:-}" = 1 ] && [ -f "$data/meta.properties" ]; then
		say "reusing the data in $data (FRESHET_KAFKA_KEEP_DATA=1)"
		kept_data=1
		return 0
	fi
	[ "$sasl_ssl" = 1 ] && mapfile -t scram < <(scram_format_args)
	# A fresh cluster on every start: tests get no topics or offsets from an
	# earlier run, and a changed port can never clash with the controller
	# endpoint recorded in the old metadata log.
	rm -rf "$data"
	id=$(new_cluster_id)
	echo "$id" >"$dir/cluster.id"
	if ! "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
		-Dlog4j2.configurationFile="$log4j_conf" -Dkafka.logs.dir="$dir" \
		-cp "$libs/*" kafka.tools.StorageTool format --standalone -t "$id" -c "$props" "${scram[@]}" \
		>"$flog" 2>&1 </dev/null; then
		say "ERROR: formatting the storage failed:"
		cat "$flog" >&2
		exit 1
	fi
}

# run_class: a Kafka CLI class on the same classpath, tuned for a short-lived
# JVM (C1 only, serial GC: ~1 s instead of ~2 s). With no -Dlog4j2 config,
# log4j2's default prints only errors, on the console.
run_class() {
	if [ ! -f "$libs/.pom.sha256" ]; then
		need_tools
		mkdir -p "$dir"
		fetch_libs
	fi
	"$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$libs/*" "$@"
}

# ready: the broker answers a metadata request (a topic listing goes through
# Metadata/ListTopics on the PLAINTEXT listener), not merely accepts TCP.
ready() {
	timeout 30 "$java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$libs/*" \
		org.apache.kafka.tools.TopicCommand --bootstrap-server "$host:$port" --list \
		>"$dir/ready.log" 2>&1 </dev/null
}

rss_mb() { # pid -> resident set size in MiB
	awk '/^VmRSS:/ {printf "%d", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "?"
}

cmd_start() {
	local pid t0 t_boot p
	if pid=$(running); then
		if [ "$sasl_ssl" = 1 ] && [ ! -f "$tls_on" ]; then
			say "ERROR: already running (pid $pid) on $host:$port without --sasl-ssl; stop it first"
			say "       (FRESHET_KAFKA_KEEP_DATA=1 keeps its topics across the restart)"
			exit 1
		fi
		say "already running (pid $pid) on $host:$port"
		print_env
		return 0
	fi
	need_tools
	# A port held by something else (another broker, kfake, a previous run
	# whose pid file was lost) would make the JVM die on bind, or worse, make
	# the readiness check talk to the wrong server: refuse up front.
	local ports=("$port" "$cport")
	[ "$sasl_ssl" = 1 ] && ports+=("$sasl_port" "$mtls_port")
	for p in "${ports[@]}"; do
		if port_open "$host" "$p"; then
			say "ERROR: $host:$p is already in use by another process:"
			{ ss -ltnp 2>/dev/null | grep -E "[:.]$p\b" || true; } >&2
			say "       stop it, or pick other ports with FRESHET_KAFKA_PORT=..."
			exit 1
		fi
	done
	mkdir -p "$dir"
	rm -f "$pidfile" "$tls_on"
	t0=$(now_ms)
	fetch_libs
	local t_libs
	t_libs=$(secs_since "$t0")
	[ "$sasl_ssl" = 1 ] && make_tls
	write_config
	t_boot=$(now_ms)
	format_storage
	local t_fmt
	t_fmt=$(secs_since "$t_boot")
	t_boot=$(now_ms)
	: >"$server_log"
	# setsid: the broker gets its own session, so a Ctrl-C aimed at whatever
	# ran this script (make, a test runner) does not kill it; nohup and
	# </dev/null detach it from the terminal. GC/JIT flags follow Kafka's own
	# kafka-run-class.sh; the heap is bounded so it fits beside the tests.
	# 9>&-: the broker must not inherit the lock fd, or it would hold the lock
	# for its whole life and the next start/stop would wait for it.
	# shellcheck disable=SC2086 # heap_opts is a list of JVM flags
	setsid nohup "$java" $heap_opts -server \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
		-Dkafka.logs.dir="$dir" -Dlog4j2.configurationFile="$log4j_conf" \
		-cp "$libs/*" kafka.Kafka "$props" >"$out_log" 2>&1 </dev/null 9>&- &
	pid=$!
	echo "$pid" >"$pidfile"
	say "started broker pid $pid; waiting up to ${timeout_s}s for $host:$port (log: $server_log)"
	local deadline=$(($(date +%s) + timeout_s))
	while :; do
		if ! alive "$pid"; then
			say "ERROR: the broker exited during start-up"
			tail_logs
			rm -f "$pidfile"
			exit 1
		fi
		# The cheap TCP check first; the JVM-based metadata check only once
		# the listener is up, so it usually runs once.
		if port_open "$host" "$port" && { [ "$sasl_ssl" != 1 ] || port_open "$host" "$sasl_port"; } && ready; then
			break
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "ERROR: the broker was not ready within ${timeout_s}s; stopping it"
			[ -s "$dir/ready.log" ] && { say "--- last metadata check:"; tail -n 5 "$dir/ready.log" >&2; }
			tail_logs
			cmd_stop
			exit 1
		fi
		sleep 0.5
	done
	if [ "$sasl_ssl" = 1 ]; then
		if [ "$kept_data" = 1 ]; then add_scram_user || { cmd_stop; exit 1; }; fi
		printf 'on_sasl_port=%s\non_mtls_port=%s\n' "$sasl_port" "$mtls_port" >"$tls_on"
		say "SASL_SSL on $host:$sasl_port (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN; user $sasl_user), mTLS on $host:$mtls_port"
	fi
	say "ready on $host:$port in $(secs_since "$t0")s (jars ${t_libs}s, format ${t_fmt}s, boot+metadata check $(secs_since "$t_boot")s), broker RSS $(rss_mb "$pid") MiB"
	print_env
}

cmd_stop() {
	local pid i
	if ! pid=$(running); then
		say "not running"
		rm -f "$pidfile"
		return 0
	fi
	# TERM gives a controlled shutdown (clean segment close, quick next
	# start); KILL only if it hangs.
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 30; i++)); do
		alive "$pid" || break
		sleep 0.5
	done
	if alive "$pid"; then
		say "pid $pid did not stop within 15s; sending KILL"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 20; i++)); do
			alive "$pid" || break
			sleep 0.25
		done
	fi
	rm -f "$pidfile" "$tls_on"
	say "stopped (pid $pid)"
}

cmd_status() {
	local pid
	if pid=$(running); then
		if port_open "$host" "$port"; then
			say "running: pid $pid, $host:$port, RSS $(rss_mb "$pid") MiB, dir $dir"
		else
			say "running: pid $pid, but $host:$port does not accept connections (yet?)"
		fi
		return 0
	fi
	say "not running (dir $dir)"
	return 1
}

# One start/stop at a time per work dir: two concurrent `start`s (parallel CI
# steps) must not both format and launch.
lock() {
	mkdir -p "$dir"
	exec 9>"$dir/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 300 9 || { say "ERROR: timed out waiting for the lock on $dir"; exit 1; }
	fi
}

[ $# -ge 1 ] || usage
case "$1" in
start)
	case "${2:-}" in
	--sasl-ssl) sasl_ssl=1 ;;
	"") ;;
	*) usage ;;
	esac
	lock
	cmd_start
	;;
stop) lock; cmd_stop ;;
status) cmd_status ;;
env) print_env ;;
class)
	shift
	[ $# -ge 1 ] || usage
	run_class "$@"
	;;
-h | --help | help) usage ;;
*) usage ;;
esac
