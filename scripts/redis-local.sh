#!/usr/bin/env bash
# Runs real Redis servers for tests, on loopback only:
#   standalone  one redis-server, append-only file fsynced every second (as
#               production runs it)           -> FRESHET_TEST_REDIS_URL
#   cluster     three masters, no replicas, all 16384 slots assigned
#                                             -> FRESHET_TEST_REDIS_CLUSTER
#   tls         one redis-server speaking TLS only (TLS 1.2+, a CA and a
#               server certificate for 127.0.0.1/localhost made with openssl
#               at start; client certificates optional but verified), with
#               the default user off and the two least-privilege users of
#               docs/operations.md: freshet-featurize and freshet-serve
#                                             -> FRESHET_TEST_REDIS_TLS_URL (featurize's user),
#                                                FRESHET_TEST_REDIS_TLS_READONLY_URL (serve's),
#                                                FRESHET_TEST_REDIS_TLS_PASSWORD_FILE,
#                                                FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE,
#                                                FRESHET_TEST_REDIS_TLS_CA,
#                                                FRESHET_TEST_REDIS_TLS_CLIENT_CERT, _CLIENT_KEY
#               and beside it a TLS-only cluster of three masters (TLS on
#               the cluster bus too) with the same users set on every node
#                                             -> FRESHET_TEST_REDIS_TLS_CLUSTER_URL, _CLUSTER_READONLY_URL
#               (the URLs hold no password: it is in the password files)
# Without these variables the tests use a throw-away redis-server or
# miniredis (pipeline/testenv); the cluster is the only way to exercise
# cross-slot behaviour (CROSSSLOT, MOVED, hash tags) before production does.
#
#   scripts/redis-local.sh start [standalone|cluster|tls]   # prints the export lines when ready
#   scripts/redis-local.sh env   [standalone|cluster|tls]
#   scripts/redis-local.sh status [standalone|cluster|tls]
#   scripts/redis-local.sh stop  [standalone|cluster|tls]   # no mode: stops all
#
# Typical use:  eval "$(scripts/redis-local.sh start)"; eval "$(scripts/redis-local.sh start cluster)"
#               eval "$(scripts/redis-local.sh start tls)"
#
# Settings (environment):
#   FRESHET_REDIS_DIR           work dir                          default /tmp/freshet-redis
#   FRESHET_REDIS_PORT          standalone port                   default 6379
#   FRESHET_REDIS_CLUSTER_PORT  first cluster port (3 in a row)   default 7000
#   FRESHET_REDIS_TLS_PORT      TLS port (no plain-text port)     default 6380
#   FRESHET_REDIS_START_TIMEOUT seconds to wait for readiness     default 30
#
# Exit codes: 0 ok, 1 failure, 2 usage, 3 redis-server missing and not
# installable; status: 1 when not running.
#
# Progress goes to stderr; stdout carries only the export line, so the output
# of `start` and `env` can be eval'd.
set -euo pipefail

base=${FRESHET_REDIS_DIR:-/tmp/freshet-redis}
port=${FRESHET_REDIS_PORT:-6379}
cport=${FRESHET_REDIS_CLUSTER_PORT:-7000}
tport=${FRESHET_REDIS_TLS_PORT:-6380}
timeout_s=${FRESHET_REDIS_START_TIMEOUT:-30}
host=127.0.0.1
cluster_ports=("$cport" "$((cport + 1))" "$((cport + 2))")
tls_cluster_ports=("$((tport + 1))" "$((tport + 2))" "$((tport + 3))")

say() { echo "redis-local: $*" >&2; }

usage() {
	cat >&2 <<EOF
usage: $0 start|stop|status|env [standalone|cluster|tls]
  standalone: redis-server on $host:$port
  cluster:    3 masters on $host:${cluster_ports[0]}..${cluster_ports[2]}
  tls:        redis-server on $host:$tport, TLS only, with freshet's least-privilege users, and
              a TLS-only cluster of 3 masters on $host:${tls_cluster_ports[0]}..${tls_cluster_ports[2]} with the same users
  stop with no mode stops all. Work dir: $base. See the header of this script for the settings.
EOF
	exit 2
}

now_ms() { date +%s%3N; }
secs_since() { # start_ms -> "1.234"
	local d=$(($(now_ms) - $1))
	printf '%d.%03d' $((d / 1000)) $((d % 1000))
}

# ensure_redis: install redis-server (which brings redis-cli) from Debian when
# missing. Non-interactive throughout: CI has no standard input, and a
# debconf prompt would hang the run.
ensure_redis() {
	if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
		return 0
	fi
	if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
		say "ERROR: redis-server/redis-cli not found, and apt-get as root is not available to install them"
		exit 3
	fi
	say "redis-server not found; installing it with apt-get"
	# Lock::Timeout: wait for a concurrent apt/dpkg rather than fail at once.
	if ! {
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=120 install -y -qq \
				--no-install-recommends redis-server
	} </dev/null >"${TMPDIR:-/tmp}/freshet-redis-apt.log" 2>&1; then
		say "ERROR: apt-get install redis-server failed; last lines of ${TMPDIR:-/tmp}/freshet-redis-apt.log:"
		tail -n 20 "${TMPDIR:-/tmp}/freshet-redis-apt.log" >&2
		exit 3
	fi
	# On a machine with systemd, the package also starts a system-wide
	# redis-server on 6379; start then reports the port as taken.
	if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
		say "ERROR: apt-get installed redis-server, but redis-server/redis-cli are still not on PATH ($PATH)"
		exit 3
	fi
	say "installed Redis $(redis_version)"
}

redis_version() { redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p'; }

cli() { # port args... : redis-cli on loopback, never waiting for input
	local p=$1
	shift
	timeout 10 redis-cli -h "$host" -p "$p" "$@" </dev/null
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null; }

# alive PID: running and not a zombie. kill -0 alone is not enough: where
# PID 1 reaps orphans slowly (some containers), an exited server lingers as a
# zombie for seconds and would look alive.
alive() {
	local state
	state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# our_pid DIR PORT: the pid in DIR/redis.pid when it is a live redis-server
# serving PORT. Checked against the process title ("redis-server
# 127.0.0.1:PORT"), so a recycled pid or a stale file is never signalled and
# a foreign Redis on the same port is never shut down by stop.
our_pid() {
	local dir=$1 p=$2 pid
	[ -f "$dir/redis.pid" ] || return 1
	pid=$(cat "$dir/redis.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE "^redis-server [^ ]*:$p( |$)" || return 1
	echo "$pid"
}

# start_server DIR PORT EXTRA_ARGS...: one daemonized redis-server.
# appendonly+everysec is the persistence production runs, so fsync timing
# and AOF rewrite happen here too; RDB snapshots are off (save "") so no
# background fork competes with the tests.
start_server() {
	local dir=$1 p=$2
	shift 2
	mkdir -p "$dir"
	rm -f "$dir/redis.pid"
	redis-server --port "$p" --bind "$host" --protected-mode yes \
		--daemonize yes --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
		--appendonly yes --appendfsync everysec --save "" \
		"$@" </dev/null >/dev/null 9>&-
}

# wait_ping PORT DIR: PONG within the timeout (LOADING while replaying the
# AOF is not ready yet).
wait_ping() {
	local p=$1 dir=$2 deadline=$(($(date +%s) + timeout_s))
	until [ "$(cli "$p" ping 2>/dev/null)" = PONG ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "ERROR: redis on $host:$p did not answer PING within ${timeout_s}s; last lines of $dir/redis.log:"
			tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.1
	done
}

stop_server() { # DIR PORT
	local dir=$1 p=$2 pid i
	pid=$(our_pid "$dir" "$p") || return 0
	# SHUTDOWN NOSAVE: no RDB dump on the way out (the AOF is still flushed);
	# TERM, then KILL, if the server does not answer.
	cli "$p" shutdown nosave >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		sleep 2
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$dir/redis.pid"
	say "stopped redis on $host:$p (pid $pid)"
}

# refuse_busy PORT...: a port already served by something that is not ours
# (the system's redis-server service, another test run) would make
# redis-server fail to bind, or worse, make the checks talk to the wrong server.
refuse_busy() {
	local p
	for p in "$@"; do
		if port_open "$p"; then
			say "ERROR: $host:$p is already in use by another process:"
			{ ss -ltnp 2>/dev/null | grep -E "[:.]$p\b" || true; } >&2
			say "       stop it (the system service: systemctl stop redis-server), or choose other ports"
			say "       with FRESHET_REDIS_PORT / FRESHET_REDIS_CLUSTER_PORT"
			exit 1
		fi
	done
}

env_standalone() { echo "export FRESHET_TEST_REDIS_URL=redis://$host:$port/0"; }
env_cluster() {
	local IFS=,
	echo "export FRESHET_TEST_REDIS_CLUSTER=${cluster_ports[*]/#/$host:}"
}

sa_dir="$base/standalone"
cl_dir="$base/cluster"

start_standalone() {
	local t0 pid
	if pid=$(our_pid "$sa_dir" "$port") && [ "$(cli "$port" ping 2>/dev/null)" = PONG ]; then
		say "standalone already running (pid $pid) on $host:$port"
		env_standalone
		return 0
	fi
	stop_server "$sa_dir" "$port" # a hung leftover of ours
	refuse_busy "$port"
	t0=$(now_ms)
	# The data dir is kept across restarts: that is what the AOF is for, and
	# tests use unique key prefixes rather than a flushed server.
	start_server "$sa_dir" "$port"
	wait_ping "$port" "$sa_dir"
	say "standalone ready on $host:$port in $(secs_since "$t0")s (Redis $(redis_version), dir $sa_dir)"
	env_standalone
}

# cluster_ok: every node reports cluster_state:ok with all slots assigned and
# sees all three nodes, so a client may seed from any of them.
cluster_ok() {
	local p info
	for p in "${cluster_ports[@]}"; do
		info=$(cli "$p" cluster info 2>/dev/null | tr -d '\r') || return 1
		grep -qx 'cluster_state:ok' <<<"$info" || return 1
		grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
		grep -qx 'cluster_known_nodes:3' <<<"$info" || return 1
	done
}

cluster_running() {
	local p
	for p in "${cluster_ports[@]}"; do
		our_pid "$cl_dir/$p" "$p" >/dev/null || return 1
	done
	cluster_ok
}

stop_cluster() {
	local p
	for p in "${cluster_ports[@]}"; do
		stop_server "$cl_dir/$p" "$p"
	done
}

start_cluster() {
	local t0 p seeds=() deadline
	if cluster_running; then
		say "cluster already running on $host:${cluster_ports[0]}..${cluster_ports[2]}"
		env_cluster
		return 0
	fi
	# Half a cluster (a node died, or the last create failed) cannot be
	# repaired reliably: stop what is ours and build it again.
	stop_cluster
	for p in "${cluster_ports[@]}"; do
		refuse_busy "$p" "$((p + 10000))" # client port and cluster bus port
	done
	t0=$(now_ms)
	# Fresh dirs every time: a stale nodes-PORT.conf makes each node remember
	# old node ids and slots, and `--cluster create` then refuses ("Node is
	# not empty").
	rm -rf "$cl_dir"
	for p in "${cluster_ports[@]}"; do
		start_server "$cl_dir/$p" "$p" --cluster-enabled yes --cluster-config-file "nodes-$p.conf"
		seeds+=("$host:$p")
	done
	for p in "${cluster_ports[@]}"; do
		wait_ping "$p" "$cl_dir/$p" || {
			stop_cluster
			exit 1
		}
	done
	# --cluster-yes: accept the proposed slot layout without asking (no stdin in CI).
	if ! redis-cli --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes \
		</dev/null >"$cl_dir/create.log" 2>&1; then
		say "ERROR: redis-cli --cluster create failed:"
		cat "$cl_dir/create.log" >&2
		stop_cluster
		exit 1
	fi
	# create returns once slots are assigned, but the nodes learn each
	# other's slots through gossip a moment later: wait until all agree.
	deadline=$(($(date +%s) + timeout_s))
	until cluster_ok; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "ERROR: the cluster did not reach cluster_state:ok on every node within ${timeout_s}s"
			for p in "${cluster_ports[@]}"; do
				say "--- $host:$p"
				cli "$p" cluster info 2>&1 | head -n 7 >&2 || true
			done
			stop_cluster
			exit 1
		fi
		sleep 0.1
	done
	say "cluster ready on $host:${cluster_ports[0]}..${cluster_ports[2]} in $(secs_since "$t0")s (3 masters, no replicas, dir $cl_dir)"
	env_cluster
}

# --- tls: one TLS-only server with freshet's least-privilege users ---------

tl_dir="$base/tls"
root=$(cd "$(dirname "$0")/.." && pwd)
tls_users=(freshet-featurize freshet-serve)

env_tls() {
	printf 'export FRESHET_TEST_REDIS_TLS_URL=%q\n' "rediss://${tls_users[0]}@$host:$tport/0"
	printf 'export FRESHET_TEST_REDIS_TLS_READONLY_URL=%q\n' "rediss://${tls_users[1]}@$host:$tport/0"
	printf 'export FRESHET_TEST_REDIS_TLS_PASSWORD_FILE=%q\n' "$tl_dir/${tls_users[0]}.password"
	printf 'export FRESHET_TEST_REDIS_TLS_READONLY_PASSWORD_FILE=%q\n' "$tl_dir/${tls_users[1]}.password"
	printf 'export FRESHET_TEST_REDIS_TLS_CA=%q\n' "$tl_dir/ca.crt"
	printf 'export FRESHET_TEST_REDIS_TLS_CLIENT_CERT=%q\n' "$tl_dir/client.crt"
	printf 'export FRESHET_TEST_REDIS_TLS_CLIENT_KEY=%q\n' "$tl_dir/client.key"
	printf 'export FRESHET_TEST_REDIS_TLS_CLUSTER_URL=%q\n' "rediss+cluster://${tls_users[0]}@$host:${tls_cluster_ports[0]}"
	printf 'export FRESHET_TEST_REDIS_TLS_CLUSTER_READONLY_URL=%q\n' "rediss+cluster://${tls_users[1]}@$host:${tls_cluster_ports[0]}"
}

# tls_cli args...: redis-cli over TLS as the script's own admin user, whose
# password never reaches a command line (REDISCLI_AUTH); tls_cli_at PORT
# args... asks another TLS port (a cluster node).
tls_cli() { tls_cli_at "$tport" "$@"; }
tls_cli_at() {
	local p=$1
	shift
	REDISCLI_AUTH=$(cat "$tl_dir/freshet-admin.password" 2>/dev/null) timeout 10 redis-cli --tls \
		--cacert "$tl_dir/ca.crt" -h "$host" -p "$p" --user freshet-admin "$@" </dev/null
}

# make_certs: a CA, a server certificate for 127.0.0.1 and localhost, and a
# client certificate, all signed by the CA; P-256 keys, 30 days.
make_certs() {
	local d=$tl_dir name cn usage san
	(
		cd "$d"
		openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -sha256 -days 30 \
			-subj "/CN=freshet test CA" -keyout ca.key -out ca.crt
		for name in redis client; do
			if [ "$name" = redis ]; then
				# clientAuth too: cluster nodes present it to each other
				# on the TLS cluster bus.
				cn=localhost usage=serverAuth,clientAuth san="subjectAltName=IP:127.0.0.1,DNS:localhost"
			else
				cn=freshet-featurize usage=clientAuth san="subjectAltName=DNS:freshet-featurize"
			fi
			openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj "/CN=$cn" \
				-keyout "$name.key" -out "$name.csr"
			printf '%s\nextendedKeyUsage=%s\n' "$san" "$usage" >"$name.ext"
			openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -sha256 \
				-extfile "$name.ext" -out "$name.crt"
		done
		chmod 600 ./*.key
	) >"$d/openssl.log" 2>&1 || {
		say "ERROR: openssl failed making the test certificates:"
		cat "$d/openssl.log" >&2
		return 1
	}
}

sha256() { printf '%s' "$1" | openssl dgst -sha256 -r | cut -d' ' -f1; }

# acl_lines: the ACL SETUSER lines of docs/operations.md, the one source of
# the users' rights, which the tests run freshet against.
acl_lines() {
	grep -E "^ACL SETUSER (${tls_users[0]}|${tls_users[1]}) " "$root/docs/operations.md"
}

start_tls() {
	local t0 pid u
	command -v openssl >/dev/null 2>&1 || { say "ERROR: openssl not found; the tls mode makes its certificates with it"; exit 1; }
	if pid=$(our_pid "$tl_dir" "$tport") && [ "$(tls_cli ping 2>/dev/null)" = PONG ] &&
		[ "$(tls_cli_at "${tls_cluster_ports[0]}" cluster info 2>/dev/null | tr -d '\r' | grep -x 'cluster_state:ok')" ]; then
		say "tls already running (pid $pid) on $host:$tport"
		env_tls
		return 0
	fi
	stop_tls
	refuse_busy "$tport"
	t0=$(now_ms)
	# Fresh every time: new certificates and passwords, and the users are
	# set from the docs as they are now.
	rm -rf "$tl_dir"
	mkdir -p "$tl_dir"
	chmod 700 "$tl_dir"
	make_certs
	for u in freshet-admin "${tls_users[@]}"; do
		openssl rand -hex 24 >"$tl_dir/$u.password"
		chmod 600 "$tl_dir/$u.password"
	done
	# --port 0: no plain-text port. The default user is off; the script
	# itself speaks as freshet-admin, given by its password's hash.
	local tls_args=(--tls-cert-file "$tl_dir/redis.crt" --tls-key-file "$tl_dir/redis.key"
		--tls-ca-cert-file "$tl_dir/ca.crt" --tls-auth-clients optional --tls-protocols "TLSv1.2 TLSv1.3"
		--user default off
		--user freshet-admin on "#$(sha256 "$(cat "$tl_dir/freshet-admin.password")")" "~*" "&*" "+@all")
	start_server "$tl_dir" 0 --tls-port "$tport" "${tls_args[@]}"
	if ! tls_wait_ping "$tport" "$tl_dir" || ! set_users "$tport"; then
		stop_tls
		exit 1
	fi
	if ! start_tls_cluster; then
		stop_tls
		exit 1
	fi
	say "tls ready on $host:$tport and cluster $host:${tls_cluster_ports[0]}..${tls_cluster_ports[2]} in $(secs_since "$t0")s (users ${tls_users[*]}, dir $tl_dir)"
	env_tls
}

# tls_wait_ping PORT DIR: PONG over TLS within the timeout.
tls_wait_ping() {
	local p=$1 dir=$2 deadline=$(($(date +%s) + timeout_s))
	until [ "$(tls_cli_at "$p" ping 2>/dev/null)" = PONG ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "ERROR: redis on $host:$p (TLS) did not answer PING within ${timeout_s}s; last lines of $dir/redis.log:"
			tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
			return 1
		fi
		sleep 0.1
	done
}

# set_users PORT: the ACL SETUSER lines of docs/operations.md on one server.
set_users() {
	local p=$1 line words u pw out n=0
	while IFS= read -r line; do
		read -ra words <<<"$line"
		u=${words[2]}
		pw=$(sha256 "$(cat "$tl_dir/$u.password")")
		# The docs' ">PASSWORD" placeholders become the password's hash.
		words=("${words[@]/#>*/#$pw}")
		if ! out=$(tls_cli_at "$p" "${words[@]}" 2>&1) || [ "$out" != OK ]; then
			say "ERROR: ${words[*]:0:3} from docs/operations.md failed on $host:$p: $out"
			return 1
		fi
		n=$((n + 1))
	done < <(acl_lines)
	if [ "$n" -ne 2 ]; then
		say "ERROR: found $n of the 2 ACL SETUSER lines (${tls_users[*]}) in $root/docs/operations.md"
		return 1
	fi
}

# start_tls_cluster: three TLS-only masters (TLS on the cluster bus too)
# with the certificates and users of the tls server, as docs/operations.md
# says a cluster needs them: the users set on every node.
start_tls_cluster() {
	local p seeds=() deadline ok
	for p in "${tls_cluster_ports[@]}"; do
		refuse_busy "$p" "$((p + 10000))"
		start_server "$tl_dir/cluster-$p" 0 --tls-port "$p" --tls-cluster yes --cluster-enabled yes \
			--cluster-config-file "nodes-$p.conf" "${tls_args[@]}"
		seeds+=("$host:$p")
	done
	for p in "${tls_cluster_ports[@]}"; do
		tls_wait_ping "$p" "$tl_dir/cluster-$p" || return 1
	done
	if ! REDISCLI_AUTH=$(cat "$tl_dir/freshet-admin.password") timeout 60 redis-cli --tls --cacert "$tl_dir/ca.crt" \
		--user freshet-admin --cluster create "${seeds[@]}" --cluster-replicas 0 --cluster-yes \
		</dev/null >"$tl_dir/cluster-create.log" 2>&1; then
		say "ERROR: redis-cli --cluster create (TLS) failed:"
		tail -n 20 "$tl_dir/cluster-create.log" >&2
		return 1
	fi
	deadline=$(($(date +%s) + timeout_s))
	until
		ok=1
		for p in "${tls_cluster_ports[@]}"; do
			tls_cli_at "$p" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok' || ok=0
		done
		[ "$ok" = 1 ]
	do
		if [ "$(date +%s)" -ge "$deadline" ]; then
			say "ERROR: the TLS cluster did not reach cluster_state:ok within ${timeout_s}s"
			return 1
		fi
		sleep 0.2
	done
	for p in "${tls_cluster_ports[@]}"; do
		set_users "$p" || return 1
	done
}

# stop_tls: the TLS server and the TLS cluster.
stop_tls() {
	local p
	stop_server "$tl_dir" "$tport"
	for p in "${tls_cluster_ports[@]}"; do
		stop_server "$tl_dir/cluster-$p" "$p"
	done
}

status_tls() {
	local pid
	if pid=$(our_pid "$tl_dir" "$tport"); then
		say "tls running: pid $pid on $host:$tport, PING $(tls_cli ping 2>&1 || true)"
		return 0
	fi
	say "tls not running"
	return 1
}

status_standalone() {
	local pid
	if pid=$(our_pid "$sa_dir" "$port"); then
		say "standalone running: pid $pid on $host:$port, PING $(cli "$port" ping 2>&1 || true)"
		return 0
	fi
	say "standalone not running"
	return 1
}

status_cluster() {
	local p pid rc=0
	for p in "${cluster_ports[@]}"; do
		if pid=$(our_pid "$cl_dir/$p" "$p"); then
			say "cluster node $host:$p running (pid $pid), $(cli "$p" cluster info 2>/dev/null | tr -d '\r' | grep '^cluster_state:' || echo 'no answer')"
		else
			say "cluster node $host:$p not running"
			rc=1
		fi
	done
	return "$rc"
}

# One start/stop at a time per work dir: concurrent starts (parallel CI
# steps) must not both create the cluster. The servers are started with
# 9>&- so they never hold this lock.
lock() {
	mkdir -p "$base"
	exec 9>"$base/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock -w 120 9 || { say "ERROR: timed out waiting for the lock on $base"; exit 1; }
	fi
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
action=$1
mode=${2:-}
case "$mode" in
"" | standalone | cluster | tls) ;;
*) usage ;;
esac

case "$action" in
start)
	ensure_redis
	lock
	case "$mode" in
	cluster) start_cluster ;;
	tls) start_tls ;;
	*) start_standalone ;;
	esac
	;;
stop)
	command -v redis-cli >/dev/null 2>&1 || { say "redis-cli not installed: nothing to stop"; exit 0; }
	lock
	case "$mode" in
	standalone) stop_server "$sa_dir" "$port" ;;
	cluster) stop_cluster ;;
	tls) stop_tls ;;
	"") stop_server "$sa_dir" "$port"; stop_cluster; stop_tls ;;
	esac
	;;
status)
	case "$mode" in
	cluster) status_cluster ;;
	tls) status_tls ;;
	*) status_standalone ;;
	esac
	;;
env)
	case "$mode" in
	cluster) env_cluster ;;
	tls) env_tls ;;
	*) env_standalone ;;
	esac
	;;
*) usage ;;
esac
