#!/usr/bin/env python3
"""Delaying DNS relay for the lab's distance and closed-loop experiments.

Usage: relay.py LISTEN_ADDR UPSTREAM_ADDR DELAY_MS [PORT [SOURCES]]

Listens on LISTEN_ADDR:PORT (UDP and TCP, port 53 by default), forwards every
query unchanged to UPSTREAM_ADDR:PORT and sends each reply back to the client
DELAY_MS milliseconds after it arrived, so the host behind the relay looks
that much farther away (the round trip grows by DELAY_MS). SOURCES, a JSON
file {"client address": delay_ms, ...}, gives clients their own delays (the
closed-loop lab's resolvers each see the hosts at their own distances);
other clients get DELAY_MS. Queries are forwarded at once. UDP queries share one upstream socket; the relay rewrites
the DNS ID to tell replies apart and restores it on the way back. Runs until
SIGTERM or SIGINT.
"""

import asyncio
import json
import signal
import struct
import sys
import time


class UdpFront(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.relay.forward(data, addr)


class UdpBack(asyncio.DatagramProtocol):
    def __init__(self, relay):
        self.relay = relay
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.relay.reply(data)

    def error_received(self, exc):
        pass


class Relay:
    LIFETIME = 10.0  # seconds an unanswered query is remembered

    def __init__(self, loop, delay, sources=None):
        self.loop = loop
        self.delay = delay
        self.sources = sources or {}  # client address -> delay in seconds
        self.front = None
        self.back = None
        self.pending = {}  # relay id -> (client id bytes, client address, time)
        self.next_id = 1

    def forward(self, data, addr):
        if len(data) < 12 or self.back is None:
            return
        if len(self.pending) >= 60000:
            self.expire()
            if len(self.pending) >= 60000:
                return
        for _ in range(65536):
            rid = self.next_id
            self.next_id = (self.next_id + 1) & 0xFFFF
            if rid not in self.pending:
                break
        self.pending[rid] = (data[:2], addr, time.monotonic())
        self.back.transport.sendto(struct.pack(">H", rid) + data[2:])

    def reply(self, data):
        if len(data) < 12:
            return
        rid = struct.unpack(">H", data[:2])[0]
        entry = self.pending.pop(rid, None)
        if entry is None:
            return
        cid, addr, _ = entry
        msg = cid + data[2:]
        self.loop.call_later(self.delay_for(addr[0]), self.send_front, msg, addr)

    def delay_for(self, client):
        return self.sources.get(client, self.delay)

    def send_front(self, msg, addr):
        if self.front is not None and self.front.transport is not None:
            self.front.transport.sendto(msg, addr)

    def expire(self):
        now = time.monotonic()
        for rid in [r for r, e in self.pending.items() if now - e[2] > self.LIFETIME]:
            del self.pending[rid]

    async def tcp_client(self, reader, writer, upstream):
        peer = writer.get_extra_info("peername")
        delay = self.delay_for(peer[0]) if peer else self.delay
        try:
            ureader, uwriter = await asyncio.wait_for(asyncio.open_connection(*upstream), 5)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return

        async def client_to_server():
            try:
                while True:
                    data = await reader.read(65536)
                    if not data:
                        break
                    uwriter.write(data)
                    await uwriter.drain()
            except OSError:
                pass
            finally:
                try:
                    uwriter.write_eof()
                except OSError:
                    pass

        async def server_to_client():
            try:
                while True:
                    data = await ureader.read(65536)
                    if not data:
                        break
                    self.loop.call_later(delay, self.tcp_write, writer, data)
            except OSError:
                pass
            finally:
                self.loop.call_later(delay + 0.01, writer.close)
                uwriter.close()

        await asyncio.gather(client_to_server(), server_to_client())

    @staticmethod
    def tcp_write(writer, data):
        if not writer.is_closing():
            writer.write(data)


async def main():
    listen, upstream_addr, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    port = int(sys.argv[4]) if len(sys.argv) > 4 else 53
    sources = {}
    if len(sys.argv) > 5:
        with open(sys.argv[5]) as f:
            sources = {addr: ms / 1000.0 for addr, ms in json.load(f).items()}
    loop = asyncio.get_running_loop()
    relay = Relay(loop, delay_ms / 1000.0, sources)
    _, relay.front = await loop.create_datagram_endpoint(lambda: UdpFront(relay), local_addr=(listen, port))
    _, relay.back = await loop.create_datagram_endpoint(lambda: UdpBack(relay),
                                                        remote_addr=(upstream_addr, port))
    server = await asyncio.start_server(
        lambda r, w: relay.tcp_client(r, w, (upstream_addr, port)), listen, port, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"relay {listen}:{port} -> {upstream_addr}:{port} +{delay_ms} ms"
          f" ({len(sources)} clients with their own delays)", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), 5)
        except asyncio.TimeoutError:
            relay.expire()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
