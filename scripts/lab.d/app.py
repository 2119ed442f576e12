#!/usr/bin/env python3
"""The closed-loop lab's application: one per host, behind the host's nginx.

Usage: app.py PORT SLOTS

Listens on 127.0.0.1:PORT (HTTP/1.0, asyncio) with SLOTS concurrent request
slots: a request holds a slot for its whole duration, so the number of
requests in flight is the application's load (nginx's upstream, with
max_conns = SLOTS, is what the DNS module reads).

  GET /hold?ms=N     holds a slot N ms (at most 60 s) times the current
                     slowdown, then 200 "ok"
  GET /control?slow=F   sets the slowdown factor (1: normal; 2: every
                     request takes twice as long, i.e. half the capacity)
  GET /stats         "active N" and "served N"

Runs until SIGTERM or SIGINT.
"""

import asyncio
import signal
import sys
from urllib.parse import parse_qs, urlparse

MAX_HOLD_MS = 60_000
HEAD_LIMIT = 8192  # bytes of request head read at most


class App:
    def __init__(self, slots):
        self.slots = asyncio.Semaphore(slots)
        self.slow = 1.0
        self.active = 0
        self.served = 0

    async def handle(self, reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            writer.close()
            return
        parts = head[:HEAD_LIMIT].split(b"\r\n", 1)[0].decode("latin-1").split()
        url = urlparse(parts[1] if len(parts) > 1 else "/")
        query = parse_qs(url.query)
        code, body = 404, "not found\n"
        if url.path == "/hold":
            try:
                ms = min(MAX_HOLD_MS, max(0, int(query.get("ms", ["0"])[0])))
            except ValueError:
                ms = 0
            async with self.slots:
                self.active += 1
                try:
                    await asyncio.sleep(ms * self.slow / 1000.0)
                finally:
                    self.active -= 1
            self.served += 1
            code, body = 200, "ok\n"
        elif url.path == "/control":
            try:
                self.slow = min(10.0, max(0.1, float(query.get("slow", [self.slow])[0])))
            except ValueError:
                pass
            code, body = 200, "slow %g\n" % self.slow
        elif url.path == "/stats":
            code, body = 200, "active %d\nserved %d\n" % (self.active, self.served)
        data = body.encode()
        writer.write(b"HTTP/1.0 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n" % (code, len(data)) + data)
        try:
            await writer.drain()
        except OSError:
            pass
        writer.close()


async def main():
    port, slots = int(sys.argv[1]), int(sys.argv[2])
    app = App(slots)
    server = await asyncio.start_server(app.handle, "127.0.0.1", port, backlog=1024,
                                        reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("app 127.0.0.1:%d, %d slots" % (port, slots), flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
