#!/usr/bin/env python3
"""Search what a run wrote for the secrets it was given (#13 section 5:
no password or token appears in logs, `freshet config` output, error
messages, traces or metrics).

    secret_scan.py scan --secrets DIR [--exclude PATH]... PATH...
    secret_scan.py selftest --secrets DIR --dir CANARY_DIR
    secret_scan.py redact --secrets DIR  < text > text

DIR holds one file per secret, named after it (token-serve,
kafka-password, ...), whose first line is the secret (a final newline is
not part of it). A secret shorter than 16 characters is refused: it could
match by chance, and an empty one would match everything.

scan reads every file under each PATH (recursively; symbolic links are
not followed) but the excluded ones, and looks for every secret as it is,
URL-encoded and JSON-escaped where that differs, and base64-encoded
(standard and URL alphabets, at each of the three alignments a secret can
have inside a longer encoded text). It prints one line per file and
secret found, naming both, never the secret, and exits 1 if it found any,
0 if not, 2 on bad usage.

selftest proves that scan can fail: it writes one canary file per secret
and form into CANARY_DIR, runs scan on it as a separate process, and
checks that scan exits 1 naming exactly every canary with its secret, and
that its output holds no secret; then it deletes CANARY_DIR.

redact copies standard input to standard output with every secret (in
every form) replaced by [SECRET name], for printing logs of a failed run.

Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import urllib.parse

MIN_LEN = 16


def load_secrets(d: str) -> dict[str, str]:
    secrets = {}
    for name in sorted(os.listdir(d)):
        p = os.path.join(d, name)
        if not os.path.isfile(p):
            continue
        with open(p, encoding="utf-8") as fh:
            v = fh.readline().rstrip("\r\n")
        if len(v) < MIN_LEN:
            sys.exit(f"secret_scan: secret {name} ({p}) has {len(v)} characters, fewer than {MIN_LEN}: "
                     f"it could match by chance")
        secrets[name] = v
    if not secrets:
        sys.exit(f"secret_scan: no secret in {d}")
    return secrets


def forms(secret: str) -> dict[str, bytes]:
    """Each encoding of secret worth looking for, by name."""
    raw = secret.encode()
    out = {"plain": raw}
    q = urllib.parse.quote(secret, safe="").encode()
    if q != raw:
        out["url-encoded"] = q
    j = json.dumps(secret)[1:-1].encode()
    if j != raw:
        out["json-escaped"] = j
    for k in range(3):
        # Inside a longer base64 text the secret starts at one of three
        # offsets within a 3-byte group; from its first byte on such a
        # boundary, whole groups encode the same whatever precedes them.
        part = raw[k:]
        part = part[:len(part) - len(part) % 3]
        if len(part) < 12:
            continue
        out[f"base64+{k}"] = base64.b64encode(part)
        u = base64.urlsafe_b64encode(part)
        if u != out[f"base64+{k}"]:
            out[f"base64url+{k}"] = u
    return out


def walk(paths: list[str], excludes: list[str]):
    ex = [os.path.realpath(e) for e in excludes]

    def excluded(p: str) -> bool:
        rp = os.path.realpath(p)
        return any(rp == e or rp.startswith(e + os.sep) for e in ex)

    for top in paths:
        if excluded(top):
            continue
        if os.path.isfile(top):
            yield top
            continue
        for d, dirs, files in os.walk(top):
            dirs[:] = sorted(x for x in dirs if not excluded(os.path.join(d, x)))
            for f in sorted(files):
                p = os.path.join(d, f)
                if not os.path.islink(p) and os.path.isfile(p) and not excluded(p):
                    yield p


def cmd_scan(a) -> int:
    secrets = load_secrets(a.secrets)
    table = [(name, form, enc) for name, s in secrets.items() for form, enc in forms(s).items()]
    files = nbytes = 0
    found = []
    for p in walk(a.paths, a.exclude + [a.secrets]):
        try:
            with open(p, "rb") as fh:
                data = fh.read()
        except OSError as e:
            print(f"secret_scan: cannot read {p}: {e}", file=sys.stderr)
            return 2
        files += 1
        nbytes += len(data)
        hit = {}
        for name, form, enc in table:
            if name not in hit and enc in data:
                hit[name] = form
        for name, form in hit.items():
            found.append((p, name, form))
    for p, name, form in found:
        print(f"secret_scan: LEAK: {p} contains the secret {name} ({form})")
    print(f"secret_scan: {files} files ({nbytes} bytes) searched for {len(secrets)} secrets "
          f"({len(table)} forms): {len(found)} found")
    if files == 0:
        print("secret_scan: nothing to search", file=sys.stderr)
        return 2
    return 1 if found else 0


def cmd_selftest(a) -> int:
    secrets = load_secrets(a.secrets)
    if os.path.exists(a.dir):
        sys.exit(f"secret_scan: {a.dir} exists: selftest writes a fresh directory")
    os.makedirs(a.dir)
    want = set()
    for name, s in secrets.items():
        for form, enc in forms(s).items():
            p = os.path.join(a.dir, f"canary-{name}-{form}.log")
            with open(p, "wb") as fh:
                # In the middle of a line, as a leak would be.
                fh.write(b"time=2024-01-01T00:00:00Z level=INFO msg=canary value=" + enc + b" more=1\n")
            want.add((p, name))
    # A clean file beside them must not be reported.
    with open(os.path.join(a.dir, "clean.log"), "w", encoding="utf-8") as fh:
        fh.write("nothing secret here\n")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "scan", "--secrets", a.secrets, a.dir],
                       capture_output=True, text=True)
    got = set()
    for line in r.stdout.splitlines():
        if line.startswith("secret_scan: LEAK: "):
            p, rest = line[len("secret_scan: LEAK: "):].split(" contains the secret ", 1)
            got.add((p, rest.split(" ", 1)[0]))
    problems = []
    if r.returncode != 1:
        problems.append(f"scan exited {r.returncode}, want 1")
    if got != want:
        problems.append(f"scan missed {sorted(want - got)} and wrongly reported {sorted(got - want)}")
    for name, s in secrets.items():
        if s in r.stdout or s in r.stderr:
            problems.append(f"scan's own output holds the secret {name}")
    if problems:
        print("secret_scan: self-test FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    shutil.rmtree(a.dir)
    print(f"secret_scan: self-test: {len(want)} canary files ({len(secrets)} secrets, each in every form) "
          f"all found, the clean one not; scan exited 1")
    return 0


def cmd_redact(a) -> int:
    secrets = load_secrets(a.secrets)
    table = sorted(((enc, name) for name, s in secrets.items() for enc in forms(s).values()),
                   key=lambda t: -len(t[0]))
    data = sys.stdin.buffer.read()
    for enc, name in table:
        data = data.replace(enc, f"[SECRET {name}]".encode())
    sys.stdout.buffer.write(data)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scan")
    s.add_argument("--secrets", required=True)
    s.add_argument("--exclude", action="append", default=[])
    s.add_argument("paths", nargs="+")
    t = sub.add_parser("selftest")
    t.add_argument("--secrets", required=True)
    t.add_argument("--dir", required=True)
    r = sub.add_parser("redact")
    r.add_argument("--secrets", required=True)
    a = ap.parse_args(argv)
    return {"scan": cmd_scan, "selftest": cmd_selftest, "redact": cmd_redact}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
