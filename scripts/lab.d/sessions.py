#!/usr/bin/env python3
"""The closed-loop lab's clients: sessions that resolve, connect and hold.

Usage: sessions.py PLAN.json OUT.jsonl

PLAN: {"resolvers": [address, ...], "hosts": {address: host index},
       "steps": [[start s, sessions per second], ...], "duration": s,
       "hold_ms": [min, max], "prefix": text, "seed": n, "max_open": n,
       "start_at": Unix time of the plan's start (default: now)}

From the start, sessions arrive as a Poisson process at the rate of the
current step (a step holds until the next one starts). Session k resolves
the unique name <prefix>-<k>.www.example.com through resolver k mod n (the
clients are spread evenly over the resolvers), connects over HTTP to port
80 of the address it got (the next address when a connection is refused,
as getaddrinfo-using clients do) and holds a request for a random 1-5 s
(hold_ms). A session fails when the name does not resolve (SERVFAIL,
REFUSED, no address, no answer within 5 s), when no address accepts the
connection, or when the response is not 200 (nginx answers 502 when the
upstream's max_conns are all busy). One JSON line per session goes to OUT:
t (start, s from the plan's start), res, host, dns_ms, conn_ms, hold_ms,
status. At most max_open sessions are in flight; arrivals beyond that are
recorded as "overrun" failures (the driver never grows without bound).
Stops at the end of the plan plus the longest session, or on SIGTERM.
"""

import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys
import time

# The lab's DNS client code (scripts/labkit/dnswire.py), one directory up.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from labkit.dnswire import build_query, parse_response  # noqa: E402

DNS_TIMEOUT = 5.0
CONNECT_TIMEOUT = 3.0
ZONE = "www.example.com"


async def resolve(loop, server, name):
    """(status, addresses, ms): one UDP query, answered or timed out."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    t0 = time.monotonic()
    try:
        await loop.sock_connect(s, (server, 53))
        qid = random.randrange(65536)
        await loop.sock_sendall(s, build_query(qid, name))
        end = t0 + DNS_TIMEOUT
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return "dns-timeout", [], None
            msg = await asyncio.wait_for(loop.sock_recv(s, 4096), left)
            if len(msg) >= 12 and struct.unpack(">H", msg[:2])[0] == qid:
                break
        ms = 1000 * (time.monotonic() - t0)
        _, _, rcode, addrs = parse_response(msg)
        if rcode == 2:
            return "dns-servfail", [], ms
        if rcode == 5:
            return "dns-refused", [], ms
        if rcode != 0 or not addrs:
            return "dns-noaddr", [], ms
        return "ok", addrs, ms
    except asyncio.TimeoutError:
        return "dns-timeout", [], None
    except (OSError, ValueError, struct.error, IndexError):
        return "dns-error", [], None
    finally:
        s.close()


async def hold(addrs, hold_ms):
    """(status, index of the address used, connect ms)."""
    for i, addr in enumerate(addrs):
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(addr, 80), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            continue  # refused or unreachable: try the next address
        conn_ms = 1000 * (time.monotonic() - t0)
        try:
            writer.write(b"GET /hold?ms=%d HTTP/1.0\r\nHost: %s\r\n\r\n" % (hold_ms, ZONE.encode()))
            # the application may be slowed down (up to 10x): wait that long
            line = await asyncio.wait_for(reader.readline(), 10 * hold_ms / 1000.0 + 10)
            await asyncio.wait_for(reader.read(), 10)
        except (OSError, asyncio.TimeoutError):
            return "http-error", i, conn_ms
        finally:
            writer.close()
        parts = line.split()
        code = parts[1].decode() if len(parts) > 1 else "?"
        return ("ok" if code == "200" else "http-" + code), i, conn_ms
    return "connect", None, None


async def session(loop, plan, k, t_start, out):
    resolvers = plan["resolvers"]
    res = k % len(resolvers)
    lo, hi = plan["hold_ms"]
    hold_ms = random.randint(lo, hi)
    rec = {"t": round(time.monotonic() - t_start, 3), "res": res, "host": None,
           "dns_ms": None, "conn_ms": None, "hold_ms": hold_ms}
    status, addrs, rec["dns_ms"] = await resolve(loop, resolvers[res], "%s-%d.%s" % (plan["prefix"], k, ZONE))
    if status == "ok":
        status, used, rec["conn_ms"] = await hold(addrs, hold_ms)
        if used is not None:
            rec["host"] = plan["hosts"].get(addrs[used])
    rec["status"] = status
    out.append(rec)


async def main():
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    random.seed(plan.get("seed", 1))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    steps = sorted(plan["steps"])
    duration = plan["duration"]
    max_open = plan.get("max_open", 2000)
    out, tasks = [], set()
    # the plan starts at start_at, so that the lab's readings share its clock
    t_start = time.monotonic() + max(0.0, plan.get("start_at", 0) - time.time())
    t, k = 0.0, 0
    while not stop.is_set():
        rate = [r for s, r in steps if s <= t][-1] if steps and steps[0][0] <= t else 0.0
        # the next arrival: exponential gap at the current rate (re-read each 0.1 s when idle)
        t += random.expovariate(rate) if rate > 0 else 0.1
        if t >= duration:
            break
        delay = t_start + t - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stop.wait(), delay)
                break
            except asyncio.TimeoutError:
                pass
        if rate <= 0:
            continue
        if len(tasks) >= max_open:
            out.append({"t": round(t, 3), "res": k % len(plan["resolvers"]), "host": None,
                        "dns_ms": None, "conn_ms": None, "hold_ms": 0, "status": "overrun"})
        else:
            task = loop.create_task(session(loop, plan, k, t_start, out))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        k += 1
    if tasks and not stop.is_set():
        await asyncio.wait(tasks, timeout=DNS_TIMEOUT + CONNECT_TIMEOUT + 10 * plan["hold_ms"][1] / 1000 + 15)
    for task in list(tasks):
        task.cancel()
    with open(sys.argv[2], "w") as f:
        for rec in sorted(out, key=lambda r: r["t"]):
            f.write(json.dumps(rec) + "\n")
    print("sessions: %d started, %d ok" % (len(out), sum(r["status"] == "ok" for r in out)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
