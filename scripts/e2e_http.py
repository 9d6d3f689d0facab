"""HTTP client of the end-to-end checkers: plain HTTP as before, or HTTPS
trusting a given CA and sending a bearer token, as a client of a secured
freshet does (scripts/e2e.sh with E2E_SECURE=1).

    --ca FILE            PEM file of the CA that signs the services' certificates
                         (an https:// URL is then verified against it, never skipped)
    --token-file FILE    file holding a token (its first line): sent as
                         Authorization: Bearer TOKEN on every request
    --save-answers FILE  append every answer (status, headers, body) to FILE,
                         so that what the services answered can be searched
                         for secrets afterwards

The token is read from a file, never from the command line (which `ps` and
logs show), and is never printed. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import ssl
import threading
import urllib.error
import urllib.request
from typing import Any


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--ca", help="PEM file of the CA to trust for https:// URLs (default: the system roots)")
    ap.add_argument("--token-file", help="file whose first line is a bearer token, sent with every request")
    ap.add_argument("--save-answers", help="append every answer (status, headers, body) to this file")


def read_token(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        tok = fh.readline().strip()
    if not tok:
        raise SystemExit(f"{path}: no token on its first line")
    return tok


class Client:
    """Requests with the token and CA of one client; safe for threads."""

    def __init__(self, token_file: str | None = None, ca: str | None = None, save_answers: str | None = None):
        self._token = read_token(token_file) if token_file else None
        self._ctx = ssl.create_default_context(cafile=ca) if ca else None
        self._save = save_answers
        self._lock = threading.Lock()

    @classmethod
    def from_args(cls, a: argparse.Namespace) -> "Client":
        return cls(a.token_file, a.ca, a.save_answers)

    def request(self, method: str, url: str, data: bytes | None = None, headers: dict | None = None,
                timeout: float = 10.0, token: bool = True) -> tuple[int, Any, bytes]:
        """(status, response headers, body) of one request; non-2xx answers
        too (no exception). URLError/OSError propagate: unreachable.
        token=False sends no Authorization header."""
        h = dict(headers or {})
        if token and self._token is not None:
            h["Authorization"] = "Bearer " + self._token
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._ctx) as resp:
                code, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            code, hdrs, raw = e.code, e.headers, e.read()
        self.record(method, url, code, hdrs, raw)
        return code, hdrs, raw

    def json(self, method: str, url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        data, headers = None, {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        code, _, raw = self.request(method, url, data, headers, timeout)
        return code, json.loads(raw)

    def record(self, method: str, url: str, code: int, hdrs: Any, raw: bytes) -> None:
        if not self._save:
            return
        head = "".join(f"{k}: {v}\n" for k, v in (hdrs.items() if hdrs is not None else []))
        with self._lock, open(self._save, "ab") as fh:
            fh.write(f"### {method} {url} -> {code}\n{head}\n".encode() + raw + b"\n")


def split_args(argv: list[str]) -> tuple[Client, list[str]]:
    """For the scripts inlined in e2e.sh: the client options anywhere in
    argv, and the other arguments in order."""
    ap = argparse.ArgumentParser(add_help=False)
    add_args(ap)
    a, rest = ap.parse_known_args(argv)
    return Client.from_args(a), rest
