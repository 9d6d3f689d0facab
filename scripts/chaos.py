#!/usr/bin/env python3
"""Fault-injection tests for freshet: the three services as processes against
real Kafka and Redis, with crashes, rebalances and server restarts in the
middle of the stream, each scenario ending with serve's answers compared to
scripts/reference.py over exactly the events that were published.

    eval "$(scripts/kafka-local.sh start)"; eval "$(scripts/redis-local.sh start standalone)"
    go build -o bin/ ./cmd/ingest ./cmd/featurize ./cmd/serve ./cmd/freshet
    python3 scripts/chaos.py --bin bin [--scenario NAME ...] [--events N] [--seed S]

Scenarios (default: all six, in this order):
  crash          kill -9 featurize at random moments while a replay runs, restart it each time
  scale          featurize A, then B and C join mid-stream, then A leaves (SIGTERM)
  redis-restart  own redis-server: a clean stop and a kill -9, each ~3s down, while events flow
  kafka-restart  own Kafka broker stopped and restarted (data kept) while events come over HTTP
  rebuild        delete the run's keys, `featurize rebuild`, then `featurize rebuild --clear`
  redis-powerloss like a kill -9 of the Redis host: the AOF also loses its unsynced
                 tail (<= 1s of writes, what appendfsync everysec allows) while featurize runs

Shared servers come from FRESHET_TEST_KAFKA_BROKERS and FRESHET_TEST_REDIS_URL;
scenarios that stop a server start their own (Kafka on 19192 in
/tmp/freshet-chaos-kafka, Redis on 16379 in /tmp/freshet-chaos-redis) with
the repository's scripts. Every run uses fresh topic, group and key prefixes.
Each scenario prints one result line; the exit status is 1 if any failed.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos_lib as L  # noqa: E402
from chaos_lib import Clock, Failure, Timeout, wait_until  # noqa: E402

DEFAULT_SCENARIOS = ["crash", "scale", "redis-restart", "kafka-restart", "rebuild", "redis-powerloss", "redeploy"]
ALL_SCENARIOS = DEFAULT_SCENARIOS
DEADLINES = {"crash": 200, "scale": 120, "redis-restart": 130, "kafka-restart": 170, "rebuild": 130,
             "redis-powerloss": 120, "redeploy": 150}

# Generated events: 48 hours of event time from the start, sent up to 20
# minutes out of order (below user_spend's 1h max_lateness: nothing is late).
# The start defaults to 3 days before today 00:00 UTC. Recent event times on
# purpose: ingest stamps each Kafka message with its event time, so a broker
# with the default 7-day retention deletes older events at its next retention
# check (every 5 minutes), under a running test.
SPAN_S = 48 * 3600


def default_start() -> str:
    day = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)
    return day.strftime("%Y-%m-%dT%H:%M:%SZ")


def as_of_times(start: str) -> list[str]:
    """Mid-stream on an hour boundary minus 1 ms (tile-aligned, so exact
    whatever came later), and two after the last event."""
    t0 = datetime.fromisoformat(start.replace("Z", "+00:00"))
    fmt = lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"  # noqa: E731
    return [fmt(t0 + timedelta(hours=24, milliseconds=-1)), fmt(t0 + timedelta(hours=48, minutes=30)),
            fmt(t0 + timedelta(hours=54))]


CHECK_BUDGET = 60  # seconds for serve to equal the reference once the events are in
SAMPLE = 400

PRIVATE_KAFKA_PORT = 19192
PRIVATE_KAFKA_DIR = "/tmp/freshet-chaos-kafka"
PRIVATE_REDIS_PORT = 16379
PRIVATE_REDIS_DIR = "/tmp/freshet-chaos-redis"

T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Suite:
    def __init__(self, a: argparse.Namespace):
        self.a = a
        self.bin = os.path.abspath(a.bin)
        self.work = a.work_dir or tempfile.mkdtemp(prefix="freshet-chaos.")
        os.makedirs(self.work, exist_ok=True)
        self.cache = a.cache_dir
        self.procs = L.Procs()
        self.run_id = f"{os.getpid()}x{random.randrange(1 << 30):x}"
        self.rng = random.Random(a.seed)
        self.ats = as_of_times(a.start)
        self.brokers = os.environ.get("FRESHET_TEST_KAFKA_BROKERS", "")
        self.redis_url = os.environ.get("FRESHET_TEST_REDIS_URL", "")
        self.big = self.small = ""
        self.ref_jobs: list[L.RefJob] = []
        self.kafka: L.PrivateKafka | None = None
        self.kafka_started = threading.Event()
        self.kafka_start_error: str | None = None
        self.kafka_start_secs = 0.0
        self.redis: L.PrivateRedis | None = None
        self.gens: list = []
        self.used_shared_kafka = False

    # -- environment and services -------------------------------------------

    def env(self, scn: str, brokers: str | None = None, redis_url: str | None = None,
            commit_delay: str = "500ms") -> dict[str, str]:
        tag = f"chaos-{self.run_id}-{scn}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRESHET_")}
        env.update({
            "FRESHET_SCHEMAS": L.SCHEMAS,
            "FRESHET_KAFKA_BROKERS": brokers or self.shared_brokers(),
            "FRESHET_REDIS_URL": redis_url or self.redis_url,
            "FRESHET_TOPIC_PREFIX": f"freshet.{tag}.",
            "FRESHET_GROUP_ID": f"freshet-{tag}",
            "FRESHET_REDIS_PREFIX": f"freshet:{tag}:",
            "FRESHET_PARTITIONS": str(L.PARTITIONS),
            "FRESHET_COMMIT_DELAY": commit_delay,
        })
        for kv in self.a.set_env or []:
            k, _, v = kv.partition("=")
            env[k] = v
        return env

    def shared_brokers(self) -> str:
        self.used_shared_kafka = True
        return self.brokers

    def log(self, name: str) -> str:
        return os.path.join(self.work, name + ".log")

    def service(self, binary: str, name: str, env: dict[str, str], args: list[str] | None = None) -> L.Proc:
        port = L.free_port()
        e = dict(env, FRESHET_HTTP_ADDR=f"{L.HOST}:{port}")
        return self.procs.start(name, [os.path.join(self.bin, binary), *(args or [])], e, self.log(name), port)

    def wait_up(self, clock: Clock, p: L.Proc, path: str, timeout: float = 30) -> float:
        def up() -> bool:
            if not p.alive():
                raise Failure(f"{p.name} exited {p.rc()}: {p.tail(15)}")
            return L.status_of(p.url + path) == 200
        return wait_until(clock, up, timeout, f"{p.name} {path}", 0.05)

    def featurize(self, clock: Clock, env: dict[str, str], name: str) -> L.Proc:
        p = self.service("featurize", name, env)
        self.wait_up(clock, p, "/healthz")
        return p

    def serve(self, clock: Clock, env: dict[str, str], name: str) -> L.Proc:
        p = self.service("serve", name, env)
        self.wait_up(clock, p, "/readyz")
        return p

    def replay(self, env: dict[str, str], name: str, path: str, duration: float | None) -> L.Proc:
        """ingest replay of one file (file order is send order), paced to last
        about duration seconds, or as fast as possible."""
        args = ["replay", "--event", "transaction"]
        if duration:
            args += ["--speed", f"{SPAN_S / duration:.3f}"]
        return self.procs.start(name, [os.path.join(self.bin, "ingest"), *args, path], env, self.log(name))

    def replay_done(self, clock: Clock, p: L.Proc, want: int, timeout: float = 90) -> float:
        t = wait_until(clock, lambda: not p.alive(), timeout, f"{p.name} to finish", 0.2)
        if p.rc() != 0:
            raise Failure(f"{p.name} exited {p.rc()}: {p.tail(10)}")
        m = re.search(r"replayed (\d+) events", p.tail(5))
        if not m or int(m.group(1)) != want:
            raise Failure(f"{p.name}: expected 'replayed {want} events', got: {p.tail(3).strip()}")
        return t

    def ref(self, files: list[str], tag: str, schemas: str = "") -> L.RefJob:
        job = L.RefJob(self.cache, self.work, files, self.ats, tag, schemas)
        self.ref_jobs.append(job)
        return job

    # -- the correctness check ------------------------------------------------

    def verify(self, clock: Clock, job: L.RefJob, serve: L.Proc, budget: float = CHECK_BUDGET) -> dict:
        """Waits (bounded) until serve equals the reference: first every entity
        of every view by batch lookups (which also tells when featurize has
        caught up), then check_serve.py --sample 400, retried while it fails;
        its last attempt must pass."""
        ref = job.result(clock)
        t0 = time.monotonic()
        end = t0 + clock.bound(budget)
        attempts = 0
        while True:
            attempts += 1
            deficit: dict = {}
            checked, bad = L.compare_all(ref, serve.url, deficit=deficit)
            if not bad:
                break
            if time.monotonic() + 1 >= end:
                d = ", ".join(f"{k} {v:+d}" for k, v in sorted(deficit.items()) if v)
                raise Failure(f"serve still differs from the reference after {time.monotonic() - t0:.1f}s "
                              f"({attempts} full comparisons): {len(bad)} mismatch(es); sum over all entities of "
                              f"reference minus served counts (> 0: events missing, < 0: counted twice): "
                              f"{d or 'none'}; e.g. " + "; ".join(bad[:4]))
            time.sleep(1)
        t_match = time.monotonic() - t0
        t_match_abs = time.monotonic()
        tries = 0
        while True:
            tries += 1
            rc, out = L.check_serve_sample(job.path, serve.url, SAMPLE, max(5.0, min(60.0, end - time.monotonic())))
            if rc == 0:
                break
            if time.monotonic() + 2 >= end:
                raise Failure(f"check_serve.py --sample {SAMPLE} failed {tries} time(s); last: {out[-1200:]}")
            time.sleep(2)
        first = out.splitlines()[0] if out else ""
        m = re.search(r"checked (\d+) values", first)
        return {"match_s": t_match, "match_at": t_match_abs, "first": attempts == 1, "full_values": checked,
                "sample_values": int(m.group(1)) if m else 0, "check_tries": tries, "ref": ref}

    # -- private servers --------------------------------------------------------

    def start_private_kafka(self) -> None:
        """In the background, so that the broker boots while events are generated."""
        self.kafka = L.PrivateKafka(PRIVATE_KAFKA_PORT, PRIVATE_KAFKA_DIR, self.log("private-kafka"))

        def boot() -> None:
            try:
                self.kafka.stop()  # a leftover of an interrupted run of ours
                self.kafka_start_secs = self.kafka.start(keep_data=False)
            except Exception as e:  # reported by the scenario
                self.kafka_start_error = str(e)
            finally:
                self.kafka_started.set()

        threading.Thread(target=boot, daemon=True).start()

    def cleanup(self, passed: bool) -> None:
        self.procs.kill_all()
        for j in self.ref_jobs:
            j.kill()
        for g in self.gens:
            if not isinstance(g, str) and g.poll() is None:
                os.killpg(g.pid, signal.SIGKILL)
                g.wait()
        if self.kafka is not None:
            self.kafka_started.wait(timeout=150)
            self.kafka.stop()
        if self.redis is not None:
            try:
                self.redis.stop()
            except Exception as e:
                say(f"stopping the private Redis: {e}")
        if passed:
            self.forget()

    def forget(self) -> None:
        """Removes what the run left on the shared servers (kept after a
        failure, to look at): its keys, and its topics when kafka-local.sh's
        jars are there to do it with."""
        tag = f"chaos-{self.run_id}-"
        if self.redis_url:
            try:
                with L.Redis.from_url(self.redis_url) as r:
                    n = r.unlink_pattern(L.glob_escape(f"freshet:{tag}") + "*")
                say(f"removed {n} keys freshet:{tag}* from {self.redis_url}")
            except Exception as e:
                say(f"removing the run's keys: {e}")
        dirs = [d for d in (os.environ.get("FRESHET_KAFKA_DIR"), "/tmp/freshet-kafka", PRIVATE_KAFKA_DIR)
                if d and os.path.exists(os.path.join(d, "libs", ".pom.sha256"))]
        if self.brokers and self.used_shared_kafka and dirs:
            try:
                L.run([os.path.join(L.SCRIPTS, "kafka-local.sh"), "class", "org.apache.kafka.tools.TopicCommand",
                       "--bootstrap-server", self.brokers, "--delete", "--topic", re.escape(f"freshet.{tag}") + ".*"],
                      dict(os.environ, FRESHET_KAFKA_DIR=dirs[0]), 60, self.log("delete-topics"))
                say(f"deleted the topics freshet.{tag}* from {self.brokers}")
            except Exception as e:
                say(f"deleting the run's topics: {e}")


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

def final_stats_ok(feat: L.Proc, ref: dict, lost_marks: bool = False) -> dict:
    """featurize's counts: nothing undecodable, and nothing late that the
    reference does not drop too. A redelivered message counts as a duplicate,
    even when it looks late against the watermark saved after it; only a
    Redis that lost its saved watermarks (lost_marks) may judge differently.
    """
    st = L.stats(feat.url)
    if st is None:
        raise Failure(f"{feat.name}: no /v1/stats (alive={feat.alive()})")
    late_ref = sum(ref["counts"]["late"].values())
    if st.get("undecodable", 0) != 0:
        raise Failure(f"{feat.name}: {st['undecodable']} undecodable messages")
    if not lost_marks and late_ref == 0 and st.get("late", 0) != 0:
        raise Failure(f"{feat.name}: {st['late']} updates dropped as late, the reference has none")
    return st


def scn_crash(s: Suite, clock: Clock) -> str:
    n = s.a.events
    env = s.env("crash")
    job = s.ref([s.big], "crash")
    serve = s.serve(clock, env, "crash-serve")
    feat = s.featurize(clock, env, "crash-featurize-1")
    replay_s = s.a.crash_replay_seconds
    rp = s.replay(env, "crash-replay", s.big, replay_s)
    t_start = time.monotonic()
    say(f"crash: replaying {n} events over ~{replay_s:.0f}s; kill -9 featurize 1-4s after it is consuming")
    kills, kill_notes, dups_before_kill, late_before_kill, mid_apply = 0, [], 0, 0, 0
    stalls: list[float] = []
    t_restart = t_start
    while True:
        # Random moments while it works: 1-4 s after the restarted process
        # has consumed something (a restart first waits for the dead
        # member's session to expire, ~10 s, before the group rebalances).
        t_r = time.monotonic()
        try:
            wait_until(clock, lambda: (st := L.stats(feat.url)) is not None and st["messages"] > 0, 25,
                       f"{feat.name} consuming", 0.1)
            stalls.append(time.monotonic() - t_r)
        except Timeout:
            if not rp.alive():
                stalls.append(time.monotonic() - t_r)  # nothing left to consume: kill it idle
            else:
                raise
        clock.sleep(s.rng.uniform(1.0, 4.0))
        if kills >= s.a.kills and not rp.alive():
            break  # enough kills, and the stream is over: this process finishes
        st = L.stats(feat.url) or {}
        if not feat.alive():
            raise Failure(f"{feat.name} died by itself (rc {feat.rc()}): {feat.tail(15)}")
        feat.kill9()
        kills += 1
        flowing = rp.alive()
        mid_apply += 1 if flowing else 0
        dups_before_kill += st.get("duplicates", 0)
        late_before_kill += st.get("late", 0)
        kill_notes.append(f"{time.monotonic() - t_start:.1f}s:{st.get('messages', '?')}msg{'' if flowing else '(idle)'}")
        feat = s.featurize(clock, env, f"crash-featurize-{kills + 1}")
        t_restart = time.monotonic()
        if kills >= s.a.kills and (not rp.alive() or kills >= s.a.max_kills):
            break
    say(f"crash: {kills} kills at " + ", ".join(kill_notes))
    s.replay_done(clock, rp, n, timeout=max(30, replay_s * 2))
    t_replay = time.monotonic() - t_start
    t_end = time.monotonic()
    v = s.verify(clock, job, serve)
    st = final_stats_ok(feat, v["ref"])
    if late_before_kill:
        raise Failure(f"the killed processes dropped {late_before_kill} updates as late, the reference has none")
    le = '<=' if v['first'] else ''
    recover = (f"{le}{v['match_at'] - t_restart:.1f}s after the last restart, "
               f"{le}{v['match_at'] - t_end:.1f}s after the replay ended")
    return (f"events={n} kills={kills} (while replaying: {mid_apply}) restarts={kills} "
            f"rejoin_stall_avg={sum(stalls[1:]) / max(1, len(stalls) - 1):.1f}s replay={t_replay:.1f}s "
            f"caught_up={recover}; redelivered-and-skipped updates: "
            f"{dups_before_kill + st['duplicates']} (last process {st['duplicates']}), counted late "
            f"{late_before_kill + st['late']} (reference: 0 late); "
            f"check: {v['full_values']} values all entities + {v['sample_values']} sampled (tries {v['check_tries']})")


def scn_scale(s: Suite, clock: Clock) -> str:
    n = s.a.small_events
    env = s.env("scale")
    job = s.ref([s.small], "scale")
    serve = s.serve(clock, env, "scale-serve")
    a = s.featurize(clock, env, "scale-A")
    rp = s.replay(env, "scale-replay", s.small, 20)
    t0 = time.monotonic()
    wait_until(clock, lambda: (st := L.stats(a.url)) is not None and st["messages"] > 0, 20, "A consuming")
    clock.sleep(3)
    b = s.featurize(clock, env, "scale-B")
    c = s.featurize(clock, env, "scale-C")
    t_join = time.monotonic() - t0
    # B and C are in once one of them consumes: the group rebalanced.
    t_rebal = wait_until(clock, lambda: any((st := L.stats(p.url)) is not None and st["messages"] > 0 for p in (b, c)),
                         30, "B or C consuming after joining")
    clock.sleep(3)
    st_a = L.stats(a.url) or {}
    rc, term_s = a.term(timeout=12)
    if rc != 0:
        raise Failure(f"A exited {rc} {term_s:.1f}s after SIGTERM (want 0 within 10s): {a.tail(10)}")
    if term_s > 10.5:
        raise Failure(f"A took {term_s:.1f}s to exit after SIGTERM (want <= 10s)")
    t_left = time.monotonic()
    flowing = rp.alive()
    s.replay_done(clock, rp, n, timeout=60)
    t_replay_end = time.monotonic()
    try:
        v = s.verify(clock, job, serve)
    except Failure as e:
        sts = {"A (before SIGTERM)": st_a, "B": L.stats(b.url), "C": L.stats(c.url)}
        applied = sum((x or {}).get("applied", 0) for x in sts.values())
        want = L.distinct_updates([s.small], job.result(clock))
        twice = (f"; the members applied {applied} updates (A counted before its SIGTERM, so at least), "
                 f"there are {want} distinct ones: {applied - want} applied twice" if applied > want else "")
        raise Failure(f"{e}{twice}; members' /v1/stats: {sts}; B and C joined {t_join:.1f}s into the replay, "
                      f"A left at {t_left - t0:.1f}s")
    st_b, st_c = final_stats_ok(b, v["ref"]), final_stats_ok(c, v["ref"])
    if st_a.get("late", 0):
        raise Failure(f"A dropped {st_a['late']} updates as late, the reference has none")
    if st_b["messages"] == 0 or st_c["messages"] == 0:
        raise Failure(f"B consumed {st_b['messages']} and C {st_c['messages']} messages: one never got a partition")
    caught = f"{'<=' if v['first'] else ''}{v['match_at'] - t_left:.1f}s"
    dups = st_a.get("duplicates", 0) + st_b["duplicates"] + st_c["duplicates"]
    return (f"events={n} members: A {st_a.get('messages', '?')} msg, B {st_b['messages']}, C {st_c['messages']} "
            f"(B,C joined at {t_join:.1f}s, consuming {t_rebal:.1f}s later; A left at {t_left - t0:.1f}s "
            f"{'mid-stream' if flowing else 'after the replay'}, exit 0 in {term_s:.1f}s); "
            f"caught up {caught} after A left ({v['match_at'] - t_replay_end:.1f}s after the replay ended); "
            f"redelivered-and-skipped updates {dups}, counted late "
            f"{st_a.get('late', 0) + st_b['late'] + st_c['late']}; check: {v['full_values']} + {v['sample_values']} values")


class AofWatch:
    """Samples the size of the private Redis's newest AOF part, so that a
    power loss can be simulated: the file cut back to what it was a moment
    before the crash (what an fsync every second may leave on disk)."""

    def __init__(self, redis_dir: str):
        self.dir = os.path.join(redis_dir, "appendonlydir")
        self.samples: list[tuple[float, str, int]] = []
        self.feat_url: str | None = None
        self.msgs: list[tuple[float, int]] = []  # featurize's messages applied, over time
        self.stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def newest(self) -> str | None:
        try:
            parts = [f for f in os.listdir(self.dir) if f.endswith(".incr.aof")]
        except OSError:
            return None
        if not parts:
            return None
        return os.path.join(self.dir, max(parts, key=lambda f: int(f.split(".")[-3])))

    def _run(self) -> None:
        while not self.stop.is_set():
            f = self.newest()
            if f:
                try:
                    self.samples.append((time.monotonic(), f, os.path.getsize(f)))
                except OSError:
                    pass
            self.samples = self.samples[-200:]
            if self.feat_url:
                st = L.stats(self.feat_url)
                if st:
                    self.msgs.append((time.monotonic(), st["messages"]))
                    self.msgs = self.msgs[-200:]
            time.sleep(0.05)

    def msgs_between(self, t0: float, t1: float) -> int | None:
        a = [m for ts, m in self.msgs if ts <= t0]
        b = [m for ts, m in self.msgs if ts <= t1]
        return b[-1] - a[-1] if a and b else None

    def size_before(self, t: float, back: float) -> tuple[str, int] | None:
        cands = [(f, n) for (ts, f, n) in self.samples if ts <= t - back]
        return cands[-1] if cands else None


def redis_outage(s: Suite, clock: Clock, kind: str, pr: L.PrivateRedis, feat: L.Proc, serve: L.Proc,
                 probe: str, aof: AofWatch | None) -> dict:
    """One outage of the private Redis: kind is stop (SHUTDOWN), kill9, or
    powerloss (kill -9, then the AOF cut back to its size 0.9 s earlier)."""
    out: dict = {"kind": kind}
    pre = L.stats(feat.url) or {}
    t_kill = time.monotonic()
    if kind == "stop":
        pr.stop()
    else:
        pr.kill9()
        if kind.startswith("powerloss"):
            assert aof is not None
            cut = aof.size_before(t_kill, 0.9)
            cur = aof.newest()
            if not cut or cut[0] != cur:
                raise Failure(f"powerloss: no AOF size sample 0.9s before the crash for {cur}")
            size_now = os.path.getsize(cur)
            with open(cur, "r+b") as fh:
                fh.truncate(cut[1])
            out["aof_cut"] = size_now - cut[1]
            out["msgs_in_cut"] = aof.msgs_between(t_kill - 0.9, t_kill)
    t_down = time.monotonic()
    if not L.wait_port_closed(pr.port, 5):
        raise Failure(f"Redis still accepts connections on {pr.port} 5s after {kind}")
    # During the outage: serve 503 on a lookup, featurize alive and healthy
    # but not ready.
    seen: dict[str, object] = {}

    def serve_503() -> bool:
        code = L.status_of(f"{serve.url}/v1/features/user_spend/{probe}")
        if code == 200:
            raise Failure(f"serve answered 200 to a lookup while Redis was down ({kind})")
        seen["serve"] = code
        return code == 503
    wait_until(clock, serve_503, 3, f"serve 503 during the Redis outage ({kind})", 0.1)

    def feat_not_ready() -> bool:
        code = L.status_of(feat.url + "/readyz")
        seen["feat_readyz"] = code
        return code is not None and code != 200
    wait_until(clock, feat_not_ready, 3, f"featurize /readyz non-200 during the outage ({kind})", 0.1)
    hz = L.status_of(feat.url + "/healthz")
    if hz != 200 or not feat.alive():
        raise Failure(f"featurize during the Redis outage: alive={feat.alive()} /healthz {hz}: {feat.tail(10)}")
    clock.sleep(max(0.0, 3.0 - (time.monotonic() - t_down)))
    if not feat.alive():
        raise Failure(f"featurize exited during the Redis outage: {feat.tail(15)}")
    out["down_s"] = time.monotonic() - t_down
    if kind == "powerloss-restart":
        # The control experiment: featurize crashes too, so the group
        # resumes from the offsets committed to Kafka.
        feat.kill9()
    pr.start()
    t_up = time.monotonic()
    if kind == "powerloss-restart":
        feat = s.featurize(clock, feat.env, feat.name + "-restarted")
    out["feat"] = feat
    out["serve_recover_s"] = wait_until(
        clock, lambda: L.status_of(f"{serve.url}/v1/features/user_spend/{probe}") == 200, 20,
        f"serve 200 again after Redis came back ({kind})", 0.05)
    out["feat_ready_s"] = time.monotonic() - t_up + wait_until(
        clock, lambda: L.status_of(feat.url + "/readyz") == 200, 20, "featurize ready again", 0.05)
    if kind == "powerloss-restart":
        wait_until(clock, lambda: (L.stats(feat.url) or {}).get("messages", 0) > 0, 25, "restarted featurize consuming")
    base = (L.stats(feat.url) or {}).get("messages", 0)
    try:
        wait_until(clock, lambda: (L.stats(feat.url) or {}).get("messages", 0) > base, 12,
                   "featurize applying again", 0.1)
        out["feat_resume_s"] = time.monotonic() - t_up
    except Timeout:
        out["feat_resume_s"] = None  # nothing left to consume
    out["msgs_before"] = pre.get("messages")
    out["serve_during"] = seen.get("serve")
    out["feat_readyz_during"] = seen.get("feat_readyz")
    return out


def redis_scenario(s: Suite, clock: Clock, name: str, kinds: list[str]) -> str:
    n = s.a.small_events
    pr = L.PrivateRedis(PRIVATE_REDIS_PORT, PRIVATE_REDIS_DIR, s.log("private-redis"))
    s.redis = pr
    pr.fresh()
    with pr.client() as r:
        # Our own server: no automatic AOF rewrite, so the AOF part a power
        # loss cuts is the one written during the outage window.
        r.cmd("CONFIG", "SET", "auto-aof-rewrite-percentage", "0")
    env = s.env(name, redis_url=pr.url, commit_delay="2s")
    job = s.ref([s.small], name)
    aof = AofWatch(pr.dir) if any(k.startswith("powerloss") for k in kinds) else None
    try:
        serve = s.serve(clock, env, f"{name}-serve")
        feat = s.featurize(clock, env, f"{name}-featurize")
        if aof:
            aof.feat_url = feat.url
        rp = s.replay(env, f"{name}-replay", s.small, 24)
        t0 = time.monotonic()
        with open(s.small) as fh:
            probe = json.loads(fh.readline())["user_id"]
        wait_until(clock, lambda: (L.stats(feat.url) or {}).get("messages", 0) > 0, 20, "featurize consuming")
        outs = []
        for kind in kinds:
            clock.sleep(3)
            if not rp.alive():
                raise Failure("the replay ended before the outage: events must flow during it")
            say(f"{name}: Redis {kind} at {time.monotonic() - t0:.1f}s")
            outs.append(redis_outage(s, clock, kind, pr, feat, serve, probe, aof))
            feat = outs[-1]["feat"]
        s.replay_done(clock, rp, n, timeout=60)
        t_end = time.monotonic()

        def outages() -> str:
            parts = []
            for o in outs:
                resume = o["feat_resume_s"]
                parts.append(
                    f"{o['kind']}: down {o['down_s']:.1f}s (serve {o['serve_during']}, featurize alive, /healthz 200, "
                    f"/readyz {o['feat_readyz_during']}), serve 200 {o['serve_recover_s']:.2f}s after restart, "
                    f"featurize ready {o['feat_ready_s']:.1f}s, applying {'-' if resume is None else f'{resume:.1f}'}s"
                    + (f", AOF tail cut {o['aof_cut']} bytes (featurize had applied {o['msgs_in_cut']} messages in "
                       f"those 0.9s)" if "aof_cut" in o else ""))
            return "[" + "; ".join(parts) + "]"
        try:
            v = s.verify(clock, job, serve)
        except Failure as e:
            raise Failure(f"{e}; outages {outages()}; featurize stats {L.stats(feat.url)} (it was "
                          f"{'restarted' if any(k == 'powerloss-restart' for k in kinds) else 'not restarted'})")
        st = final_stats_ok(feat, v["ref"], lost_marks=any(k == "powerloss-restart" for k in kinds))
    finally:
        if aof:
            aof.stop.set()
    return (f"events={n} restarts={len(outs)} {outages()}; caught up {'<=' if v['first'] else ''}"
            f"{v['match_at'] - t_end:.1f}s after the replay ended; featurize messages {st['messages']} applied "
            f"{st['applied']} dups {st['duplicates']} late {st['late']}; "
            f"check: {v['full_values']} + {v['sample_values']} values")


def scn_redis_restart(s: Suite, clock: Clock) -> str:
    return redis_scenario(s, clock, "redis-restart", ["stop", "kill9"])


def scn_redis_powerloss(s: Suite, clock: Clock) -> str:
    return redis_scenario(s, clock, "redis-powerloss",
                          ["powerloss-restart" if s.a.powerloss_restart_featurize else "powerloss"])


class Sender(threading.Thread):
    """Sends NDJSON batches to ingest one after the other, as a client that
    honours 503 + Retry-After does: a batch is retried until it gets 202, and
    the next one goes only then, so the accepted events keep file order."""

    def __init__(self, url: str, lines: list[str], batch: int, pause: float, deadline: float):
        super().__init__(daemon=True)
        self.url, self.lines, self.batch, self.pause, self.deadline = url, lines, batch, pause, deadline
        self.attempts: list[tuple[int, float, float, int | None]] = []  # batch, sent, answered, status
        self.accepted: list[int] = []
        self.warnings: dict[int, str] = {}  # batch -> the "warning" of a 503 answering it
        self.error: str | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for bi, i in enumerate(range(0, len(self.lines), self.batch)):
                body = ("\n".join(self.lines[i:i + self.batch]) + "\n").encode()
                while True:
                    if self.stop.is_set() or time.monotonic() > self.deadline:
                        self.error = f"batch {bi} not accepted before the deadline"
                        return
                    t = time.monotonic()
                    code, resp, hdrs = L.http("POST", self.url, body, "application/x-ndjson", timeout=30)
                    self.attempts.append((bi, t, time.monotonic(), code))
                    if code == 202:
                        n = (resp or {}).get("accepted")
                        if n != len(self.lines[i:i + self.batch]):
                            self.error = f"batch {bi}: 202 accepted {n} of {len(self.lines[i:i + self.batch])}"
                            return
                        self.accepted.append(bi)
                        break
                    if code == 503:
                        if (resp or {}).get("warning"):
                            self.warnings[bi] = resp["warning"]
                        ra = hdrs.get("Retry-After")
                        if ra is None:
                            self.error = f"batch {bi}: 503 without Retry-After"
                            return
                        time.sleep(min(float(ra), 1.0))
                        continue
                    self.error = f"batch {bi}: unexpected HTTP {code}: {resp}"
                    return
                time.sleep(self.pause)
        except Exception as e:  # reported by the scenario
            self.error = f"sender: {e!r}"


def scn_kafka_restart(s: Suite, clock: Clock) -> str:
    s.kafka_started.wait(timeout=clock.bound(150))
    if s.kafka_start_error or not s.kafka_started.is_set():
        raise Failure(f"private Kafka did not start: {s.kafka_start_error or 'timeout'}")
    pk = s.kafka
    assert pk is not None
    env = s.env("kafka-restart", brokers=pk.brokers)
    # Every batch is retried until accepted, so what is published is the
    # whole file in order: its reference can start now (checked below).
    job = s.ref([s.small], "kafka-restart")
    ingest = s.service("ingest", "kafka-ingest", env)
    s.wait_up(clock, ingest, "/readyz", 40)
    feat = s.featurize(clock, env, "kafka-featurize")
    serve = s.serve(clock, env, "kafka-serve")
    with open(s.small) as fh:
        lines = [ln.rstrip("\n") for ln in fh if ln.strip()]
    batch = 500
    nb = (len(lines) + batch - 1) // batch
    sender = Sender(f"{ingest.url}/v1/events/transaction", lines, batch, 0.08, time.monotonic() + clock.bound(120))
    findings: list[str] = []
    died: list[float] = []  # when featurize exited by itself
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            if not feat.alive():
                died.append(time.monotonic())
                return
            time.sleep(0.05)
    threading.Thread(target=watch, daemon=True).start()

    wait_until(clock, lambda: L.stats(feat.url) is not None, 10, "featurize stats")
    sender.start()
    try:
        wait_until(clock, lambda: len(sender.accepted) >= nb // 3 or not sender.is_alive(), 40,
                   "a third of the batches accepted")
        if not sender.is_alive():
            raise Failure(f"sender stopped early: {sender.error}")
        wait_until(clock, lambda: (L.stats(feat.url) or {}).get("messages", 0) > 0, 20, "featurize consuming")
        at_batch = len(sender.accepted)
        say(f"kafka-restart: stopping Kafka after {at_batch} of {nb} batches")

        stop_s = pk.stop()
        if not L.wait_port_closed(pk.port, 10):
            raise Failure(f"Kafka still accepts connections on {pk.port} 10s after stop")
        t_down = time.monotonic()
        # While down: ingest answers 503 (never 202); featurize should stay up.
        wait_until(clock, lambda: any(a[1] >= t_down and a[3] == 503 for a in sender.attempts), 20,
                   "ingest answering 503 while Kafka is down")
        rz_ingest = L.status_of(ingest.url + "/readyz")
        rz_feat = L.status_of(feat.url + "/readyz")
        hz_feat = L.status_of(feat.url + "/healthz")
        clock.sleep(max(0.0, 4.0 - (time.monotonic() - t_down)))
        if not ingest.alive():
            raise Failure(f"ingest exited while Kafka was down (rc {ingest.rc()}): {ingest.tail(15)}")
        t_start0 = time.monotonic()
        down_s = t_start0 - t_down
        start_s = pk.start(keep_data=True)
        t_up = time.monotonic()
        ingest_back = wait_until(clock, lambda: any(a[1] >= t_up and a[3] == 202 for a in sender.attempts)
                                 or not sender.is_alive(), 40, "ingest accepting again after Kafka restarted")
        sender.join(timeout=clock.bound(120))
        if sender.is_alive() or sender.error:
            raise Failure(f"sender: {sender.error or 'still running'}")
    finally:
        sender.stop.set()
        watching.set()
    t_sent = time.monotonic()
    during = [a for a in sender.attempts if a[1] >= t_down and a[2] <= t_start0]
    bad = [a for a in during if a[3] != 503]
    if bad:
        raise Failure(f"while Kafka was down ingest answered {sorted({a[3] for a in bad})} "
                      f"({len(bad)} of {len(during)} requests); want only 503")
    statuses: dict = {}
    for a in sender.attempts:
        statuses[a[3]] = statuses.get(a[3], 0) + 1
    acc_path = os.path.join(s.work, "kafka-restart.accepted.ndjson")
    acc_lines = [ln for bi in sender.accepted for ln in lines[bi * batch:(bi + 1) * batch]]
    with open(acc_path, "w") as fh:
        fh.writelines(ln + "\n" for ln in acc_lines)
    if sender.accepted != list(range(nb)):
        job = s.ref([acc_path], "kafka-restart-accepted")
    # What Kafka holds must be exactly what was accepted: read it back. A
    # 503 means "not accepted", but its batch may be partly written: then
    # the retry writes those events again.
    topic = env["FRESHET_TOPIC_PREFIX"] + "transaction"
    ends = pk.end_offsets(topic)
    recs = pk.dump(topic, sum(ends.values()))
    tid = lambda line: json.loads(line)["txn_id"]  # noqa: E731  (unique in generated data)
    batch_of = {tid(ln): i // batch for i, ln in enumerate(lines)}
    acc_ids = {tid(ln) for ln in acc_lines}
    seen: dict[str, int] = {}
    for _, _, val in recs:
        seen[tid(val)] = seen.get(tid(val), 0) + 1
    lost = acc_ids - seen.keys()
    if lost:
        raise Failure(f"{len(lost)} events ingest accepted (202) are not in Kafka, e.g. {sorted(lost)[:3]}")
    extra = sorted(t for t in seen if t not in acc_ids)
    twice = {t: c - 1 for t, c in seen.items() if c > 1}
    truth_job = None
    kafka_note = f"Kafka holds exactly the {len(acc_lines)} accepted"
    # With an id on the event type a retried batch's repeats are expected in
    # Kafka, and featurize must skip them: serve is then judged against the
    # accepted events. Without one they are counted twice: a finding.
    id_field = L.reference.load_schema(L.SCHEMAS).events["transaction"].id_field
    if twice and not extra and id_field:
        warned = sorted({batch_of[t] for t in twice} & sender.warnings.keys())
        kafka_note = (f"Kafka holds {len(recs)} messages for {len(acc_lines)} accepted events ({sum(twice.values())} "
                      f"twice, from retries of batches {sorted({batch_of[t] for t in twice})} that ingest answered 503 "
                      f"after Kafka took part of them; featurize skips them by {id_field}; the 503s of "
                      f"{len(warned)} of them said so: {sender.warnings[warned[0]][:160] if warned else '-'})")
        if not warned:
            findings.append("FINDING: batches written twice were answered 503 without a warning naming the risk")
    elif twice or extra:
        per_batch: dict[int, int] = {}
        parts_of: dict[int, set] = {}
        for p_, _, val in recs:
            t = tid(val)
            if t in twice:
                b = batch_of[t]
                parts_of.setdefault(b, set()).add(p_)
        for t, k in twice.items():
            per_batch[batch_of[t]] = per_batch.get(batch_of[t], 0) + k
        desc = []
        for b, k in sorted(per_batch.items()):
            answers = [a[3] for a in sender.attempts if a[0] == b]
            desc.append(f"batch {b} answered {answers}: {k} of its {len(lines[b * batch:(b + 1) * batch])} events "
                        f"are in Kafka twice (partitions {sorted(parts_of[b])} of 0-{L.PARTITIONS - 1})")
        pub = [ln for ln in ingest.tail(400).splitlines() if "publish failed" in ln]
        findings.append(
            f"FINDING: ingest answered 503 to a batch it had partly written to Kafka, so the client's retry (as "
            f"Retry-After asks) wrote those events twice, and featurize counts them twice (no id field in the "
            f"example schema: nothing de-duplicates them): " + "; ".join(desc) +
            (f"; {len(extra)} events in Kafka were never accepted" if extra else "") +
            (f"; ingest logged: {pub[0][:300]}" if pub else ""))
        kafka_note = (f"Kafka holds {len(recs)} messages for {len(acc_lines)} accepted events "
                      f"({sum(twice.values())} twice)")
        truth = os.path.join(s.work, "kafka-restart.kafka-content.ndjson")
        with open(truth, "w") as fh:
            fh.writelines(v + "\n" for _, _, v in recs)  # partition by partition, in offset order
        truth_job = s.ref([truth], "kafka-restart-kafka-content")
    feat_note = "featurize (not restarted)"
    if died or not feat.alive():
        last = [ln for ln in feat.tail(6).splitlines() if "level=ERROR" in ln]
        when = (f"{died[0] - t_down:.1f}s after Kafka went down" if died else "") + \
            (f" ({'while it was starting again, ' if died[0] >= t_start0 else ''}outage {down_s:.1f}s, restart "
             f"{start_s:.1f}s)" if died else "")
        findings.append(f"FINDING: featurize exited with status {feat.rc()} {when} and did not come back by "
                        f"itself: {last[-1] if last else feat.tail(3)}")
        # So that the rest is still checked: a replacement, as a supervisor
        # would start, must find everything that was accepted.
        feat = s.featurize(clock, env, "kafka-featurize-replacement")
        feat_note = "a replacement featurize (started after the check above)"
    against = "the accepted events"
    try:
        if truth_job is not None:
            # featurize is judged on what Kafka holds; the accepted events'
            # reference then shows what the duplicates did to the features.
            against = "what Kafka holds"
            v = s.verify(clock, truth_job, serve)
            deficit: dict = {}
            _, bad = L.compare_all(job.result(clock), serve.url, deficit=deficit)
            d = ", ".join(f"{k} {x:+d}" for k, x in sorted(deficit.items()) if x)
            findings.append(f"against the accepted events serve differs in {len(bad)} values (reference minus "
                            f"served counts: {d or 'none'})")
        else:
            v = s.verify(clock, job, serve)
    except Failure as e:
        raise Failure("; ".join(findings + [f"{feat_note} did not catch up after the Kafka restart (alive="
                                            f"{feat.alive()}, stats {L.stats(feat.url)}): {e}; featurize log tail: "
                                            f"{feat.tail(12)}"]))
    st = final_stats_ok(feat, v["ref"])
    le = '<=' if v['first'] else ''
    line = (f"events={len(acc_lines)} in {nb} HTTP batches of {batch} (Kafka stopped after batch {at_batch}: "
            f"stop {stop_s:.1f}s, down {down_s:.1f}s, restart {start_s:.1f}s); HTTP statuses {statuses}; "
            f"while down: {len(during)} of {len(during)} requests 503 with Retry-After, ingest /readyz {rz_ingest}, "
            f"featurize /healthz {hz_feat} /readyz {rz_feat}; ingest 202 again {ingest_back:.1f}s after Kafka was "
            f"up; {kafka_note}; {feat_note} equal to {against} {le}"
            f"{v['match_at'] - t_up:.1f}s after Kafka was up ({le}{v['match_at'] - t_sent:.1f}s after the last "
            f"batch); its messages {st['messages']} dups {st['duplicates']} late {st['late']}; "
            f"check: {v['full_values']} + {v['sample_values']} values")
    if findings:
        raise Failure("; ".join(findings) + " || otherwise: " + line)
    return line


def parse_rebuild(log: str) -> dict:
    m = re.search(r'msg="rebuild done".*?messages=(\d+) applied=(\d+) duplicates=(\d+) late=(\d+)', log)
    if not m:
        return {}
    return dict(zip(("messages", "applied", "duplicates", "late"), map(int, m.groups())))


def scn_rebuild(s: Suite, clock: Clock) -> str:
    n = s.a.small_events
    env = s.env("rebuild")
    job = s.ref([s.small], "rebuild")
    serve = s.serve(clock, env, "rebuild-serve")
    feat = s.featurize(clock, env, "rebuild-featurize")
    rp = s.replay(env, "rebuild-replay", s.small, None)
    s.replay_done(clock, rp, n, timeout=60)
    v0 = s.verify(clock, job, serve)
    prefix = env["FRESHET_REDIS_PREFIX"]
    with L.Redis.from_url(s.redis_url) as r:
        deleted = r.unlink_pattern(L.glob_escape(prefix) + "*")
        left = len(r.scan_keys(L.glob_escape(prefix) + "*"))
    if deleted == 0 or left:
        raise Failure(f"deleting {prefix}*: {deleted} deleted, {left} left")
    with open(s.small) as fh:
        probe = json.loads(fh.readline())["user_id"]
    code, body, _ = L.http("GET", f"{serve.url}/v1/features/user_spend/{probe}")
    if not isinstance(body, dict) or body.get("status") != "NOT_FOUND":
        raise Failure(f"after deleting the keys serve still finds {probe}: HTTP {code} {body}")
    rc, term_s = feat.term()
    if rc != 0:
        raise Failure(f"featurize exited {rc} after SIGTERM ({term_s:.1f}s): {feat.tail(10)}")
    out = []
    for args in (["rebuild"], ["rebuild", "--clear"]):
        t = time.monotonic()
        cp = L.run([os.path.join(s.bin, "featurize"), *args], env, clock.bound(90),
                   s.log("rebuild-" + "-".join(args)), check=False)
        secs = time.monotonic() - t
        if cp.returncode != 0:
            raise Failure(f"featurize {' '.join(args)} exited {cp.returncode}: {cp.stderr.strip()[-800:]}")
        rs = parse_rebuild(cp.stderr)
        if rs.get("messages") != n:
            raise Failure(f"featurize {' '.join(args)}: rebuild consumed {rs.get('messages')} messages, want {n}")
        v = s.verify(clock, job, serve, budget=30)
        out.append(f"{' '.join(args)}: {secs:.1f}s (messages {rs['messages']} applied {rs['applied']} "
                   f"dups {rs['duplicates']} late {rs['late']}), equal {v['match_s']:.1f}s later")
    return (f"events={n} caught up {v0['match_s']:.1f}s after the replay; deleted {deleted} keys (serve NOT_FOUND); "
            f"featurize stopped (exit 0 in {term_s:.1f}s); " + "; ".join(out) +
            f"; check after each: all entities + {SAMPLE} sampled")


# Definitions B of the redeploy scenario: edits of schemas/example, each one
# kind of change #14 names.
REDEPLOY_EDITS = [
    # an optional event field added
    ("card_present: bool", "card_present: bool\n      coupon: string"),
    # user_spend: a feature removed, and one on a new hop (a new layout:
    # recomputed from Kafka)
    ("      items_min_1h:   {agg: min,    field: items,  window: 1h,  hop: 1m}\n", ""),
    ("      txn_count_1h:   {agg: count,  window: 1h,  hop: 1m}\n",
     "      txn_count_1h:   {agg: count,  window: 1h,  hop: 1m}\n      txn_count_2h:   {agg: count,  window: 2h,  hop: 2m}\n"),
    # merchant_activity: a window widened within the tiles kept, and a
    # feature on a statistic it keeps (the same layout: instant)
    ("amount_sum_1h:    {agg: sum,   field: amount, window: 1h, hop: 5m}",
     "amount_sum_1h:    {agg: sum,   field: amount, window: 2h, hop: 5m}"),
    ("      items_sum_1h:", "      txn_count_1h:     {agg: count, window: 1h, hop: 5m}\n      items_sum_1h:"),
]


def histogram_p99(metrics: str, name: str, since: dict[float, float] | None = None) -> tuple[float | None, dict]:
    """The 99th percentile (a bucket's upper bound) of a Prometheus histogram,
    summed over its series, over the samples after since (buckets as
    returned before); and the buckets now."""
    buckets: dict[float, float] = {}
    for line in metrics.splitlines():
        m = re.match(re.escape(name) + r'_bucket\{(.*)\} ([0-9.e+]+)$', line)
        if not m:
            continue
        le = re.search(r'le="([^"]+)"', m.group(1))
        if le:
            bound = float("inf") if le.group(1) == "+Inf" else float(le.group(1))
            buckets[bound] = buckets.get(bound, 0) + float(m.group(2))
    diff = {b: n - (since or {}).get(b, 0) for b, n in buckets.items()}
    total = diff.get(float("inf"), 0)
    if total <= 0:
        return None, buckets
    for b in sorted(diff):
        if diff[b] >= 0.99 * total:
            return b, buckets
    return None, buckets


def metrics_text(p: L.Proc) -> str:
    """A service's GET /metrics, "" when it does not answer."""
    try:
        with urllib.request.urlopen(p.url + "/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError:
        return ""


def scn_redeploy(s: Suite, clock: Clock) -> str:
    """Definitions A over the first half of a stream; then featurize and
    serve restart on definitions B (REDEPLOY_EDITS) and the second half is
    sent while user_spend (a new layout) is recomputed from Kafka: the views
    whose layout B keeps equal the reference from the first lookup after the
    restart, user_spend answers PENDING until its catch-up is live, and then
    everything equals the reference on B over the whole stream (nothing
    missed, nothing counted twice)."""
    env_a = s.env("redeploy")
    b_dir = os.path.join(s.work, "defs-b")
    os.makedirs(b_dir, exist_ok=True)
    with open(os.path.join(L.SCHEMAS, "transactions.yaml")) as fh:
        text = fh.read()
    for old, new in REDEPLOY_EDITS:
        if old not in text:
            raise Failure(f"redeploy: schemas/example no longer has {old.strip()!r}: update REDEPLOY_EDITS")
        text = text.replace(old, new, 1)
    with open(os.path.join(b_dir, "transactions.yaml"), "w") as fh:
        fh.write(text)
    env_b = dict(env_a, FRESHET_SCHEMAS=b_dir, FRESHET_CATCH_UP_RATE="5000")
    with open(s.small) as fh:
        lines = fh.readlines()
    half = len(lines) // 2
    first, second = os.path.join(s.work, "redeploy-1.ndjson"), os.path.join(s.work, "redeploy-2.ndjson")
    for path, part in ((first, lines[:half]), (second, lines[half:])):
        with open(path, "w") as fh:
            fh.writelines(part)
    job_a = s.ref([first], "redeploy-a")
    job_b1 = s.ref([first], "redeploy-b1", b_dir)
    job_b = s.ref([first, second], "redeploy-b", b_dir)

    serve = s.serve(clock, env_a, "redeploy-serve-a")
    feat = s.featurize(clock, env_a, "redeploy-featurize-a")
    s.replay_done(clock, s.replay(env_a, "redeploy-replay-1", first, None), half, timeout=60)
    s.verify(clock, job_a, serve)
    for p in (feat, serve):
        rc, secs = p.term()
        if rc != 0:
            raise Failure(f"{p.name} exited {rc} after SIGTERM ({secs:.1f}s): {p.tail(10)}")

    # B, while the second half is sent.
    t_switch = time.monotonic()
    feat_b = s.featurize(clock, env_b, "redeploy-featurize-b")
    serve_b = s.serve(clock, env_b, "redeploy-serve-b")
    code, views, _ = L.http("GET", f"{serve_b.url}/v1/views")
    states = {v["name"]: {f["state"] for f in v["features"]} for v in (views or {}).get("views", [])}
    if states.get("user_spend") != {"catching up"} or states.get("merchant_activity") != {"live"}:
        raise Failure(f"GET /v1/views right after the redeploy: HTTP {code}, states {states}")
    ref_b1 = job_b1.result(clock)
    instant = {**ref_b1, "views": {"merchant_activity": ref_b1["views"]["merchant_activity"]}}
    checked_instant, bad = L.compare_all(instant, serve_b.url)
    if bad:
        raise Failure(f"merchant_activity (layout kept) differs from the reference on B at the first lookup: "
                      f"{len(bad)} mismatch(es), e.g. " + "; ".join(bad[:3]))
    probe = json.loads(lines[0])["user_id"]
    code, row, _ = L.http("GET", f"{serve_b.url}/v1/features/user_spend/{probe}")
    fs = (row or {}).get("feature_status") or {}
    if (row or {}).get("status") != "PENDING" or set(fs.values()) != {"PENDING"} or any(
            v is not None for v in (row or {}).get("features", {}).values()):
        raise Failure(f"user_spend while catching up: HTTP {code} {row}")
    _, base = histogram_p99(metrics_text(feat_b), "freshet_featurize_end_to_end_delay_seconds")
    rp = s.replay(env_b, "redeploy-replay-2", second, 12)

    pending_seen = 0

    def live() -> bool:
        nonlocal pending_seen
        if not feat_b.alive():
            raise Failure(f"{feat_b.name} exited {feat_b.rc()}: {feat_b.tail(15)}")
        _, body, _ = L.http("GET", f"{serve_b.url}/v1/views")
        st = {f["state"] for v in (body or {}).get("views", []) if v["name"] == "user_spend" for f in v["features"]}
        if st == {"catching up"}:
            pending_seen += 1
        return st == {"live"}
    wait_until(clock, live, 90, "user_spend live after its catch-up", 0.2)
    t_live = time.monotonic() - t_switch
    p99, _ = histogram_p99(metrics_text(feat_b), "freshet_featurize_end_to_end_delay_seconds", base)
    m = re.search(r"caught up: the view is live.*?applied=(\d+) events_per_second=([0-9.e+]+)", feat_b.tail(400), re.S)
    rate = f"{float(m.group(2)):.0f} events/s ({m.group(1)} events)" if m else "rate not logged"
    s.replay_done(clock, rp, len(lines) - half, timeout=60)
    v = s.verify(clock, job_b, serve_b)
    st = final_stats_ok(feat_b, v["ref"])
    return (f"events={len(lines)} ({half} on A, {len(lines) - half} during the catch-up); merchant_activity kept "
            f"its state: {checked_instant} values equal at the first lookup; user_spend PENDING ({pending_seen} "
            f"polls) until live {t_live:.1f}s after the restart; catch-up {rate}; end-to-end delay p99 during "
            f"the catch-up {p99 if p99 is not None else 'n/a'}s (bucket bound); then all equal to the reference "
            f"on B ({v['full_values']} values; deferred to the catch-up {st.get('deferred_to_catch_up', 0)})")


SCENARIO_FUNCS = {"crash": scn_crash, "scale": scn_scale, "redis-restart": scn_redis_restart,
                  "kafka-restart": scn_kafka_restart, "rebuild": scn_rebuild, "redis-powerloss": scn_redis_powerloss,
                  "redeploy": scn_redeploy}


# ---------------------------------------------------------------------------

def gen_args(events: int, seed: int, start: str) -> list[str]:
    return ["--users", "5000", "--merchants", "500", "--events", str(events), "--start", start,
            "--span", "48h", "--shuffle", "20", "--invalid", "0", "--late", "0", "--seed", str(seed)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--scenario", action="append", choices=ALL_SCENARIOS,
                    help="scenario to run (repeatable; default: " + ", ".join(DEFAULT_SCENARIOS) + ")")
    ap.add_argument("--bin", required=True, help="dir with the ingest, featurize, serve and freshet binaries")
    ap.add_argument("--events", type=int, default=200_000, help="events of the crash scenario (default 200000)")
    ap.add_argument("--small-events", type=int, default=60_000, help="events of the other scenarios (default 60000)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the events and of the kill timings")
    ap.add_argument("--start", default=default_start(),
                    help="event time of the first event, RFC 3339 at a whole hour (default: 3 days before today "
                         "00:00 UTC; older than the broker's retention, events may be deleted under the test)")
    ap.add_argument("--kills", type=int, default=5, help="least kill -9s of the crash scenario (default 5)")
    ap.add_argument("--max-kills", type=int, default=8, help="most kill -9s while the replay lasts (default 8)")
    ap.add_argument("--crash-replay-seconds", type=float, default=55.0,
                    help="how long the crash scenario's replay is paced to last (default 55)")
    ap.add_argument("--powerloss-restart-featurize", action="store_true",
                    help="redis-powerloss control experiment: kill -9 featurize during the outage and start it "
                         "again after, so that it resumes from the offsets committed to Kafka")
    ap.add_argument("--set-env", action="append", metavar="KEY=VALUE",
                    help="extra environment of every freshet process (experiments, e.g. FRESHET_BATCH_SIZE=1)")
    ap.add_argument("--cache-dir", default="/tmp/freshet-chaos-cache",
                    help="generated events and reference outputs, reused when their inputs are the same")
    ap.add_argument("--work-dir", help="logs and files of this run (default: a new temporary dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir even when everything passed")
    a = ap.parse_args()
    scenarios = a.scenario or DEFAULT_SCENARIOS
    scenarios = [x for x in ALL_SCENARIOS if x in scenarios]  # canonical order, no repeats

    for b in ("ingest", "featurize", "serve"):
        if not os.access(os.path.join(a.bin, b), os.X_OK):
            print(f"chaos: {os.path.join(a.bin, b)} not found; build with "
                  f"go build -o {a.bin}/ ./cmd/ingest ./cmd/featurize ./cmd/serve ./cmd/freshet", file=sys.stderr)
            return 2
    need_kafka = any(x in scenarios for x in ("crash", "scale", "redis-restart", "redis-powerloss", "rebuild", "redeploy"))
    need_redis = any(x in scenarios for x in ("crash", "scale", "kafka-restart", "rebuild", "redeploy"))
    missing = [v for v, need in (("FRESHET_TEST_KAFKA_BROKERS", need_kafka), ("FRESHET_TEST_REDIS_URL", need_redis))
               if need and not os.environ.get(v)]
    if missing:
        print(f"chaos: set {' and '.join(missing)} (eval \"$(scripts/kafka-local.sh start)\"; "
              f"eval \"$(scripts/redis-local.sh start standalone)\")", file=sys.stderr)
        return 2
    if a.events < 200_000 and "crash" in scenarios:
        say(f"note: --events {a.events} is below the 200000 the crash scenario is meant to replay")

    # The cache holds a few files per day of start times: drop old ones.
    if os.path.isdir(a.cache_dir):
        for f in os.listdir(a.cache_dir):
            path = os.path.join(a.cache_dir, f)
            try:
                if time.time() - os.path.getmtime(path) > 3 * 86400:
                    os.unlink(path)
            except OSError:
                pass
    s = Suite(a)
    results: list[tuple[str, bool, str, float]] = []

    def on_term(signum, frame):  # run the cleanup on SIGTERM too
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    say(f"chaos: run {s.run_id}, work dir {s.work}, scenarios {' '.join(scenarios)}")
    try:
        if "kafka-restart" in scenarios:
            s.start_private_kafka()
        t = time.monotonic()
        gens = {}
        if "crash" in scenarios:
            gens["big"] = L.gen_events(s.cache, gen_args(a.events, a.seed, a.start), 200)
        if any(x != "crash" for x in scenarios):
            gens["small"] = L.gen_events(s.cache, gen_args(a.small_events, a.seed + 1, a.start), 200)
        s.gens = list(gens.values())
        s.big = L.finish_gen(gens["big"]) if "big" in gens else ""
        s.small = L.finish_gen(gens["small"]) if "small" in gens else ""
        say(f"events ready in {time.monotonic() - t:.1f}s: {s.big or '-'} {s.small or '-'}")
        for name in scenarios:
            clock = Clock(name, DEADLINES[name])
            say(f"=== {name} (deadline {DEADLINES[name]}s)")
            try:
                line = SCENARIO_FUNCS[name](s, clock)
                ok = True
            except Failure as e:
                ok, line = False, str(e)
            except Exception as e:
                ok, line = False, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
            results.append((name, ok, line, clock.elapsed()))
            say(f"{name}: {'PASS' if ok else 'FAIL'} in {clock.elapsed():.1f}s: {line}")
            # Each scenario's processes end with it.
            s.procs.kill_all()
    except KeyboardInterrupt as e:
        say(f"interrupted ({e}); cleaning up")
        results.append(("interrupted", False, str(e), 0.0))
    finally:
        s.cleanup(passed=bool(results) and all(r[1] for r in results))
    total = time.monotonic() - T0
    print()
    print(f"chaos: results (total {total:.1f}s, work dir {s.work})")
    for name, ok, line, secs in results:
        print(f"  {name:15s} {'PASS' if ok else 'FAIL'} {secs:6.1f}s  {line.splitlines()[0] if line else ''}")
    with open(os.path.join(s.work, "results.txt"), "w") as fh:
        for name, ok, line, secs in results:
            fh.write(f"{name} {'PASS' if ok else 'FAIL'} {secs:.1f}s {line}\n")
    failed = [r for r in results if not r[1]]
    if total > 480:
        print(f"chaos: warning: the run took {total:.0f}s, over the 8-minute budget")
    if not failed and not a.keep:
        shutil.rmtree(s.work, ignore_errors=True)
    elif failed:
        print(f"chaos: {len(failed)} scenario(s) failed; logs in {s.work}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
