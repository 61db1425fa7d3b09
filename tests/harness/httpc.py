"""A small HTTP client for black-box tests (stdlib only): JSON in, JSON out,
headers and status always visible, no exceptions for 4xx/5xx."""
from __future__ import annotations

import http.client, json, urllib.parse
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    headers: dict
    body: bytes
    json: object = field(default=None)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def request(base: str, method: str, path: str, body=None, headers: dict | None = None, token: str | None = None,
            raw: bytes | None = None, timeout: float = 10) -> Response:
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=data, headers=hdrs)
    r = conn.getresponse()
    payload = r.read()
    resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, payload)
    ctype = resp.header("content-type") or ""
    if payload and "json" in ctype and not resp.header("content-encoding"):
        resp.json = json.loads(payload)
    conn.close()
    return resp


class Client:
    """Binds a base URL: c.get('/v1/x', token=...), c.post('/v1/y', {...})."""

    def __init__(self, base: str):
        self.base = base

    def request(self, method, path, body=None, **kw):
        return request(self.base, method, path, body, **kw)

    def get(self, path, **kw):
        return request(self.base, "GET", path, **kw)

    def post(self, path, body=None, **kw):
        return request(self.base, "POST", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return request(self.base, "PATCH", path, body, **kw)

    def put(self, path, body=None, **kw):
        return request(self.base, "PUT", path, body, **kw)

    def delete(self, path, **kw):
        return request(self.base, "DELETE", path, **kw)
