"""The lab's DNS client: build a query, read the answer's addresses out of
a response, and drive a rate-limited stream of queries at one server,
recording for each query its latency, its outcome and which host answered.
"""

import random
import select
import socket
import struct
import time

from . import procs

CLIENT_TIMEOUT = 5.0  # seconds a client waits before it counts a query as unanswered


AD = 0x0020  # the AD bit of the header's flags


def build_query(qid, name, qtype=1, dnssec=False):
    """A recursive query; dnssec: with AD=1 and an OPT record with DO=1
    (1232-octet payload), so that a validating resolver says whether it
    validated the answer (RFC 6840 5.7)."""
    q = b"".join(bytes([len(lbl)]) + lbl.encode() for lbl in name.rstrip(".").split(".") if lbl)
    flags = 0x0100 | (AD if dnssec else 0)
    msg = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1 if dnssec else 0) + q + b"\0" + \
        struct.pack(">HH", qtype, 1)
    if dnssec:
        msg += b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0)
    return msg


def skip_name(msg, off):
    for _ in range(128):
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n
    raise ValueError("name too long")


def parse_response(msg):
    """Returns (ID, QR bit, RCODE, the A records' addresses in order)."""
    qid, flags, qd, an, _, _ = struct.unpack(">HHHHHH", msg[:12])
    off = 12
    for _ in range(qd):
        off = skip_name(msg, off) + 4
    addrs = []
    for _ in range(an):
        off = skip_name(msg, off)
        rtype, _, _, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
        off += 10
        if rtype == 1 and rdlen == 4:
            addrs.append(socket.inet_ntoa(msg[off:off + 4]))
        off += rdlen
    return qid, flags & 0x8000, flags & 0xF, addrs


def drive(server, plan, host_of=None, timeout=CLIENT_TIMEOUT, dnssec=False):
    """Sends plan = [(monotonic send time, name, tag)] to server:53 and
    returns one record per query: sent (monotonic), tag, lat (s or None),
    status (ok, servfail, nodata, other, timeout, error), host: the index
    that host_of ({address: index}) gives the answer's last address, or None.
    dnssec: the queries ask for validation (AD=1, DO=1) and each record
    also has ad, the response's AD bit (False while unanswered)."""
    host_of = host_of or {}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.connect((server, 53))
    pending = {}
    recs = []
    i = 0
    last_expire = 0.0
    hard_end = (plan[-1][0] if plan else time.monotonic()) + timeout + 2
    try:
        while not procs.stop_requested.is_set():
            now = time.monotonic()
            while i < len(plan) and plan[i][0] <= now:
                _, name, tag = plan[i]
                i += 1
                qid = random.randrange(65536)
                for _ in range(100):
                    if qid not in pending:
                        break
                    qid = random.randrange(65536)
                rec = {"sent": now, "tag": tag, "lat": None, "status": "timeout", "host": None}
                if dnssec:
                    rec["ad"] = False
                recs.append(rec)
                try:
                    s.send(build_query(qid, name, dnssec=dnssec))
                except OSError:
                    rec["status"] = "error"
                    continue
                pending[qid] = rec
            if now - last_expire > 0.1:
                last_expire = now
                for qid in [q for q, r in pending.items() if now - r["sent"] > timeout]:
                    del pending[qid]
            if (i >= len(plan) and not pending) or now > hard_end:
                break
            wait = 0.05
            if i < len(plan):
                wait = max(0.0, min(wait, plan[i][0] - now))
            r, _, _ = select.select([s], [], [], wait)
            if not r:
                continue
            for _ in range(256):
                try:
                    msg = s.recv(4096)
                except BlockingIOError:
                    break
                except OSError:
                    break  # e.g. ICMP port unreachable from a resolver that died
                try:
                    qid, qr, rcode, addrs = parse_response(msg)
                except (ValueError, struct.error, IndexError):
                    continue
                rec = pending.pop(qid, None)
                if rec is None or not qr:
                    continue
                rec["lat"] = time.monotonic() - rec["sent"]
                if dnssec:
                    rec["ad"] = bool(struct.unpack(">H", msg[2:4])[0] & AD)
                if rcode == 0 and addrs:
                    rec["status"] = "ok"
                    rec["host"] = host_of.get(addrs[-1])
                elif rcode == 0:
                    rec["status"] = "nodata"
                elif rcode == 2:
                    rec["status"] = "servfail"
                else:
                    rec["status"] = "other"
    finally:
        s.close()
    return recs


def ask(server, name, timeout=1.0):
    """One query now; its record, or None when the run is stopping."""
    recs = drive(server, [(time.monotonic(), name, "probe")], timeout=timeout)
    return recs[0] if recs else None
