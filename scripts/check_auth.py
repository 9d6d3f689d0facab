#!/usr/bin/env python3
"""Check the tokens and HTTPS of running ingest, featurize and serve, as
scripts/e2e.sh runs them with E2E_SECURE=1 (#13 sections 1 and 2):

    python3 scripts/check_auth.py --ca ca.crt --tokens DIR \\
        --ingest https://127.0.0.1:8081 --serve https://127.0.0.1:8080 \\
        --featurize https://127.0.0.1:8082 [--save-answers FILE]

DIR holds one token per scope, in files token-ingest, token-serve,
token-metrics and token-admin (each token holding that scope alone), and
token-unknown, a token in no tokens file. The checks:

  * a request without a token, with an unknown one, or with another
    scheme than Bearer gets 401 with `WWW-Authenticate: Bearer` and a JSON
    body; a token without the route's scope gets 403, JSON, naming the
    scope; the right token gets through. For every service's /metrics
    (scope metrics), featurize's /v1/stats (metrics), serve's lookups, batch,
    Arrow and Feast routes (serve) and ingest's events (ingest);
  * /healthz, /readyz and Feast's /health answer without a token;
  * plain HTTP to each HTTPS port gets no answer of the API (no 2xx);
  * a client that does not trust the test CA (the system roots) fails the
    handshake: the certificate is verified, not skipped;
  * each service offers HTTP/2 (ALPN h2).

Requests that must be refused carry a valid event or lookup, so that a
refusal is the token's doing, not the body's. No token is printed.
Exit 0 when every check passes, 1 otherwise. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_http  # noqa: E402

SCOPES = ("ingest", "serve", "metrics", "admin")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ca", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--ingest", required=True)
    ap.add_argument("--serve", required=True)
    ap.add_argument("--featurize", action="append", required=True)
    ap.add_argument("--save-answers")
    a = ap.parse_args()

    def client(name: str | None) -> e2e_http.Client:
        tf = os.path.join(a.tokens, f"token-{name}") if name else None
        return e2e_http.Client(tf, a.ca, a.save_answers)

    anon = client(None)
    tok = {s: client(s) for s in SCOPES + ("unknown",)}
    passed, failed = [], []

    def check(what: str, ok: bool, detail: str = "") -> None:
        (passed if ok else failed).append(what if ok else f"{what}: {detail}")

    def call(c: e2e_http.Client, method: str, url: str, body: bytes | None, headers: dict | None,
             token: bool = True):
        try:
            return c.request(method, url, body, headers, timeout=10, token=token)
        except (urllib.error.URLError, OSError) as e:
            return None, None, str(e).encode()

    def expect(what: str, c: e2e_http.Client, method: str, url: str, want: int | tuple,
               body: bytes | None = None, headers: dict | None = None, scope: str | None = None,
               token: bool = True) -> None:
        code, hdrs, raw = call(c, method, url, body, headers, token)
        wants = want if isinstance(want, tuple) else (want,)
        if code not in wants:
            check(what, False, f"HTTP {code}, want {' or '.join(map(str, wants))}: {raw[:200]!r}")
            return
        if code in (401, 403):
            try:
                msg = json.loads(raw)
            except ValueError:
                check(what, False, f"HTTP {code} with a body that is not JSON: {raw[:200]!r}")
                return
            if code == 401:
                wa = hdrs.get("WWW-Authenticate") or ""
                if not wa.startswith("Bearer"):
                    check(what, False, f"401 without WWW-Authenticate: Bearer (got {wa!r})")
                    return
            if code == 403 and scope and scope not in json.dumps(msg):
                check(what, False, f"403 does not name the scope {scope}: {msg}")
                return
        check(what, True)

    now = int(time.time() * 1000)
    event = json.dumps({"txn_id": "auth-check", "user_id": "u_auth_check", "amount": 1.0, "ts": now}).encode()
    ev_h = {"Content-Type": "application/json"}
    services = [("ingest", a.ingest), ("serve", a.serve)] + [(f"featurize {f}", f) for f in a.featurize]

    # The endpoints that stay open.
    for name, base in services:
        expect(f"{name} /healthz without a token: 200", anon, "GET", base + "/healthz", 200)
    for name, base in (("ingest", a.ingest), ("serve", a.serve)):
        expect(f"{name} /readyz without a token: 200", anon, "GET", base + "/readyz", 200)
    expect("serve Feast /health without a token: 200", anon, "GET", a.serve + "/health", 200)

    # /metrics of every service, featurize's /v1/stats: scope metrics.
    protected = [(f"{name} /metrics", "GET", base + "/metrics") for name, base in services]
    protected += [(f"featurize {f} /v1/stats", "GET", f + "/v1/stats") for f in a.featurize]
    for what, method, url in protected:
        expect(f"{what} without a token: 401", anon, method, url, 401)
        expect(f"{what} with an unknown token: 401", tok["unknown"], method, url, 401)
        expect(f"{what} with Basic instead of Bearer: 401", anon, method, url, 401,
               headers={"Authorization": "Basic ZTJlOmUyZQ=="}, token=False)
        for s in ("serve", "ingest", "admin"):
            expect(f"{what} with a {s} token: 403 naming metrics", tok[s], method, url, 403, scope="metrics")
        expect(f"{what} with the metrics token: 200", tok["metrics"], method, url, 200)

    # serve's lookups: scope serve.
    q = urllib.parse.quote
    lookups = [
        ("serve GET /v1/features/{view}/{entity}", "GET", f"{a.serve}/v1/features/user_spend/{q('u_auth_check')}", None, None),
        ("serve POST /v1/features/{view}", "POST", f"{a.serve}/v1/features/user_spend",
         json.dumps({"entities": ["u_auth_check"]}).encode(), {"Content-Type": "application/json"}),
        ("serve POST /v1/features/{view} (Arrow)", "POST", f"{a.serve}/v1/features/user_spend",
         json.dumps({"entities": ["u_auth_check"]}).encode(),
         {"Content-Type": "application/json", "Accept": "application/vnd.apache.arrow.stream"}),
        ("serve POST /get-online-features", "POST", f"{a.serve}/get-online-features",
         json.dumps({"features": ["user_spend:txn_count_1h"], "entities": {"user_id": ["u_auth_check"]}}).encode(),
         {"Content-Type": "application/json"}),
    ]
    for what, method, url, body, headers in lookups:
        expect(f"{what} without a token: 401", anon, method, url, 401, body, headers)
        expect(f"{what} with an unknown token: 401", tok["unknown"], method, url, 401, body, headers)
        for s in ("ingest", "metrics", "admin"):
            expect(f"{what} with a {s} token: 403 naming serve", tok[s], method, url, 403, body, headers, scope="serve")
        # An entity never seen: NOT_FOUND, which may come as 200 or 404.
        expect(f"{what} with the serve token: answered", tok["serve"], method, url, (200, 404), body, headers)

    # ingest's events: scope ingest. Nothing of these reaches Kafka: the
    # one right token is not among them.
    url = a.ingest + "/v1/events/transaction"
    expect("ingest POST /v1/events/{event} without a token: 401", anon, "POST", url, 401, event, ev_h)
    expect("ingest POST /v1/events/{event} with an unknown token: 401", tok["unknown"], "POST", url, 401, event, ev_h)
    for s in ("serve", "metrics", "admin"):
        expect(f"ingest POST /v1/events/{{event}} with a {s} token: 403 naming ingest", tok[s], "POST", url, 403,
               event, ev_h, scope="ingest")

    # TLS: plain HTTP gets nothing of the API; the certificate is verified;
    # HTTP/2 is offered.
    for name, base in services:
        u = urllib.parse.urlsplit(base)
        if u.scheme != "https":
            check(f"{name} speaks HTTPS", False, f"its URL is {base}")
            continue
        plain = f"http://{u.netloc}/healthz"
        try:
            with urllib.request.urlopen(plain, timeout=5) as r:
                code = r.status
        except urllib.error.HTTPError as e:
            code = e.code
        except (urllib.error.URLError, OSError):
            code = None  # the connection was refused or dropped: fine too
        check(f"{name}: plain HTTP to the HTTPS port gets no 2xx (got {code})",
              code is None or not 200 <= code < 300, f"plain HTTP answered {code}")
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5,
                                   context=ssl.create_default_context()).close()
            check(f"{name}: a client without the test CA fails the handshake", False,
                  "the system roots accepted the test certificate")
        except urllib.error.URLError as e:
            check(f"{name}: a client without the test CA fails the handshake",
                  isinstance(e.reason, ssl.SSLCertVerificationError), f"failed otherwise: {e}")
        ctx = ssl.create_default_context(cafile=a.ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection((u.hostname, u.port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=u.hostname) as s:
            proto, version = s.selected_alpn_protocol(), s.version()
        check(f"{name}: HTTP/2 offered (ALPN {proto}, {version})", proto == "h2", f"ALPN chose {proto}")
        check(f"{name}: TLS 1.2 or later ({version})", version in ("TLSv1.2", "TLSv1.3"), f"negotiated {version}")

    for f in failed:
        print(f"  FAILED {f}")
    print(f"check_auth: {len(passed) + len(failed)} checks of tokens and TLS on {len(services)} services; "
          f"{len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
