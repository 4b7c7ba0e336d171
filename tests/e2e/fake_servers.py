"""Loopback stand-ins for the internet services btcml ingests from: Kaggle, Bitstamp and Binance.

Each server listens on 127.0.0.1 and a free port, in a daemon thread, and speaks the exact wire format of the real
API (paths, query parameters, JSON shapes, error bodies, redirects). Faults are queued per server and each one is
spent by the next request it applies to.
"""
import base64
import json
import math
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

BITSTAMP_STEPS = {60, 180, 300, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400, 259200}
BINANCE_INTERVALS = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 7200, "4h": 14400,
                     "6h": 21600, "8h": 28800, "12h": 43200, "1d": 86400, "3d": 259200, "1w": 604800}

# Faults a test can queue on an exchange server.
RATE_LIMITED = "429"        # 429 with Retry-After: 1
SERVER_ERROR = "500"        # 500 with an HTML body, once
TRUNCATED = "truncated"     # a 200 whose JSON body is cut in half
EMPTY = "empty"             # a 200 with no candles
BAD_PRICE = "bad_price"     # the page's first candle has a non-numeric open price


def candle(t: int) -> tuple[float, float, float, float, float]:
    """A deterministic, valid OHLCV candle for open time t."""
    base = 30000.0 + 2000.0 * math.sin(t / 86400.0)
    open_, close = round(base, 2), round(base + 5.0 * math.cos(t / 3600.0), 2)
    return open_, max(open_, close) + 10.0, min(open_, close) - 10.0, close, round(1.0 + (t // 60) % 7 * 0.25, 8)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.server.fake.record(self)
        self.server.fake.handle(self)

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status: int, body: bytes | str = b"", content_type="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def json(self, status: int, value, headers=None):
        self.reply(status, json.dumps(value, separators=(",", ":")), headers=headers)


class FakeServer:
    """Base: threading HTTP server on 127.0.0.1:0; use as a context manager."""

    def __init__(self):
        self.requests: list[dict] = []
        self.faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def record(self, handler: _Handler):
        parsed = urlparse(handler.path)
        with self._lock:
            self.requests.append({"path": parsed.path, "query": {k: v[0] for k, v in parse_qs(parsed.query).items()},
                                  "headers": dict(handler.headers.items())})

    def take_fault(self) -> str | None:
        with self._lock:
            return self.faults.popleft() if self.faults else None

    def handle(self, handler: _Handler):
        raise NotImplementedError


class FakeExchange(FakeServer):
    """Serves generated candles from `listed` up to and including the one still forming at the current time."""

    max_limit = 1000

    def __init__(self, listed: int = 1500000000, symbols=()):
        super().__init__()
        self.listed = listed
        self.symbols = {s.lower() for s in symbols}
        self.served_max_time: int | None = None  # the newest open time sent so far

    def candles(self, start: int, step: int, limit: int) -> list[int]:
        """Open times from start (aligned up, not before listing), at most limit, up to the forming candle."""
        forming = int(time.time()) // step * step
        first = max(self.listed, -(-start // step) * step)
        times = list(range(first, min(forming, first + (limit - 1) * step) + 1, step))
        if times:
            self.served_max_time = max(self.served_max_time or times[-1], times[-1])
        return times

    def fault_reply(self, handler: _Handler, fault: str | None) -> bool:
        if fault == RATE_LIMITED:
            handler.json(429, self.rate_limit_body(), headers={"Retry-After": "1"})
        elif fault == SERVER_ERROR:
            handler.reply(500, "<html><body><h1>500 Internal Server Error</h1></body></html>", "text/html")
        else:
            return False
        return True

    def send_page(self, handler: _Handler, body, fault: str | None):
        text = json.dumps(body, separators=(",", ":"))
        if fault == TRUNCATED:
            text = text[: len(text) // 2]
        handler.reply(200, text)

    def rate_limit_body(self):
        raise NotImplementedError


class FakeBitstamp(FakeExchange):
    """GET /api/v2/ohlc/{pair}/?step=S&limit=N&start=T → {"data": {"pair": "BTC/USD", "ohlc": [{…strings…}]}}"""

    def __init__(self, listed: int = 1500000000, symbols=("btcusd",)):
        super().__init__(listed, symbols)

    def rate_limit_body(self):
        return {"status": "error", "reason": "Rate limit exceeded", "code": "API0009"}

    def handle(self, handler):
        parsed = urlparse(handler.path)
        parts = [p for p in parsed.path.split("/") if p]
        if len(parts) != 4 or parts[:3] != ["api", "v2", "ohlc"]:
            return handler.reply(404, "<html>Not found</html>", "text/html")
        pair = parts[3]
        if pair not in self.symbols:
            return handler.json(404, {"status": "error", "reason": "Invalid currency pair", "code": "API0001"})
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        step, limit = int(query.get("step", 0)), int(query.get("limit", 0))
        if step not in BITSTAMP_STEPS or not 1 <= limit <= self.max_limit or "start" not in query:
            return handler.json(400, {"status": "error", "reason": {"step": ["Invalid step"]}, "code": "API0002"})
        fault = self.take_fault()
        if self.fault_reply(handler, fault):
            return None
        times = [] if fault == EMPTY else self.candles(int(query["start"]), step, limit)
        ohlc = []
        for t in times:
            o, h, l, c, v = candle(t)
            ohlc.append({"high": f"{h:.2f}", "timestamp": str(t), "volume": f"{v:.8f}", "low": f"{l:.2f}",
                         "close": f"{c:.2f}", "open": f"{o:.2f}"})
        if fault == BAD_PRICE and ohlc:
            ohlc[0]["open"] = "n/a"
        name = pair.upper()
        return self.send_page(handler, {"data": {"pair": f"{name[:3]}/{name[3:]}", "ohlc": ohlc}}, fault)


class FakeBinance(FakeExchange):
    """GET /api/v3/klines?symbol=S&interval=1h&startTime=MS&limit=N → [[openTime, "o", "h", "l", "c", "v", …]]"""

    def __init__(self, listed: int = 1500000000, symbols=("BTCUSDT",)):
        super().__init__(listed, symbols)

    def rate_limit_body(self):
        return {"code": -1003, "msg": "Too many requests; current limit is 6000 request weight per 1 MINUTE."}

    def handle(self, handler):
        parsed = urlparse(handler.path)
        if parsed.path != "/api/v3/klines":
            return handler.reply(404, "<html>Not found</html>", "text/html")
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        if query.get("symbol", "").lower() not in self.symbols:
            return handler.json(400, {"code": -1121, "msg": "Invalid symbol."})
        if query.get("interval") not in BINANCE_INTERVALS:
            return handler.json(400, {"code": -1120, "msg": "Invalid interval."})
        step = BINANCE_INTERVALS[query["interval"]]
        limit = min(int(query.get("limit", 500)), self.max_limit)
        fault = self.take_fault()
        if self.fault_reply(handler, fault):
            return None
        start = int(query.get("startTime", 0)) // 1000
        times = [] if fault == EMPTY else self.candles(start, step, limit)
        klines = []
        for t in times:
            o, h, l, c, v = candle(t)
            klines.append([t * 1000, f"{o:.8f}", f"{h:.8f}", f"{l:.8f}", f"{c:.8f}", f"{v:.8f}",
                           (t + step) * 1000 - 1, f"{v * c:.8f}", 100 + t % 50, f"{v / 2:.8f}", f"{v * c / 2:.8f}",
                           "0"])
        if fault == BAD_PRICE and klines:
            klines[0][1] = "n/a"
        return self.send_page(handler, klines, fault)


class FakeKaggle(FakeServer):
    """Kaggle's dataset download API. GET /api/v1/datasets/download/{owner}/{dataset}[/{file}] with HTTP basic auth
    answers 302 to a signed storage URL on another host name (localhost), which serves the bytes and, like Google
    Cloud Storage, refuses requests that carry an Authorization header."""

    def __init__(self, user: str, key: str):
        super().__init__()
        self.user, self.key = user, key
        self.datasets: dict[str, bytes] = {}  # "owner/dataset" → zip bytes
        self.files: dict[str, bytes] = {}     # "owner/dataset/file" → bytes
        self._blobs: dict[str, bytes] = {}

    def handle(self, handler):
        path = urlparse(handler.path).path
        if path.startswith("/storage/"):
            if "Authorization" in handler.headers:
                return handler.reply(400, "<Error><Code>InvalidArgument</Code></Error>", "application/xml")
            blob = self._blobs.get(path)
            if blob is None:
                return handler.reply(404, "<Error><Code>NoSuchKey</Code></Error>", "application/xml")
            return handler.reply(200, blob, "application/zip" if blob[:2] == b"PK" else "text/csv")
        prefix = "/api/v1/datasets/download/"
        if not path.startswith(prefix):
            return handler.json(404, {"code": 404, "message": "Not found"})
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.key}".encode()).decode()
        if handler.headers.get("Authorization") != expected:
            return handler.json(401, {"code": 401, "message": "Unauthenticated"})
        name = unquote(path[len(prefix):])
        blob = self.files.get(name) if name.count("/") >= 2 else self.datasets.get(name)
        if blob is None:
            return handler.json(404, {"code": 404, "message": "Not found"})
        storage = f"/storage/{len(self._blobs)}/{name.rsplit('/', 1)[-1]}"
        self._blobs[storage] = blob
        return handler.reply(302, b"", "text/html",
                             headers={"Location": f"http://localhost:{self.port}{storage}?X-Goog-Signature=abc"})
