#!/usr/bin/env python3
"""A stand-in OpenTelemetry collector for scripts/e2e.sh: receives OTLP over
HTTP/protobuf (POST /v1/traces, as the services export when
OTEL_EXPORTER_OTLP_ENDPOINT names it) and keeps every request body, so that
the traces a run exported can be searched for secrets like its logs.

    otlp_sink.py --port-file F --out BODIES --status STATUS.json \\
        [--header NAME --header-value-file FILE]

It listens on a free loopback port (written to --port-file once
listening), appends each body (gunzipped when sent compressed) to --out and
rewrites --status after each request: requests and bytes by path, which of
the services ingest, featurize and serve were named in the bodies (their
service.name), and, with --header, how many requests carried that header
with the value of the first line of FILE (compared, never written). It
answers 200 with an empty ExportTraceServiceResponse. Runs until killed.
Standard library only.
"""

import argparse
import gzip
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--header")
    ap.add_argument("--header-value-file")
    a = ap.parse_args()
    want = None
    if a.header:
        with open(a.header_value_file, encoding="utf-8") as fh:
            want = fh.readline().rstrip("\r\n")
    lock = threading.Lock()
    status = {"requests": {}, "bytes": {}, "services": [], "header_ok": 0, "header_missing_or_wrong": 0}
    services = set()

    def write_status():
        tmp = a.status + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(status, fh, sort_keys=True)
        os.replace(tmp, a.status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            with lock:
                with open(a.out, "ab") as fh:
                    fh.write(body + b"\n")
                status["requests"][self.path] = status["requests"].get(self.path, 0) + 1
                status["bytes"][self.path] = status["bytes"].get(self.path, 0) + len(body)
                for svc in ("ingest", "featurize", "serve"):
                    # service.name is a protobuf string: its length byte, then the name.
                    if bytes([len(svc)]) + svc.encode() in body:
                        services.add(svc)
                status["services"] = sorted(services)
                if want is not None:
                    if self.headers.get(a.header) == want:
                        status["header_ok"] += 1
                    else:
                        status["header_missing_or_wrong"] += 1
                write_status()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    write_status()
    with open(a.port_file + ".tmp", "w") as fh:
        fh.write(str(srv.server_address[1]))
    os.replace(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
