#!/usr/bin/env python3
"""A small, controllable HTTP application for the load and health tests.

Listens on 127.0.0.1 (a free port unless --port is given) and prints
"PORT <n>" on its first line of standard output once it serves.

  GET  /health          200 "ok" when ready and healthy, else 503; with an
                        X-Load header when a load is set
  GET  /health/<any>    the same answer, not counted in /stats (for a
                        second probe that must not disturb the counts)
  GET  /slow?ms=N       holds the request N ms (at most 30 s), then 200
  GET  /stats           "health_requests <n>", "health_failed <n>" (503s
                        served by /health), "active_slow <n>" (one per line)
  POST /control?...     sets the state; any of
                          health=ok|fail   answer of /health
                          ready=0|1        0: /health says 503 (not ready)
                          load=F|none      X-Load header value (none: no header)
                          flap=0|1         1: /health alternates ok/fail on
                                           every request, starting with fail
                          body=TEXT        body of a 200 /health (default "ok")
                        and answers with the resulting state.
  GET  /control         the current state

It exits after --lifetime seconds (default 120) whatever happens, and when
its parent process goes away.
"""

import argparse
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
STATE = {
    "health": "ok",
    "ready": 1,
    "load": None,
    "flap": 0,
    "flap_next_ok": False,
    "body": "ok",
    "health_requests": 0,
    "health_failed": 0,
    "active_slow": 0,
}


def describe():
    return "health=%s ready=%d load=%s flap=%d\n" % (
        STATE["health"], STATE["ready"],
        "none" if STATE["load"] is None else STATE["load"], STATE["flap"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def reply(self, code, body, headers=()):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/health" or url.path.startswith("/health/"):
            counted = url.path == "/health"
            with LOCK:
                if counted:
                    STATE["health_requests"] += 1
                if STATE["flap"] and counted:
                    ok = STATE["flap_next_ok"]
                    STATE["flap_next_ok"] = not ok
                else:
                    ok = STATE["health"] == "ok"
                ok = ok and STATE["ready"] == 1
                if not ok and counted:
                    STATE["health_failed"] += 1
                load = STATE["load"]
                body = STATE["body"]
            headers = [] if load is None else [("X-Load", load)]
            if ok:
                self.reply(200, body + "\n", headers)
            else:
                self.reply(503, "unavailable\n", headers)
        elif url.path == "/slow":
            try:
                ms = min(max(int(query.get("ms", ["0"])[0]), 0), 30000)
            except ValueError:
                return self.reply(400, "bad ms\n")
            with LOCK:
                STATE["active_slow"] += 1
            try:
                time.sleep(ms / 1000.0)
            finally:
                with LOCK:
                    STATE["active_slow"] -= 1
            self.reply(200, "slept %d\n" % ms)
        elif url.path == "/stats":
            with LOCK:
                text = "health_requests %d\nhealth_failed %d\nactive_slow %d\n" % (
                    STATE["health_requests"], STATE["health_failed"],
                    STATE["active_slow"])
            self.reply(200, text)
        elif url.path == "/control":
            with LOCK:
                text = describe()
            self.reply(200, text)
        else:
            self.reply(404, "not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if url.path != "/control":
            return self.reply(404, "not found\n")
        query = parse_qs(url.query)
        with LOCK:
            for key, values in query.items():
                value = values[-1]
                if key == "health" and value in ("ok", "fail"):
                    STATE["health"] = value
                elif key == "ready" and value in ("0", "1"):
                    STATE["ready"] = int(value)
                elif key == "load":
                    STATE["load"] = None if value == "none" else value
                elif key == "flap" and value in ("0", "1"):
                    STATE["flap"] = int(value)
                    STATE["flap_next_ok"] = False
                elif key == "body":
                    STATE["body"] = value
                else:
                    return self.reply(400, "bad parameter %s\n" % key)
            text = describe()
        self.reply(200, text)


def watchdog(lifetime, parent):
    deadline = time.monotonic() + lifetime
    while time.monotonic() < deadline:
        if os.getppid() != parent:
            break
        time.sleep(0.2)
    os._exit(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--lifetime", type=float, default=120.0)
    ap.add_argument("--health", default="ok")
    ap.add_argument("--ready", type=int, default=1)
    args = ap.parse_args()
    STATE["health"] = args.health
    STATE["ready"] = args.ready

    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 64
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=watchdog, args=(args.lifetime, os.getppid()),
                     daemon=True).start()
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever(poll_interval=0.1)


if __name__ == "__main__":
    main()
