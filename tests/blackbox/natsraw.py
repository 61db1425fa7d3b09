"""A minimal NATS client for tests (stdlib only): publish with headers,
subscribe (optionally in a queue group), request-reply, and reconnect by
itself when the server goes away and comes back (the NATS-outage tests stop
nats-server under it). Enough for a test fake of a service and for
publishing events into JetStream; not a general client.

    nc = Nats("nats://127.0.0.1:4222")
    nc.subscribe("product.v1.*", handler, queue="product")   # handler(msg) -> None
    status, headers, body = nc.request("order.v1.list", b"{}", {"Auth-Sub": uid})
    nc.close()
"""
from __future__ import annotations

import itertools, json, socket, threading, time, uuid
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit


@dataclass
class Msg:
    subject: str
    reply: str | None
    headers: dict = field(default_factory=dict)
    data: bytes = b""

    def json(self):
        return json.loads(self.data or b"{}")


def _headers_block(headers: dict | None) -> bytes:
    if not headers:
        return b""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"NATS/1.0\r\n{lines}\r\n".encode()


def _parse_headers(block: bytes) -> dict:
    out = {}
    lines = block.decode(errors="replace").split("\r\n")
    first = lines[0].split(" ", 2)  # "NATS/1.0 503" carries an inline status
    if len(first) >= 2 and first[1].isdigit():
        out["Status"] = first[1]
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


class Nats:
    def __init__(self, url: str, name: str = "moonport-test"):
        u = urlsplit(url)
        self.addr = (u.hostname or "127.0.0.1", u.port or 4222)
        # nats://user:password@host:port, as the harness hands out when NATS has per-role users
        self.auth = {"user": unquote(u.username), "pass": unquote(u.password or "")} if u.username else {}
        self.name = name
        self._subs: dict[int, tuple[str, str | None, callable]] = {}
        self._sid = itertools.count(1)
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._closed = False
        self._inbox = f"_INBOX.{uuid.uuid4().hex}"
        self._waiters: dict[str, list] = {}
        self._connected = threading.Event()
        self._pongs: list[threading.Event] = []
        self._connect()
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        self.subscribe(self._inbox + ".*", self._on_reply)

    # -- connection -------------------------------------------------------------
    def _connect(self) -> None:
        s = socket.create_connection(self.addr, timeout=2)
        s.settimeout(None)
        f = s.makefile("rb")
        info = f.readline()
        if not info.startswith(b"INFO "):
            raise ConnectionError(f"not a NATS server: {info!r}")
        opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1,
                "name": self.name, "lang": "python-test", "version": "0", **self.auth}
        with self._lock:
            for waiting in self._pongs:  # a new connection: nothing owed on the old one will come
                waiting.set()
            self._pongs = [threading.Event()]  # for the PING after CONNECT
            s.sendall(f"CONNECT {json.dumps(opts)}\r\nPING\r\n".encode())
            self._sock, self._file = s, f
            for sid, (subject, queue, _) in self._subs.items():  # after a reconnect: subscribe again
                s.sendall(f"SUB {subject} {queue + ' ' if queue else ''}{sid}\r\n".encode())
        self._connected.set()

    def _reconnect(self) -> None:
        self._connected.clear()
        while not self._closed:
            try:
                self._connect()
                return
            except OSError:
                time.sleep(0.1)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            if self._sock:
                try:
                    self._sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._sock.close()

    def _send(self, data: bytes) -> None:
        if not self._connected.wait(10):
            raise ConnectionError("NATS is not connected")
        with self._lock:
            self._sock.sendall(data)

    # -- reading --------------------------------------------------------------------
    def _read_loop(self) -> None:
        while not self._closed:
            try:
                self._read_one()
            except (OSError, ValueError, ConnectionError):
                if self._closed:
                    return
                self._reconnect()

    def _read_one(self) -> None:
        line = self._file.readline()
        if not line:
            raise ConnectionError("closed")
        parts = line.rstrip(b"\r\n").decode().split(" ")
        op = parts[0].upper()
        if op == "PING":
            self._send(b"PONG\r\n")
        elif op == "PONG":
            if self._pongs:
                self._pongs.pop(0).set()
        elif op == "MSG":  # MSG subject sid [reply] size
            subject, sid, size = parts[1], int(parts[2]), int(parts[-1])
            reply = parts[3] if len(parts) == 5 else None
            data = self._file.read(size + 2)[:-2]
            self._dispatch(sid, Msg(subject, reply, {}, data))
        elif op == "HMSG":  # HMSG subject sid [reply] hdr_size total_size
            subject, sid, hsize, total = parts[1], int(parts[2]), int(parts[-2]), int(parts[-1])
            reply = parts[3] if len(parts) == 6 else None
            raw = self._file.read(total + 2)[:-2]
            self._dispatch(sid, Msg(subject, reply, _parse_headers(raw[:hsize]), raw[hsize:]))
        elif op == "-ERR":
            pass  # e.g. a permissions error; tests see the missing effect

    def _dispatch(self, sid: int, msg: Msg) -> None:
        sub = self._subs.get(sid)
        if sub:
            try:
                sub[2](msg)
            except Exception as e:  # a bug in a test handler must not kill the connection
                print(f"natsraw: handler for {msg.subject} failed: {e!r}", flush=True)

    # -- API --------------------------------------------------------------------------
    def subscribe(self, subject: str, handler, queue: str | None = None) -> int:
        sid = next(self._sid)
        self._subs[sid] = (subject, queue, handler)
        self._send(f"SUB {subject} {queue + ' ' if queue else ''}{sid}\r\n".encode())
        return sid

    def flush(self, timeout: float = 5) -> None:
        """Round trip to the server: everything sent before (subscriptions included) has been processed."""
        pong = threading.Event()
        with self._lock:
            self._pongs.append(pong)
        self._send(b"PING\r\n")
        if not pong.wait(timeout):
            raise TimeoutError("no PONG from the server")

    def publish(self, subject: str, data: bytes = b"", headers: dict | None = None, reply: str | None = None) -> None:
        hdr = _headers_block(headers)
        rp = f" {reply}" if reply else ""
        if hdr:
            self._send(f"HPUB {subject}{rp} {len(hdr)} {len(hdr) + len(data)}\r\n".encode() + hdr + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{rp} {len(data)}\r\n".encode() + data + b"\r\n")

    def _on_reply(self, msg: Msg) -> None:
        w = self._waiters.get(msg.subject)
        if w:
            w.append(msg)
            w[0].set()

    def request(self, subject: str, data: bytes = b"{}", headers: dict | None = None,
                timeout: float = 5) -> tuple[int, dict, bytes]:
        """Sends a request; returns (Status header as int, headers, body). 503 on no responders."""
        inbox = f"{self._inbox}.{uuid.uuid4().hex[:12]}"
        done = threading.Event()
        self._waiters[inbox] = [done]
        try:
            self.publish(subject, data, headers, reply=inbox)
            if not done.wait(timeout):
                raise TimeoutError(f"no reply on {subject} within {timeout}s")
            msg = self._waiters[inbox][1]
        finally:
            self._waiters.pop(inbox, None)
        return int(msg.headers.get("Status", "200")), msg.headers, msg.data

    def respond(self, msg: Msg, status: int, body) -> None:
        """Answers a request the way moonport services do: a Status header and a JSON body."""
        if msg.reply:
            self.publish(msg.reply, json.dumps(body).encode(), {"Status": str(status)})
