"""Helpers for scripts/chaos.py: processes, HTTP, a minimal Redis client, the
private Kafka/Redis servers, event generation and the reference check.

Standard library only. Everything listens on and talks to 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
SCHEMAS = os.path.join(ROOT, "schemas", "example")
PARTITIONS = 6
HOST = "127.0.0.1"

sys.path.insert(0, SCRIPTS)
import check_serve  # noqa: E402  (compare_row: the same rules as the official check)
import reference  # noqa: E402  (partition_for, key_bytes)


# ---------------------------------------------------------------------------
# Time limits
# ---------------------------------------------------------------------------

class Failure(Exception):
    """A scenario failed: the message says why."""


class Timeout(Failure):
    pass


class Clock:
    """A scenario's deadline. Every wait is bounded by it."""

    def __init__(self, name: str, seconds: float):
        self.name, self.t0 = name, time.monotonic()
        self.deadline = self.t0 + seconds

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def bound(self, seconds: float) -> float:
        """seconds, cut to what is left of the deadline (never below 0)."""
        return max(0.0, min(seconds, self.left()))

    def check(self, what: str = "") -> None:
        if self.left() <= 0:
            raise Timeout(f"{self.name}: deadline passed{' while ' + what if what else ''}")

    def sleep(self, seconds: float) -> None:
        time.sleep(self.bound(seconds))
        self.check()


def wait_until(clock: Clock, pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> float:
    """Polls pred until it returns a true value; returns the seconds it took.
    Raises Timeout after timeout seconds (or the scenario's deadline)."""
    t0 = time.monotonic()
    end = t0 + clock.bound(timeout)
    while True:
        if pred():
            return time.monotonic() - t0
        if time.monotonic() >= end:
            raise Timeout(f"{what}: not within {time.monotonic() - t0:.1f}s")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

class Proc:
    def __init__(self, name: str, popen: subprocess.Popen, log: str, port: int | None):
        self.name, self.popen, self.log, self.port = name, popen, log, port
        self.env: dict[str, str] = {}
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def rc(self) -> int | None:
        return self.popen.poll()

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def term(self, timeout: float = 12.0) -> tuple[int | None, float]:
        """SIGTERM; returns (exit code or None if it had to be killed, seconds)."""
        t0 = time.monotonic()
        if not self.alive():
            return self.popen.returncode, 0.0
        os.kill(self.popen.pid, signal.SIGTERM)
        try:
            rc = self.popen.wait(timeout=timeout)
            return rc, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            self.kill9()
            return None, time.monotonic() - t0

    def tail(self, n: int = 25) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as fh:
                return "".join(fh.readlines()[-n:])
        except OSError:
            return ""


class Procs:
    """Every process a run starts, so that all of them are killed at the end."""

    def __init__(self) -> None:
        self.all: list[Proc] = []
        self.lock = threading.Lock()

    def start(self, name: str, argv: list[str], env: dict[str, str], log: str, port: int | None = None) -> Proc:
        fh = open(log, "ab")
        try:
            # Its own process group: killed as a whole at the end, and never
            # hit by a Ctrl-C aimed at this script before the cleanup runs.
            p = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, cwd=ROOT)
        finally:
            fh.close()
        proc = Proc(name, p, log, port)
        proc.env = env
        with self.lock:
            self.all.append(proc)
        return proc

    def kill_all(self) -> None:
        with self.lock:
            procs = list(self.all)
        for p in procs:
            if p.alive():
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
        end = time.monotonic() + 5
        for p in procs:
            try:
                p.popen.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in procs:
            if p.alive():
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                try:
                    p.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass


def run(argv: list[str], env: dict[str, str] | None, timeout: float, log: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs a short command to completion (its own session, killed on timeout)."""
    p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         start_new_session=True, cwd=ROOT, text=True)
    try:
        out, err = p.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        out, err = p.communicate()
        raise Timeout(f"{' '.join(argv[:3])}...: still running after {timeout:.0f}s")
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {' '.join(argv)}\n{out}{err}\n[rc {p.returncode}]\n")
    cp = subprocess.CompletedProcess(argv, p.returncode, out, err)
    if check and p.returncode != 0:
        raise Failure(f"{' '.join(argv[:4])}... exited {p.returncode}: {(err or out).strip()[-800:]}")
    return cp


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True while any thread of the process is not yet a zombie. (A killed
    process's leader may show Z while its other threads still hold its
    files, listening sockets included.)"""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return True
    return False


def wait_port_closed(port: int, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while port_open(port):
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------

def http(method: str, url: str, body: bytes | None = None, ctype: str = "application/json",
         timeout: float = 5.0) -> tuple[int | None, Any, dict[str, str]]:
    """(status, decoded JSON body or None, headers); status None when the
    server could not be reached at all."""
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = ctype
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            code, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        code, raw, hdrs = e.code, e.read(), dict(e.headers)
    except (urllib.error.URLError, OSError):
        return None, None, {}
    try:
        return code, json.loads(raw) if raw else None, hdrs
    except ValueError:
        return code, None, hdrs


def status_of(url: str, timeout: float = 3.0) -> int | None:
    return http("GET", url, timeout=timeout)[0]


def stats(feat_url: str) -> dict | None:
    code, body, _ = http("GET", feat_url + "/v1/stats", timeout=3.0)
    return body if code == 200 and isinstance(body, dict) else None


# ---------------------------------------------------------------------------
# A minimal Redis client (RESP2), enough for PING, SCAN, UNLINK, CONFIG, INFO
# ---------------------------------------------------------------------------

class Redis:
    def __init__(self, port: int, host: str = HOST, db: int = 0, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = self.sock.makefile("rb")
        if db:
            self.cmd("SELECT", str(db))

    @staticmethod
    def from_url(url: str) -> "Redis":
        u = urllib.parse.urlparse(url)
        db = int(u.path.strip("/") or 0)
        return Redis(u.port or 6379, u.hostname or HOST, db)

    def close(self) -> None:
        try:
            self.buf.close()
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Redis":
        return self

    def __exit__(self, *a: Any) -> None:
        self.close()

    def cmd(self, *args: str) -> Any:
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a.encode() if isinstance(a, str) else a
            out.append(f"${len(b)}\r\n".encode() + b + b"\r\n")
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self) -> Any:
        line = self.buf.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.buf.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError(f"bad RESP line {line!r}")

    def scan_keys(self, pattern: str) -> list[str]:
        keys, cursor = [], "0"
        while True:
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", "2000")
            keys.extend(batch)
            if cursor == "0":
                return keys

    def unlink_pattern(self, pattern: str) -> int:
        """UNLINKs every key matching pattern; returns how many."""
        keys = sorted(set(self.scan_keys(pattern)))
        n = 0
        for i in range(0, len(keys), 1000):
            n += self.cmd("UNLINK", *keys[i:i + 1000])
        return n


def redis_port(url: str) -> int:
    return urllib.parse.urlparse(url).port or 6379


def glob_escape(s: str) -> str:
    """Escapes Redis glob characters of a literal key prefix."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


# ---------------------------------------------------------------------------
# Private servers: the repository's own scripts, on other ports and dirs
# ---------------------------------------------------------------------------

class PrivateRedis:
    """A redis-server of scripts/redis-local.sh (AOF, appendfsync everysec) on
    its own port and work dir, which a scenario may stop, kill and restart."""

    def __init__(self, port: int, base: str, log: str):
        self.port, self.base, self.log = port, base, log
        self.dir = os.path.join(base, "standalone")
        self.env = dict(os.environ, FRESHET_REDIS_PORT=str(port), FRESHET_REDIS_DIR=base)
        self.url = f"redis://{HOST}:{port}/0"

    def _script(self, *args: str, timeout: float = 60) -> None:
        run([os.path.join(SCRIPTS, "redis-local.sh"), *args], self.env, timeout, self.log)

    def fresh(self) -> None:
        self._script("stop", "standalone")
        if port_open(self.port):
            raise Failure(f"port {self.port} (private Redis) is in use by another process")
        shutil.rmtree(self.base, ignore_errors=True)
        self.start()

    def start(self) -> float:
        t0 = time.monotonic()
        self._script("start", "standalone")
        return time.monotonic() - t0

    def stop(self) -> None:
        """A clean stop: SHUTDOWN (the AOF is flushed and fsynced)."""
        self._script("stop", "standalone")

    def pid(self) -> int | None:
        try:
            with open(os.path.join(self.dir, "redis.pid")) as fh:
                pid = int(fh.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            return None
        if cmd.startswith("redis-server") and f":{self.port}" in cmd:
            return pid
        return None

    def kill9(self) -> None:
        pid = self.pid()
        if pid is None:
            raise Failure(f"private Redis on {self.port}: no pid to kill")
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while pid_alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
        if pid_alive(pid) or not wait_port_closed(self.port, 5):
            raise Failure(f"redis pid {pid} still alive (or its port open) 10s after SIGKILL")
        try:
            os.unlink(os.path.join(self.dir, "redis.pid"))
        except OSError:
            pass

    def client(self) -> Redis:
        return Redis(self.port)

    def ping(self) -> bool:
        try:
            with self.client() as r:
                return r.cmd("PING") == "PONG"
        except (OSError, RuntimeError, ConnectionError):
            return False


class PrivateKafka:
    """A broker of scripts/kafka-local.sh (Apache Kafka, KRaft) on its own port
    and dir; restarts keep the data (FRESHET_KAFKA_KEEP_DATA=1)."""

    def __init__(self, port: int, dir: str, log: str):
        self.port, self.dir, self.log = port, dir, log
        self.env = dict(os.environ, FRESHET_KAFKA_PORT=str(port), FRESHET_KAFKA_DIR=dir)
        self.brokers = f"{HOST}:{port}"

    def start(self, keep_data: bool, timeout: float = 150) -> float:
        env = dict(self.env)
        if keep_data:
            env["FRESHET_KAFKA_KEEP_DATA"] = "1"
        else:
            env.pop("FRESHET_KAFKA_KEEP_DATA", None)
            for p in (self.port, self.port + 1):
                if port_open(p):
                    raise Failure(f"port {p} (private Kafka) is in use by another process")
        t0 = time.monotonic()
        run([os.path.join(SCRIPTS, "kafka-local.sh"), "start"], env, timeout, self.log)
        return time.monotonic() - t0

    def stop(self, timeout: float = 40) -> float:
        t0 = time.monotonic()
        run([os.path.join(SCRIPTS, "kafka-local.sh"), "stop"], self.env, timeout, self.log, check=False)
        return time.monotonic() - t0

    def end_offsets(self, topic: str, timeout: float = 60) -> dict[int, int]:
        """Each partition's end offset: how many messages Kafka holds."""
        cp = run([os.path.join(SCRIPTS, "kafka-local.sh"), "class", "org.apache.kafka.tools.GetOffsetShell",
                  "--bootstrap-server", self.brokers, "--topic", topic, "--time", "-1"], self.env, timeout, self.log)
        out: dict[int, int] = {}
        for line in cp.stdout.splitlines():
            parts = line.strip().split(":")
            if len(parts) >= 3 and parts[0] == topic:
                out[int(parts[1])] = int(parts[2])
        return out


    def dump(self, topic: str, total: int, timeout: float = 90) -> list[tuple[int, int, str]]:
        """Every message of topic as (partition, offset, value), read back with
        Kafka's own console consumer: what the broker really holds."""
        cp = run([os.path.join(SCRIPTS, "kafka-local.sh"), "class", "org.apache.kafka.tools.consumer.ConsoleConsumer",
                  "--bootstrap-server", self.brokers, "--topic", topic, "--from-beginning",
                  "--max-messages", str(total), "--timeout-ms", "30000",
                  "--formatter-property", "print.partition=true", "--formatter-property", "print.offset=true"],
                 self.env, timeout, None, check=False)
        out = []
        for line in cp.stdout.splitlines():
            parts = line.split("\t", 2)
            if len(parts) == 3 and parts[0].startswith("Partition:") and parts[1].startswith("Offset:"):
                out.append((int(parts[0][10:]), int(parts[1][7:]), parts[2]))
        if len(out) != total:
            raise Failure(f"reading {topic} back: {len(out)} of {total} messages; {cp.stderr.strip()[-400:]}")
        return sorted(out)


# ---------------------------------------------------------------------------
# Events and the reference
# ---------------------------------------------------------------------------

def file_sha(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def gen_events(cache: str, args: list[str], timeout: float) -> subprocess.Popen | str:
    """The path of gen_events.py's output for args, from the cache when the
    same generator already made it (it is deterministic: same arguments, same
    bytes). Returns the path, or a Popen still writing it (call finish_gen)."""
    key = hashlib.sha256((file_sha(os.path.join(SCRIPTS, "gen_events.py")) + "\0" + "\0".join(args)).encode())
    out = os.path.join(cache, f"events-{key.hexdigest()[:20]}.ndjson")
    if os.path.exists(out):
        return out
    os.makedirs(cache, exist_ok=True)
    tmp = out + f".tmp{os.getpid()}"
    p = subprocess.Popen([sys.executable, os.path.join(SCRIPTS, "gen_events.py"), *args, "--out", tmp],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    p.chaos_out, p.chaos_tmp, p.chaos_deadline = out, tmp, time.monotonic() + timeout  # type: ignore[attr-defined]
    return p


def finish_gen(g: subprocess.Popen | str) -> str:
    if isinstance(g, str):
        return g
    try:
        _, err = g.communicate(timeout=max(1.0, g.chaos_deadline - time.monotonic()))  # type: ignore[attr-defined]
    except subprocess.TimeoutExpired:
        os.killpg(g.pid, signal.SIGKILL)
        g.communicate()
        raise Timeout("gen_events.py took too long")
    if g.returncode != 0:
        raise Failure(f"gen_events.py failed: {err[-500:]}")
    os.replace(g.chaos_tmp, g.chaos_out)  # type: ignore[attr-defined]
    return g.chaos_out  # type: ignore[attr-defined]


class RefJob:
    """reference.py over the published events, in the background, cached by
    the hash of its inputs (reference.py, the schema, the events, the times)."""

    def __init__(self, cache: str, work: str, files: list[str], ats: list[str], tag: str, schemas: str = ""):
        schemas = schemas or SCHEMAS
        h = hashlib.sha256()
        for f in [os.path.join(SCRIPTS, "reference.py")] + sorted(
                os.path.join(schemas, x) for x in os.listdir(schemas) if x.endswith(".yaml")) + files:
            h.update(file_sha(f).encode())
        h.update("\0".join(ats).encode())
        os.makedirs(cache, exist_ok=True)
        self.path = os.path.join(cache, f"ref-{h.hexdigest()[:20]}.json")
        self.ats = ats
        self.proc: subprocess.Popen | None = None
        self.err_log = os.path.join(work, f"reference-{tag}.log")
        self.data: dict | None = None
        self.seconds = 0.0
        self.t0 = time.monotonic()
        if not os.path.exists(self.path):
            argv = [sys.executable, os.path.join(SCRIPTS, "reference.py"), "--schemas", schemas,
                    "--partitions", str(PARTITIONS), "--events", *files]
            for a in ats:
                argv += ["--at", a]
            self.tmp = self.path + f".tmp{os.getpid()}"
            argv += ["--out", self.tmp]
            with open(self.err_log, "w") as fh:
                self.proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                             start_new_session=True)

    def result(self, clock: Clock) -> dict:
        if self.data is not None:
            return self.data
        if self.proc is not None:
            try:
                self.proc.wait(timeout=max(1.0, clock.left()))
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                raise Timeout("reference.py did not finish before the deadline")
            if self.proc.returncode != 0:
                with open(self.err_log) as fh:
                    raise Failure(f"reference.py failed: {fh.read()[-800:]}")
            os.replace(self.tmp, self.path)
            self.seconds = time.monotonic() - self.t0
        with open(self.path, encoding="utf-8") as fh:
            self.data = json.load(fh)
        return self.data

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()


def compare_all(ref: dict, serve_url: str, batch: int = 1000,
                deficit: dict | None = None) -> tuple[int, list[str]]:
    """Every entity of every view at every as-of time of ref, looked up by
    batch (POST), compared by check_serve's own rules. Returns (values
    checked, mismatches); a serve that cannot be reached is a mismatch.
    deficit, when given, receives per "view.feature@t" of every count
    feature the sum of (reference - served): > 0 is events missing, < 0
    events counted twice."""
    checked, bad = 0, []
    counts = {v: [f for f, m in vm["features"].items() if m["agg"] == "count"]
              for v, vm in ref.get("meta", {}).get("views", {}).items()}
    for view in sorted(ref["views"]):
        ref_view = ref["views"][view]
        ents = sorted(ref_view)
        ats = sorted({int(t) for e in ents for t in ref_view[e]["at"]})
        for t in ats:
            for i in range(0, len(ents), batch):
                chunk = ents[i:i + batch]
                code, body, _ = http("POST", f"{serve_url}/v1/features/{urllib.parse.quote(view, safe='')}",
                                     json.dumps({"entities": chunk, "at": t}).encode(), timeout=20)
                if code != 200 or not isinstance(body, dict) or not isinstance(body.get("rows"), list):
                    bad.append(f"POST {view} at={t}: HTTP {code}")
                    continue
                for ent, row in zip(chunk, body["rows"]):
                    if deficit is not None and isinstance(row, dict):
                        feats = row.get("features") or {}
                        for f in counts.get(view, []):
                            want, got = ref_view[ent]["at"][str(t)].get(f), feats.get(f)
                            if isinstance(want, int) and isinstance(got, (int, type(None))):
                                k = f"{view}.{f}@{t}"
                                deficit[k] = deficit.get(k, 0) + want - (got or 0)
                    r = check_serve.compare_row(f"{view}/{ent}@{t}", view, ent, t, ref_view[ent], row,
                                                1e-9, 1e-9, "", expect_view=False)
                    checked += r.checked
                    bad.extend(r.mismatches)
    return checked, bad


def check_serve_sample(ref_path: str, serve_url: str, sample: int, timeout: float) -> tuple[int, str]:
    cp = run([sys.executable, os.path.join(SCRIPTS, "check_serve.py"), "--ref", ref_path, "--serve", serve_url,
              "--sample", str(sample)], None, timeout, check=False)
    return cp.returncode, (cp.stdout + cp.stderr).strip()


def expected_per_partition(lines: list[str]) -> dict[int, int]:
    """How many of these (valid, key-bearing) events each partition gets."""
    out: dict[int, int] = {}
    for line in lines:
        key = json.loads(line)["user_id"]
        p = reference.partition_for(reference.key_bytes(key), PARTITIONS)
        out[p] = out.get(p, 0) + 1
    return out


def distinct_updates(files: list[str], ref: dict) -> int:
    """How many event x view updates a correct featurize applies for these
    events: per view, the events that have its entity field, minus the late
    ones. Applying any of them twice makes featurize's "applied" exceed it."""
    ents = {v: m["entity"] for v, m in ref["meta"]["views"].items()}
    n = -sum(ref["counts"]["late"].values())
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    ev = json.loads(line)
                    n += sum(1 for e in ents.values() if ev.get(e) is not None)
    return n
