"""A small DNS client: queries with EDNS and cookies, over UDP or TCP, and
responses parsed into records (names decompressed; the RDATA of the types
the checks read taken apart, and kept in canonical form for signatures).
"""

import ipaddress
import os
import select
import socket
import struct
import time

TYPES = {"A": 1, "NS": 2, "SOA": 6, "AAAA": 28, "OPT": 41, "DS": 43, "RRSIG": 46, "DNSKEY": 48}
TYPE_NAMES = {v: k for k, v in TYPES.items()}
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
          16: "BADVERS", 23: "BADCOOKIE"}
OPT_COOKIE = 10
# Types whose RDATA names are lowercased in the canonical form (RFC 4034 6.2, as RFC 6840 5.1 keeps it).
NAMES_IN_RDATA = {2: "n", 6: "nn"}


class DnsError(Exception):
    """No usable response: timeout, refused connection, garbage."""


def name_wire(name):
    """A domain name in wire form, lowercased (canonical)."""
    labels = [lbl for lbl in name.rstrip(".").split(".") if lbl]
    out = b""
    for lbl in labels:
        raw = lbl.lower().encode("ascii")
        if not 0 < len(raw) < 64:
            raise ValueError("bad label in %r" % name)
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def norm(name):
    """A name for comparison: lowercase, with the trailing dot."""
    return name.lower().rstrip(".") + "."


def read_name(msg, off):
    """(name as text with the trailing dot, offset after it)."""
    labels, end, jumps = [], None, 0
    while True:
        if off >= len(msg):
            raise DnsError("name runs past the message")
        n = msg[off]
        if n & 0xC0 == 0xC0:
            if off + 1 >= len(msg) or jumps > 64:
                raise DnsError("bad compression pointer")
            if end is None:
                end = off + 2
            off = (n & 0x3F) << 8 | msg[off + 1]
            jumps += 1
            continue
        if n & 0xC0:
            raise DnsError("bad label type")
        if n == 0:
            off += 1
            break
        labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels) + ".", end if end is not None else off


class Record:
    """One resource record; `data` holds the parsed RDATA of known types."""

    def __init__(self, name, rtype, rclass, ttl, rdata, canon, data):
        self.name, self.type, self.rclass, self.ttl = name, rtype, rclass, ttl
        self.rdata, self.canon, self.data = rdata, canon, data

    @property
    def type_name(self):
        return TYPE_NAMES.get(self.type, "TYPE%d" % self.type)

    def __repr__(self):
        return "%s %s %r" % (self.name, self.type_name, self.data)


def parse_rdata(msg, rtype, start, end):
    """(canonical RDATA, parsed data) of the RDATA at msg[start:end]."""
    raw = msg[start:end]
    if rtype == 1 and len(raw) == 4:
        return raw, str(ipaddress.IPv4Address(raw))
    if rtype == 28 and len(raw) == 16:
        return raw, str(ipaddress.IPv6Address(raw))
    if rtype == 2:
        target, _ = read_name(msg, start)
        return name_wire(target), norm(target)
    if rtype == 6:
        mname, off = read_name(msg, start)
        rname, off = read_name(msg, off)
        serial, refresh, retry, expire, minimum = struct.unpack(">IIIII", msg[off:off + 20])
        data = {"mname": norm(mname), "rname": norm(rname), "serial": serial, "minimum": minimum}
        return name_wire(mname) + name_wire(rname) + msg[off:off + 20], data
    if rtype == 43 and len(raw) >= 4:
        tag, alg, dtype = struct.unpack(">HBB", raw[:4])
        return raw, {"tag": tag, "alg": alg, "digest_type": dtype, "digest": raw[4:]}
    if rtype == 48 and len(raw) >= 4:
        flags, proto, alg = struct.unpack(">HBB", raw[:4])
        return raw, {"flags": flags, "protocol": proto, "alg": alg, "key": raw[4:]}
    if rtype == 46 and len(raw) >= 18:
        covered, alg, labels, ottl, expiration, inception, tag = struct.unpack(">HBBIIIH", raw[:18])
        signer, off = read_name(msg, start + 18)
        data = {"covered": covered, "alg": alg, "labels": labels, "original_ttl": ottl,
                "expiration": expiration, "inception": inception, "tag": tag,
                "signer": norm(signer), "signature": msg[off:end],
                # the RDATA before the signature, signer in canonical form (RFC 4034 3.1.8.1)
                "signed_part": raw[:18] + name_wire(signer)}
        return raw, data
    return raw, None


class Message:
    """A parsed response."""

    def __init__(self, msg):
        if len(msg) < 12:
            raise DnsError("response shorter than a header")
        self.raw = msg
        self.id, self.flags, qd, an, ns, ar = struct.unpack(">HHHHHH", msg[:12])
        off = 12
        self.question = []
        for _ in range(qd):
            name, off = read_name(msg, off)
            qtype, qclass = struct.unpack(">HH", msg[off:off + 4])
            off += 4
            self.question.append((name, qtype, qclass))
        self.sections = []
        for count in (an, ns, ar):
            records = []
            for _ in range(count):
                name, off = read_name(msg, off)
                if off + 10 > len(msg):
                    raise DnsError("record runs past the message")
                rtype, rclass, ttl, rdlen = struct.unpack(">HHIH", msg[off:off + 10])
                off += 10
                if off + rdlen > len(msg):
                    raise DnsError("RDATA runs past the message")
                canon, data = parse_rdata(msg, rtype, off, off + rdlen)
                records.append(Record(norm(name), rtype, rclass, ttl, msg[off:off + rdlen], canon, data))
                off += rdlen
            self.sections.append(records)
        self.answer, self.authority, self.additional = self.sections
        self.opt = None
        for rr in self.additional:
            if rr.type == 41:
                self.opt = {"udp_size": rr.rclass, "ext_rcode": rr.ttl >> 24, "version": rr.ttl >> 16 & 0xFF,
                            "do": bool(rr.ttl & 0x8000), "options": parse_options(rr.rdata)}

    @property
    def rcode(self):
        ext = self.opt["ext_rcode"] if self.opt else 0
        return ext << 4 | self.flags & 0xF

    @property
    def rcode_name(self):
        return RCODES.get(self.rcode, "RCODE%d" % self.rcode)

    aa = property(lambda self: bool(self.flags & 0x0400))
    tc = property(lambda self: bool(self.flags & 0x0200))
    qr = property(lambda self: bool(self.flags & 0x8000))

    def records(self, section, rtype, name=None):
        return [rr for rr in section if rr.type == rtype and (name is None or rr.name == norm(name))]

    def cookie(self):
        """The COOKIE option's bytes, or None."""
        for code, value in (self.opt or {}).get("options", []):
            if code == OPT_COOKIE:
                return value
        return None


def parse_options(rdata):
    out, off = [], 0
    while off + 4 <= len(rdata):
        code, length = struct.unpack(">HH", rdata[off:off + 4])
        out.append((code, rdata[off + 4:off + 4 + length]))
        off += 4 + length
    return out


def build_query(name, qtype, qid=None, edns=True, do=False, version=0, cookie=None, udp_size=1232, rd=False):
    """A query; RD clear unless asked (the servers checked are authoritative)."""
    qid = int.from_bytes(os.urandom(2), "big") if qid is None else qid
    arcount = 1 if edns else 0
    msg = struct.pack(">HHHHHH", qid, 0x0100 if rd else 0, 1, 0, 0, arcount) + name_wire(name) + struct.pack(">HH", qtype, 1)
    if edns:
        options = b""
        if cookie is not None:
            options = struct.pack(">HH", OPT_COOKIE, len(cookie)) + cookie
        ttl = version << 16 | (0x8000 if do else 0)
        msg += b"\0" + struct.pack(">HHIH", 41, udp_size, ttl, len(options)) + options
    return qid, msg


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def exchange_udp(addr, port, msg, qid, timeout):
    s = socket.socket(family_of(addr), socket.SOCK_DGRAM)
    try:
        s.connect((addr, port))
        s.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([s], [], [], left)[0]:
                raise DnsError("no response over UDP within %.1f s" % timeout)
            try:
                data = s.recv(65535)
            except ConnectionRefusedError as e:
                raise DnsError("nothing listens there (UDP: port unreachable)") from e
            except OSError as e:
                raise DnsError("UDP: %s" % e.strerror) from e
            if len(data) >= 2 and struct.unpack(">H", data[:2])[0] == qid:
                return data
    finally:
        s.close()


def recv_exact(s, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            raise DnsError("TCP response incomplete")
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise DnsError("TCP connection closed early")
        buf += chunk
    return buf


def exchange_tcp(addr, port, msg, timeout):
    deadline = time.monotonic() + timeout
    try:
        s = socket.create_connection((addr, port), timeout=timeout)
    except OSError as e:
        raise DnsError("TCP: %s" % (e.strerror or e)) from e
    try:
        s.sendall(struct.pack(">H", len(msg)) + msg)
        length = struct.unpack(">H", recv_exact(s, 2, deadline))[0]
        return recv_exact(s, length, deadline)
    except OSError as e:
        raise DnsError("TCP: %s" % (e.strerror or e)) from e
    finally:
        s.close()


def query(addr, port, name, qtype, tcp=False, timeout=2.0, tries=2, **opts):
    """Asks addr:port (UDP: `tries` times); returns the parsed response,
    checked against the question."""
    qtype = TYPES[qtype] if isinstance(qtype, str) else qtype
    qid, msg = build_query(name, qtype, **opts)
    if tcp:
        raw = exchange_tcp(addr, port, msg, timeout)
    else:
        for attempt in range(tries):
            try:
                raw = exchange_udp(addr, port, msg, qid, timeout / tries)
                break
            except DnsError:
                if attempt == tries - 1:
                    raise
    reply = Message(raw)
    if reply.id != qid or not reply.qr:
        raise DnsError("response does not match the query")
    if reply.question and (norm(reply.question[0][0]), reply.question[0][1]) != (norm(name), qtype):
        raise DnsError("response is for another question")
    return reply
