"""Host 1 moves to a new address (experiment "address-move").

The parent zone example.com. is served by BIND 9 as a primary on
BIND_PARENT_ADDR, with an update-policy that lets one TSIG key (written by
tsig-keygen) change ns1-www.example.com's A/AAAA and nothing else; NSD
keeps the private root and com., and com. delegates example.com. to BIND.
The delegation of www and the hosts' glue have a short TTL (GLUE_TTL).

Host 1 listens on its old address and on a new one (NEW_ADDR, added to the
namespace's loopback by the experiment), gives out the addresses of its
dns_address_file and keeps its glue in the parent with dns_glue_update;
its UDP queries go through the stream session path (dns_udp_fast_path off)
so that its access log records every query with the resolver's address
(each resolver sends from its own address) and the address the query
arrived on. Hosts 2 and 3 run as usual.

While the driver sends unique names through every resolver, the address
file changes from the old address to the new one (the move). A watcher
polls host 1 (its answer), the parent (ns1-www.example.com A) and host 1's
status endpoint every 50 ms. Later (phase 2) host 1 is reloaded listening
on the new address only and the old address is removed from the
loopback: queries that still go to the old glue find nobody, so the
resolvers must use the new glue.

Measured per resolver: failed resolutions (SERVFAIL, other errors, no
answer within the client timeout) over the whole run and per phase; the
last answer with host 1's old address and the first with its new one
(what clients see); the last query reaching host 1 on its old address and
the first on its new one (which glue the resolver follows); the queries
reaching host 1 on each address after the old one was removed.
"""

import os
import re
import select
import socket
import struct
import subprocess
import threading
import time

from .dnswire import build_query, parse_response
from .procs import log, start, stop, stop_requested, timer
from .topology import BIND_PARENT_ADDR, HOSTS, RESOLVER_ADDRS, ZONE, parent_dir, start_parent

NEW_ADDR = "127.0.0.31"  # host 1's new address
OLD_ADDR = HOSTS[0][1]
GLUE_NAME = "ns1-www.example.com"
GLUE_TTL = 20  # seconds: the delegation's NS and glue TTL in the parent, and the pushed glue's
KEY_NAME = "glue-key"
MOVE_AT = 10.0  # seconds after the driver starts
PHASE2_AT = MOVE_AT + 2 * GLUE_TTL + 10.0  # the old address stops serving
DURATION = PHASE2_AT + 30.0
RATE = 40  # unique names per second per resolver
OTHER_LOAD = 0.7  # hosts 2 and 3 (10 ms late with the default curve): the resolvers prefer host 1
POLL = 0.05  # the watcher's period
# what an answer's address means
ANSWER_OF = {OLD_ADDR: "h1-old", NEW_ADDR: "h1-new", HOSTS[1][1]: "h2", HOSTS[2][1]: "h3"}
RESOLVER_OF = {addr: name for name, addr in RESOLVER_ADDRS.items()}
PHASES = [("before the move", "before"), ("move → old address removed", "moving"),
          ("old address removed", "after")]


def zone_text():
    """example.com. as BIND serves it: the delegation of www with glue, TTL GLUE_TTL."""
    soa = "SOA ns-parent.lab. hostmaster.lab. 1 3600 600 86400 %d" % GLUE_TTL
    glue = "\n".join("ns%d-www %d IN A %s" % (i + 1, GLUE_TTL, h[1]) for i, h in enumerate(HOSTS))
    ns = "\n".join("www %d IN NS ns%d-www.example.com." % (GLUE_TTL, i + 1) for i in range(len(HOSTS)))
    return f"""$TTL 3600
example.com. IN {soa}
example.com. IN NS ns-parent.lab.
{ns}
{glue}
"""


def named_conf(d, key_path):
    return f"""options {{
    directory "{d}";
    pid-file "{d}/named.pid";
    session-keyfile "{d}/session.key";
    managed-keys-directory "{d}";
    listen-on port 53 {{ {BIND_PARENT_ADDR}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ any; }};
    notify no;
    dnssec-validation no;
    querylog yes;
}};
controls {{ }};
include "{key_path}";
zone "example.com" {{
    type primary;
    file "{d}/example.com.zone";
    // host 1 may change its own name server's addresses, nothing else
    update-policy {{ grant {KEY_NAME} name {GLUE_NAME}. A AAAA; }};
}};
logging {{
    channel f {{ file "{d}/named.log"; severity info; print-time yes; }};
    category default {{ f; }};
    category update {{ f; }};
    category update-security {{ f; }};
    category lame-servers {{ null; }};
    channel q {{ file "{d}/queries.log"; severity info; print-time yes; }};
    category queries {{ q; }};
}};
"""


def query_addrs(server, name, timeout=0.3):
    """One query for name's A: (rcode, addresses) or None without an answer."""
    qid = struct.unpack(">H", os.urandom(2))[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((server, 53))
            s.send(build_query(qid, name))
        except OSError:
            return None
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([s], [], [], left)
            if not r:
                return None
            try:
                msg = s.recv(4096)
                got, qr, rcode, addrs = parse_response(msg)
            except (OSError, ValueError, struct.error, IndexError):
                return None
            if got == qid and qr:
                return rcode, addrs


def start_bind_parent(work, key_path):
    """BIND 9 as example.com's primary; returns (process, directory) once it answers."""
    d = os.path.join(work, "bind-parent")
    os.makedirs(d)
    with open(os.path.join(d, "example.com.zone"), "w") as f:
        f.write(zone_text())
    path = os.path.join(d, "named.conf")
    with open(path, "w") as f:
        f.write(named_conf(d, key_path))
    p = start(["named", "-f", "-4", "-n", "1", "-c", path], os.path.join(d, "stdout.log"))
    for _ in range(100):
        a = query_addrs(BIND_PARENT_ADDR, GLUE_NAME)
        if a and a[1] == [OLD_ADDR]:
            return p, d
        if p.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError("BIND did not serve example.com: see %s" % d)


def tsig_key(path):
    """A new HMAC-SHA256 key in tsig-keygen's format."""
    text = subprocess.run(["tsig-keygen", "-a", "hmac-sha256", KEY_NAME], check=True, capture_output=True,
                          text=True).stdout
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)


def write_address_file(path, addr):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(addr + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def ip_addr(op, addr):
    subprocess.run(["ip", "addr", op, addr + "/32", "dev", "lo"], stderr=subprocess.DEVNULL)


class Watcher:
    """Polls host 1's answer, the parent's glue and host 1's status every
    POLL seconds until stopped (or `limit` seconds have passed); keeps each
    change as (monotonic time, what, value)."""

    def __init__(self, host, limit):
        self.host = host
        self.limit = limit
        self.events = []
        self.last = {}
        self.ask_at = OLD_ADDR  # where host 1 is asked; the new address in phase 2
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def note(self, what, value):
        if self.last.get(what, ()) != value:
            self.last[what] = value
            self.events.append((time.monotonic(), what, value))

    def loop(self):
        end = time.monotonic() + self.limit
        k = 0
        while not self.stop.is_set() and not stop_requested.is_set() and time.monotonic() < end:
            a = query_addrs(self.ask_at, ZONE)
            self.note("host1 answer", None if a is None else ",".join(a[1]))
            g = query_addrs(BIND_PARENT_ADDR, GLUE_NAME)
            self.note("parent glue", None if g is None else ",".join(g[1]))
            if k % 5 == 0:
                st = (self.host.status() or {}).get("addresses") or {}
                cur = st.get("current")
                self.note("status addresses", "%s %s" % (st.get("origin"), ",".join(cur) if isinstance(cur, list)
                                                         else cur))
                parent = st.get("parent") or {}
                self.note("status parent", "in_step=%s last_outcome=%s" % (parent.get("in_step"),
                                                                          parent.get("last_outcome")))
            k += 1
            self.stop.wait(POLL)

    def first(self, what, value, after):
        """The first time, not before `after`, that `what` became `value`."""
        return next((t for t, w, v in self.events if w == what and v == value and t >= after), None)


def parse_access_log(path, offset):
    """Host 1's access log (`$msec $remote_addr $server_addr ...`) as
    [(monotonic time, resolver name, local address)]; offset: wall clock
    minus monotonic clock. Lines from other clients are left out."""
    out = []
    try:
        f = open(path)
    except OSError:
        return out
    with f:
        for line in f:
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                t = float(parts[0]) - offset
            except ValueError:
                continue
            name = RESOLVER_OF.get(parts[1])
            if name:
                out.append((t, name, parts[2]))
    return out


BIND_QUERY = re.compile(r"^(\d+-\w+-\d+ \d+:\d+:\d+)(\.\d+) .*client @\S+ ([\d.]+)#\d+ .*query: (\S+) IN (\S+)")


def parse_query_log(path, offset):
    """The parent's query log (BIND's `queries` category with print-time)
    as [(monotonic time, resolver name, name, type)]; offset: wall clock
    minus monotonic clock (BIND prints local time)."""
    out = []
    try:
        f = open(path, errors="replace")
    except OSError:
        return out
    with f:
        for line in f:
            m = BIND_QUERY.match(line)
            name = m and RESOLVER_OF.get(m.group(3))
            if not name:
                continue
            wall = time.mktime(time.strptime(m.group(1), "%d-%b-%Y %H:%M:%S")) + float(m.group(2))
            out.append((wall - offset, name, m.group(4).lower(), m.group(5)))
    return out


def log_lines(path, pattern):
    try:
        with open(path, errors="replace") as f:
            return [line.rstrip("\n") for line in f if pattern in line]
    except OSError:
        return []


def rel(t, t_ref):
    return None if t is None or t_ref is None else round(t - t_ref, 2)


def phase_of(t, t_move, t_gone):
    if t < t_move:
        return "before"
    if t_gone is None or t < t_gone:
        return "moving"
    return "after"


def resolver_figures(recs, hits, t_move, t_gone, asked=()):
    """The figures of one resolver: recs from the driver, hits: [(time,
    local address)] of its queries at host 1, asked: [(time, name, type)]
    of its queries to the parent."""
    fig = {"sent": len(recs), "phases": {}}
    after = [(t, n, q) for t, n, q in asked if t >= t_move]
    fig["parent_queries"] = len(asked)
    fig["first_parent_query"] = rel(after[0][0], t_move) if after else None
    fig["first_parent_query_is"] = "%s %s" % after[0][1:] if after else None
    for _, key in PHASES:
        fig["phases"][key] = {"sent": 0, "ok": 0, "servfail": 0, "timeout": 0, "other": 0,
                              "answers": {v: 0 for v in ANSWER_OF.values()},
                              "at_host1": {"old": 0, "new": 0}}
    for r in recs:
        p = fig["phases"][phase_of(r["sent"], t_move, t_gone)]
        p["sent"] += 1
        st = r["status"]
        if st == "ok":
            p["ok"] += 1
            if r["host"] in p["answers"]:
                p["answers"][r["host"]] += 1
        elif st == "servfail":
            p["servfail"] += 1
        elif st in ("timeout", "error"):
            p["timeout"] += 1
        else:
            p["other"] += 1
    for t, local in hits:
        which = "old" if local == OLD_ADDR else "new" if local == NEW_ADDR else None
        if which:
            fig["phases"][phase_of(t, t_move, t_gone)]["at_host1"][which] += 1
    fig["failed"] = sum(p["servfail"] + p["timeout"] + p["other"] for p in fig["phases"].values())
    ok_new = [r["sent"] for r in recs if r["status"] == "ok" and r["host"] == "h1-new"]
    ok_old = [r["sent"] for r in recs if r["status"] == "ok" and r["host"] == "h1-old"]
    fig["last_old_answer"] = rel(max(ok_old, default=None), t_move)
    fig["first_new_answer"] = rel(min(ok_new, default=None), t_move)
    old_hits = [t for t, a in hits if a == OLD_ADDR]
    new_hits = [t for t, a in hits if a == NEW_ADDR]
    fig["last_query_old"] = rel(max(old_hits, default=None), t_move)
    fig["first_query_new"] = rel(min(new_hits, default=None), t_move)
    lat = sorted(r["lat"] for r in recs if r["status"] == "ok")
    fig["lat_max_ms"] = round(1000 * lat[-1], 1) if lat else None
    return fig


def exp_address_move(lab):
    """Runs the move; leaves the parent, host 1 and the resolvers as it found them."""
    work = os.path.join(lab.work, "address-move")
    os.makedirs(work)
    host = lab.hosts[0]
    key = os.path.join(work, "glue.key")
    tsig_key(key)
    addr_file = os.path.join(host.dir, "public.addresses")
    access_log = os.path.join(host.dir, "logs", "move-access.log")
    glue_line = "dns_glue_update server=%s name=%s key=%s ttl=%ds;" % (BIND_PARENT_ADDR, GLUE_NAME, key, GLUE_TTL)
    server_extra = "\n        ".join([
        "dns_address_file %s;" % addr_file,
        glue_line,
        "dns_udp_fast_path off;",
        "access_log %s lab_move;" % access_log,
    ])
    stream_extra = "log_format lab_move '$msec $remote_addr $server_addr $dns_qname $dns_qtype $dns_rcode';"
    conf = dict(listens=[OLD_ADDR, NEW_ADDR], server_extra=server_extra, stream_extra=stream_extra)
    out = {"glue_ttl": GLUE_TTL, "other_load": OTHER_LOAD, "move_at": MOVE_AT, "phase2_at": PHASE2_AT, "duration": DURATION,
           "rate": RATE, "old": OLD_ADDR, "new": NEW_ADDR, "parent": BIND_PARENT_ADDR,
           "glue_update": glue_line.replace(key, "glue.key"),
           "update_policy": "grant %s name %s. A AAAA;" % (KEY_NAME, GLUE_NAME)}
    stop(lab.parent)
    lab.parent = None
    bind = nsd = None
    removed_old = False
    try:
        nsd = start_parent(work, tag="nsd-root-com", example_at=BIND_PARENT_ADDR)
        bind, bind_dir = start_bind_parent(work, key)
        log("address-move: root and com. on NSD, example.com. on BIND at %s (glue TTL %d s)" %
            (BIND_PARENT_ADDR, GLUE_TTL))
        ip_addr("add", NEW_ADDR)
        # hosts 2 and 3 answer a little late (their load), so that the
        # resolvers that follow the fastest server prefer host 1: the one
        # that moves
        lab.loads("0", str(OTHER_LOAD), str(OTHER_LOAD))
        write_address_file(addr_file, OLD_ADDR)
        host.start(**conf)
        # the first push after a start: the parent already has the old address
        for _ in range(60):
            if ((host.status() or {}).get("addresses") or {}).get("parent", {}).get("in_step"):
                break
            time.sleep(0.1)
        for r in lab.resolvers:
            r.source = r.addr  # so that host 1's access log tells the resolvers apart
        moments = {"resolvers": time.monotonic()}
        ready = lab.fresh_resolvers()
        moments["first_www"] = time.monotonic()
        for r in ready:
            a = query_addrs(r.addr, "check-move.%s" % ZONE, timeout=3)
            log("address-move: %s resolves through BIND's delegation: %s" % (r.label, a))
        offset = time.time() - time.monotonic()
        watcher = Watcher(host, DURATION + 15)
        watcher.thread.start()
        t0 = time.monotonic() + 0.5

        def move():
            write_address_file(addr_file, NEW_ADDR)
            moments["move"] = time.monotonic()
            log("address-move: %s written to host 1's address file" % NEW_ADDR)

        def phase2():
            moments["reload"] = time.monotonic()
            host.reload(**dict(conf, listens=[NEW_ADDR]))
            # the old address is removed once nginx no longer listens there
            for _ in range(100):
                if query_addrs(OLD_ADDR, ZONE, timeout=0.1) is None:
                    break
                time.sleep(0.05)
            ip_addr("del", OLD_ADDR)
            moments["gone"] = time.monotonic()
            watcher.ask_at = NEW_ADDR
            log("address-move: host 1 reloaded on %s only, %s removed" % (NEW_ADDR, OLD_ADDR))

        from .experiments import uniq_plan
        plans = {r: uniq_plan(t0, RATE, int(DURATION * RATE), tag="u") for r in ready}
        timer(t0 + MOVE_AT - time.monotonic(), move)
        timer(t0 + PHASE2_AT - time.monotonic(), phase2)
        removed_old = True
        log("address-move: %d unique names per resolver at %d/s for %.0f s; move at %.0f s, old address "
            "removed at %.0f s" % (int(DURATION * RATE), RATE, DURATION, MOVE_AT, PHASE2_AT))
        recs = lab.run_parallel(plans, host_of=ANSWER_OF)
        watcher.stop.set()
        watcher.thread.join(2)
        lab.stop_resolvers()
        t_move, t_gone = moments.get("move"), moments.get("gone")
        if t_move is None:
            raise RuntimeError("the move did not happen (run stopped?)")
        hits = {}
        for t, name, local in parse_access_log(access_log, offset):
            hits.setdefault(name, []).append((t, local))
        asked = {}
        for t, name, qname, qtype in parse_query_log(os.path.join(bind_dir, "queries.log"), offset):
            asked.setdefault(name, []).append((t, qname, qtype))
        out["res"] = {name: resolver_figures(rs, hits.get(name, []), t_move, t_gone, asked.get(name, []))
                      for name, rs in recs.items()}
        out["resolvers_started"] = rel(moments["resolvers"], t_move)
        out["first_www_query"] = rel(moments["first_www"], t_move)
        out["reload_at"] = rel(moments.get("reload"), t_move)
        out["gone_at"] = rel(t_gone, t_move)
        out["events"] = [(rel(t, t_move), w, v) for t, w, v in watcher.events]
        out["answer_changed"] = rel(watcher.first("host1 answer", NEW_ADDR, t_move), t_move)
        out["status_changed"] = rel(watcher.first("status addresses", "file " + NEW_ADDR, t_move), t_move)
        out["parent_changed"] = rel(watcher.first("parent glue", NEW_ADDR, t_move), t_move)
        out["module_log"] = [line.split("]", 1)[-1].split(":", 1)[-1].strip()
                             for line in log_lines(os.path.join(host.dir, "error.log"), "glue update of")]
        out["bind_log"] = [line for line in log_lines(os.path.join(bind_dir, "named.log"), "updating zone")]
        out["status"] = (host.status() or {}).get("addresses")
        out["watch_period"] = POLL
        for name, fig in out["res"].items():
            log("address-move %s: failed %d, last old answer %s s, first new answer %s s, last query at old "
                "address %s s, first at new %s s, after removal %s at new" %
                (name, fig["failed"], fig["last_old_answer"], fig["first_new_answer"], fig["last_query_old"],
                 fig["first_query_new"], fig["phases"]["after"]["at_host1"]["new"]))
        log("address-move: answers changed %s s, parent %s s after the move" %
            (out["answer_changed"], out["parent_changed"]))
    finally:
        for r in lab.resolvers:
            r.source = None
        lab.stop_resolvers()
        stop(bind)
        stop(nsd)
        if removed_old:
            ip_addr("add", OLD_ADDR)
        ip_addr("del", NEW_ADDR)
        host.start()
        lab.loads("0", "0", "0")
        lab.parent = start(["nsd", "-d", "-c", os.path.join(parent_dir(lab.work), "nsd.conf")],
                           os.path.join(parent_dir(lab.work), "stdout.log"))
        time.sleep(1.0)
    lab.results["experiments"]["address-move"] = out


# ---------------------------------------------------------------- the report

def secs(v):
    return "—" if v is None else "%.2f s" % v


def failed_cell(p):
    return "%d / %d / %d" % (p["servfail"], p["timeout"], p["other"])


def targets(ex, labels):
    """The proof's targets, checked against the run: [(target, met, detail)]."""
    res = ex.get("res", {})
    out = []
    failed = {n: f["failed"] for n, f in res.items()}
    out.append(("no failed resolution through any resolver during the whole run",
                bool(res) and not any(failed.values()),
                ", ".join("%s %d" % (labels.get(n, n), v) for n, v in failed.items())))
    out.append(("the parent serves the new glue after the move", ex.get("parent_changed") is not None,
                "after %s" % secs(ex.get("parent_changed"))))
    limit = ex["glue_ttl"] + (ex.get("parent_changed") or 0) + 1.0
    late = {n: f["last_query_old"] for n, f in res.items()
            if f["last_query_old"] is not None and f["last_query_old"] > limit}
    out.append(("every resolver stops using the old glue within the glue TTL of the push (%.1f s)" % limit,
                bool(res) and not late,
                ", ".join("%s last at %s" % (labels.get(n, n), secs(v)) for n, v in late.items()) or "all did"))
    reached = {n: f["phases"]["after"]["at_host1"]["new"] for n, f in res.items()}
    out.append(("every resolver reaches host 1 at its new address after the old one is removed",
                bool(res) and all(reached.values()),
                ", ".join("%s %d queries" % (labels.get(n, n), v) for n, v in reached.items())))
    return out


def first_fetch_rows(ex):
    """When the resolvers fetched the glue first, and when that ran out."""
    ttl = ex["glue_ttl"]
    first = ex.get("first_www_query")
    if first is not None:
        return ("| the resolvers' first query for a `www` name (caches empty: each fetches the delegation "
                "and glue) | %s |\n| that glue runs out (first query + the glue TTL) | %s |" % (secs(first), secs(first + ttl)))
    start = ex.get("resolvers_started")
    return ("| the resolvers start, caches empty (their first query for a `www` name, which fetches the "
            "delegation and glue, follows within a second or two) | %s |\n| start + the glue TTL (the glue "
            "fetched first runs out shortly after) | %s |" % (secs(start), secs(None if start is None else start + ttl)))


def report(results):
    """docs/lab-address-move.md from a run's results."""
    ex = results["experiments"]["address-move"]
    names = [n for n in results["resolvers"] if n in ex.get("res", {})]
    labels = {n: results["resolvers"][n]["label"] for n in results["resolvers"]}
    md = ["# Address move in the resolver lab\n"]
    md.append(f"""Written by `scripts/lab --only address-move` from the measured data
({results["mode"]} run, {results.get("build", "?")} build of the module). Host 1 moves
from `{ex["old"]}` to `{ex["new"]}`; the module gives out the new address,
pushes its glue (`{GLUE_NAME} A`) to the parent with an RFC 2136 UPDATE
signed with TSIG, and the resolvers follow once the old glue expires.

## Set-up

- **Parent**: BIND 9 (`named`) on `{ex["parent"]}` is the primary of
  `example.com.`, which delegates `www` to `ns1-www`, `ns2-www` and
  `ns3-www.example.com` with their addresses; the NS records and the
  addresses have a TTL of **{ex["glue_ttl"]} s** (short, so that the run is
  short). Its `update-policy` lets one TSIG key (HMAC-SHA256, written by
  `tsig-keygen`) change that one name and nothing else:
  `update-policy {{ {ex["update_policy"]} }};`. NSD serves the private root
  and `com.`, which delegates `example.com.` to BIND.
- **Host 1**: listens on its old and its new address (the new one added to
  the namespace's loopback for the run); gives out the address in its
  `dns_address_file` and keeps its glue with
  `{ex["glue_update"]}`. Its UDP queries take the
  stream session path (`dns_udp_fast_path off`) so that its `access_log`
  records, for every query, the resolver (each resolver sends from its own
  address) and the address the query arrived on. Hosts 2 and 3 as in the
  other experiments, with a load of {ex.get("other_load", 0)} in their load files (they
  answer a few milliseconds late), so that the resolvers that follow the
  fastest server prefer host 1, the one that moves.
- **Driver**: {int(ex["duration"] * ex["rate"])} unique names
  (`<unique>.www.example.com`) through each resolver at {ex["rate"]}/s for
  {ex["duration"]:.0f} s, all resolvers at once, fresh caches at the start;
  a failure is SERVFAIL, another error code, or no answer within the
  client's timeout.
- **The move**: {ex["move_at"]:.0f} s into the run the new address is
  written into host 1's address file (time 0 below). **Phase 2**:
  {ex["phase2_at"]:.0f} s into the run (at {secs(ex.get("reload_at"))}) host 1 is
  reloaded listening on the new address only, and the old address is removed
  from the loopback ({secs(ex.get("gone_at"))}): a query sent to the old glue finds
  nobody.
- A watcher asks host 1, the parent and host 1's status endpoint every
  {int(1000 * ex["watch_period"])} ms.

## What happened (seconds after the address file changed)

| event | time |
|---|---|
| host 1 answers with the new address (direct query) | {secs(ex.get("answer_changed"))} |
| host 1's status endpoint shows the new address (`origin` file) | {secs(ex.get("status_changed"))} |
| BIND serves the new glue (direct query for `{GLUE_NAME} A`) | {secs(ex.get("parent_changed"))} |
{first_fetch_rows(ex)}
| a glue fetched just before the push runs out, at the latest | {secs((ex.get("parent_changed") or 0) + ex["glue_ttl"])} |
| old address removed (phase 2) | {secs(ex.get("gone_at"))} |

The module logged its pushes (error log, `notice`; the first one at
start, with the address the parent had already):

""")
    md.append("\n".join("    " + line for line in ex.get("module_log", [])) or "    (no line)")
    md.append("\nand BIND its update (`named.log`):\n")
    md.append("\n".join("    " + line for line in ex.get("bind_log", [])[-4:]) or "    (no line)")
    st = ex.get("status") or {}
    parent = st.get("parent") or {}
    md.append("""
At the end host 1's status endpoint reported the addresses %s (origin
`%s`) and the glue push `in_step` %s, last outcome `%s`, %s attempts, %s
failures.
""" % (", ".join("`%s`" % a for a in st.get("current", [])) if isinstance(st.get("current"), list)
       else "`%s`" % st.get("current"), st.get("origin"), parent.get("in_step"), parent.get("last_outcome"),
       parent.get("attempts"), parent.get("failures")))
    md.append("## Per resolver\n")
    md.append("""Failures are SERVFAIL / no answer / other error codes, per phase: before
the move, from the move until the old address was removed, after that.
"Answers" are what the clients got: the last answer carrying host 1's old
address and the first carrying its new one (by the time the query was
sent; negative: before the move). "Queries at host 1" come from
host 1's access log: which of its addresses the resolver sent its queries
to, that is which glue it followed; "first query to the parent" is the
first query the resolver sent BIND after the move (BIND's query log): the
moment it fetched the delegation again.
""")
    rows = ["| resolver | queries | failed before | failed during the move | failed after removal | "
            "last old answer | first new answer | max latency |", "|" + "---|" * 8]
    for n in names:
        f = ex["res"][n]
        ph = f["phases"]
        rows.append("| %s | %d | %s | %s | %s | %s | %s | %s ms |" % (
            labels[n], f["sent"], failed_cell(ph["before"]), failed_cell(ph["moving"]), failed_cell(ph["after"]),
            secs(f["last_old_answer"]), secs(f["first_new_answer"]),
            "—" if f["lat_max_ms"] is None else "%.0f" % f["lat_max_ms"]))
    md.append("\n".join(rows) + "\n")
    rows = ["| resolver | first query to the parent | last query at the old address | first query at the new address | "
            "before the move (old / new) | during the move (old / new) | after removal (old / new) |",
            "|" + "---|" * 7]
    for n in names:
        f = ex["res"][n]
        ph = f["phases"]
        first = secs(f.get("first_parent_query"))
        if f.get("first_parent_query_is"):
            first += " (`%s`)" % f["first_parent_query_is"]
        rows.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            labels[n], first, secs(f["last_query_old"]), secs(f["first_query_new"]),
            *["%d / %d" % (ph[k]["at_host1"]["old"], ph[k]["at_host1"]["new"]) for k in ("before", "moving", "after")]))
    md.append("Queries at host 1, by the address they arrived on:\n")
    md.append("\n".join(rows) + "\n")
    rows = ["| resolver | host 1 (old) | host 1 (new) | host 2 | host 3 |", "|" + "---|" * 5]
    for n in names:
        ans = {k: sum(p["answers"][k] for p in ex["res"][n]["phases"].values()) for k in ANSWER_OF.values()}
        rows.append("| %s | %d | %d | %d | %d |" % (labels[n], ans["h1-old"], ans["h1-new"], ans["h2"], ans["h3"]))
    md.append("Answers over the whole run, by the address they carried:\n")
    md.append("\n".join(rows) + "\n")
    md.append("## Targets (checked on this run)\n")
    md.append("\n".join("- %s: **%s** (%s)" % (t, "yes" if ok else "no", d) for t, ok, d in targets(ex, labels)) + "\n")
    md.append("""## Expected delay

Host 1 gives out the new address within a second of the file's change
(the file is read four times a second), and the push follows on the
module's next tick. Resolvers that cached the old glue keep sending
host 1's share of the queries to the old address until that glue's TTL
runs out (here %d s, the parent's TTL before the move; the pushed glue
has the `ttl=` of `dns_glue_update`), then ask the parent again and get
the new address: expect every resolver on the new address within the old
glue's TTL plus the push's delay. While host 1 listens on both addresses
nothing fails; once the old address is gone, a resolver that still used
it would ask another host of the NS set.

Software: %s.
""" % (ex["glue_ttl"], ", ".join("%s %s" % kv for kv in results.get("versions", {}).items()) or "not recorded"))
    return "\n".join(md)


def summary_line(results):
    """One sentence for docs/lab.md."""
    ex = results["experiments"]["address-move"]
    res = ex.get("res", {})
    failed = sum(f["failed"] for f in res.values())
    last = max((f["last_query_old"] for f in res.values() if f["last_query_old"] is not None), default=None)
    return ("Host 1 moved to a new address and pushed its glue to a BIND parent (glue TTL %d s): %d "
            "failed resolutions through %d resolvers; the parent served the new glue %s after the move, and "
            "the last query to the old address came %s after it." % (ex["glue_ttl"], failed, len(res),
                                                                     secs(ex.get("parent_changed")), secs(last)))
