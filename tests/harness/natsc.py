"""A tiny NATS client for black-box tests (stdlib only, protocol over a socket).

Enough to prove the bus's permissions (connect with a role's credentials,
publish, subscribe, read the server's -ERR) and to stand in for a service
(`Responder`: answers a subject in a queue group, optionally slowly, and can
be stopped and started again to simulate an outage).
"""
from __future__ import annotations

import json, socket, threading, time


class NatsError(RuntimeError):
    pass


class Conn:
    """One NATS connection. verbose=True makes the server acknowledge each operation with +OK or -ERR."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None, verbose: bool = True,
                 host: str = "127.0.0.1", timeout: float = 5):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.verbose = verbose
        self.next_sid = 1
        info = self._line()
        if not info.startswith(b"INFO "):
            raise NatsError(f"expected INFO, got {info!r}")
        opts = {"verbose": verbose, "pedantic": False, "headers": True, "no_responders": True, "lang": "python",
                "version": "0", "protocol": 1}
        if user is not None:
            opts.update(user=user, **{"pass": password or ""})
        self._send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        # the answer to CONNECT: +OK (verbose) then PONG, or -ERR 'Authorization Violation'
        while True:
            line = self._line()
            if line.startswith(b"-ERR"):
                raise NatsError(line.decode())
            if line == b"PONG":
                return

    # -- wire ------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise NatsError("connection closed by the server")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            try:
                self._fill()
            except (socket.timeout, TimeoutError):
                continue  # the payload of a message whose line arrived is on its way: never drop half a message
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self, timeout: float = 2) -> tuple:
        """The next protocol item: ("+OK",), ("-ERR", text), ("MSG", subject, reply, headers, data)."""
        self.sock.settimeout(timeout)
        while True:
            line = self._line()
            if line == b"PING":
                self._send(b"PONG\r\n")
                continue
            if line in (b"PONG", b"") or line.startswith(b"INFO "):
                continue
            if line == b"+OK":
                return ("+OK",)
            if line.startswith(b"-ERR"):
                return ("-ERR", line[5:].decode().strip().strip("'"))
            parts = line.split()
            if parts[0] == b"MSG":
                reply = parts[3].decode() if len(parts) == 5 else None
                return ("MSG", parts[1].decode(), reply, {}, self._bytes(int(parts[-1])))
            if parts[0] == b"HMSG":
                reply = parts[3].decode() if len(parts) == 6 else None
                hlen, total = int(parts[-2]), int(parts[-1])
                raw = self._bytes(total)
                headers = {}
                for h in raw[:hlen].decode().split("\r\n")[1:]:
                    if ":" in h:
                        k, v = h.split(":", 1)
                        headers[k.strip()] = v.strip()
                status = raw[:hlen].decode().split("\r\n")[0][9:12].strip()
                if status:
                    headers.setdefault(":status", status)
                return ("MSG", parts[1].decode(), reply, headers, raw[hlen:])
            raise NatsError(f"unexpected {line!r}")

    def ack(self, timeout: float = 2) -> str | None:
        """With verbose on: None for +OK, the error text for -ERR."""
        item = self.read(timeout)
        while item[0] == "MSG":
            item = self.read(timeout)
        return None if item[0] == "+OK" else item[1]

    # -- operations ------------------------------------------------------------
    def pub(self, subject: str, data: bytes = b"", reply: str | None = None, headers: dict | None = None) -> None:
        r = f" {reply}" if reply else ""
        if headers:
            h = ("NATS/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
            self._send(f"HPUB {subject}{r} {len(h)} {len(h) + len(data)}\r\n".encode() + h + data + b"\r\n")
        else:
            self._send(f"PUB {subject}{r} {len(data)}\r\n".encode() + data + b"\r\n")

    def sub(self, subject: str, queue: str | None = None) -> int:
        sid = self.next_sid
        self.next_sid += 1
        self._send(f"SUB {subject}{' ' + queue if queue else ''} {sid}\r\n".encode())
        return sid

    def unsub(self, sid: int) -> None:
        self._send(f"UNSUB {sid}\r\n".encode())

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Responder:
    """Stands in for a service: answers `subject` in queue group `queue` on a thread of its own.

    Each request gets `body` (None: the request's own body back, so a test sees what the gateway sent) after a
    delay: the next of `delays` while any are left, then `delay`. Replies to delayed requests go out from their
    own threads, so a slow request does not hold up the next. `requests` keeps (headers, body) of each request.
    stop() unsubscribes (callers then find no responder); start() subscribes again."""

    def __init__(self, port: int, user: str, password: str, subject: str, queue: str = "zz-test",
                 body: bytes | None = b"{}", delay: float = 0.0, delays: list | None = None,
                 headers: dict | None = None):
        self.port, self.user, self.password = port, user, password
        self.subject, self.queue, self.body, self.delay = subject, queue, body, delay
        self.delays = list(delays or [])
        self.reply_headers = headers
        self.requests: list[tuple[dict, bytes]] = []
        self.served = 0
        self._lock = threading.Lock()
        self._thread = None
        self._conn = None
        self._stop = threading.Event()

    def start(self) -> "Responder":
        self._stop.clear()
        self._conn = Conn(self.port, self.user, self.password, verbose=False)
        self._conn.sub(self.subject, self.queue)
        self._conn._send(b"PING\r\n")  # the SUB is in place once the PONG comes back
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._conn, ready), daemon=True)
        self._thread.start()
        ready.wait(5)
        return self

    def _reply(self, conn: Conn, reply: str, body: bytes, delay: float) -> None:
        if delay:
            time.sleep(delay)
        try:
            with self._lock:
                conn.pub(reply, body, headers=self.reply_headers)
                self.served += 1
        except OSError:
            pass

    def _run(self, conn: Conn, ready: threading.Event) -> None:
        first = True
        while not self._stop.is_set():
            try:
                conn.sock.settimeout(0.2)
                if first:
                    while b"PONG\r\n" not in conn.buf:
                        conn._fill()
                    conn.buf = conn.buf.replace(b"PONG\r\n", b"", 1)
                    first = False
                    ready.set()
                item = conn.read(0.2)
            except (socket.timeout, TimeoutError):
                continue
            except (OSError, NatsError):
                break
            if item[0] != "MSG" or not item[2]:
                continue
            self.requests.append((item[3], item[4]))
            body = item[4] if self.body is None else self.body
            delay = self.delays.pop(0) if self.delays else self.delay
            if delay:
                threading.Thread(target=self._reply, args=(conn, item[2], body, delay), daemon=True).start()
            else:
                self._reply(conn, item[2], body, 0)
        ready.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
        if self._conn:
            self._conn.close()
        self._thread = self._conn = None
