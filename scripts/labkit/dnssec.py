"""The signed chain: the private root, com. and example.com. signed with
BIND's dnssec-signzone, example.com. holding the DS records of
www.example.com, the hosts signing with dns_dnssec_key, and every resolver
validating from the private root's trust anchor.

For each mode (one key shared by the hosts; a key per host, multi-signer)
and each host alone (the others stopped, so every answer comes from it;
fresh resolver caches), every resolver is asked with AD=1 and DO=1 for
www.example.com A, a name the wildcard answers, a NODATA (TXT) and an
NXDOMAIN (a name below *.www.example.com); each must validate (AD=1).
Negative controls: every host signs with a key the parent has no DS for,
and every validating resolver must answer SERVFAIL; only host 1 does, and
the resolvers must keep validating the other hosts' answers and never
return host 1's.

After the shared-key rounds, with all three hosts serving, zonemaster-cli
(when installed) runs its DNSSEC, Delegation and Consistency test modules
against www.example.com from the private root's hints, IPv4 only; the
results keep its message counts by module and level and every message at
NOTICE or above.

Then, still with the shared key and the validating resolvers, short runs
of the open-loop experiments (the Lab's sweep, drain and failover runs,
with the quick mode's figures) check that shedding, drain and failover
still hold: the driver asks with AD=1 and DO=1 and records the AD bit of
every answer; hosts 2 and 3 run at load 0.6 (2 ms later), so that host 1
is the server the resolvers prefer (see scenarios()).
"""

import json
import os
import random
import select
import socket
import struct
import subprocess
import time

from .dnswire import build_query, parse_response
from .procs import log, start, stop
from .topology import HOSTS, ZONE, parent_dir, root_hints, zone_files

CHECKS = [  # what, name, qtype, expected rcode (0 NOERROR, 3 NXDOMAIN)
    ("A", ZONE, 1, 0),
    ("wildcard A", "w%06x." + ZONE, 1, 0),
    ("NODATA", ZONE, 16, 0),
    ("NXDOMAIN", "n%06x.*." + ZONE, 1, 3),
]
# Mixed mode: unique names through the three hosts, one of them bad.
MIXED_QUERIES = 10
MODES = ["shared", "multi", "no-ds", "mixed"]
# Zonemaster's test modules run against the shared-key delegation.
ZONEMASTER_MODULES = ["DNSSEC", "Delegation", "Consistency"]
ZONEMASTER_LEVELS = ["CRITICAL", "ERROR", "WARNING", "NOTICE", "INFO", "DEBUG"]
# Shedding, drain and failover with validation on (scenarios()): host 1's
# loads for the shedding rows, the load of hosts 2 and 3 in all three, and
# the unique names and rate per resolver of each shedding row.
SCENARIO_SHED_LOADS = [0.0, 0.95, 1.0]
SCENARIO_OTHERS = ("0.6", "0.6")
SCENARIO_COUNT, SCENARIO_RATE = 300, 100
SCENARIO_TTL = 10  # seconds: the hosts' dns_ttl (topology.Host.start's default)
# The two resolver set-ups the scenarios run with: wildcard synthesis from
# the validated cache (RFC 8198) turned off where the resolver allows it, so
# that every unique name reaches a host as in the open-loop lab (all three
# scenarios); and the resolvers' defaults, which synthesize (drain with the
# module's default silence, and failover).
SCENARIO_VARIANTS = [
    {"name": "no synthesis", "synthesis": False, "sweep": True, "silences": ["drop", "refuse"],
     "failover": True},
    {"name": "resolver defaults", "synthesis": True, "sweep": False, "silences": ["refuse"],
     "failover": True},
]
# Messages that the private lab topology explains (not DNSSEC): tag -> why.
ZONEMASTER_EXPECTED = {
    "NO_IPV6_NS_CHILD": "the lab's hosts listen on IPv4 loopback addresses only; topology, not DNSSEC",
    "NO_IPV6_NS_DEL": "the delegation's glue is IPv4 only, as the hosts are; topology, not DNSSEC",
}


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout.strip()


def keygen(d, name):
    """A new ECDSA P-256 key for `name` in d; its file prefix."""
    return os.path.join(d, run(["dnssec-keygen", "-q", "-K", d, "-a", "ECDSAP256SHA256", "-f", "KSK",
                                "-n", "ZONE", name]))


def ds_of(prefix):
    """The DS record (SHA-256) of a key, as `dnssec-dsfromkey -2` prints it."""
    return run(["dnssec-dsfromkey", "-2", prefix + ".key"])


def signed_parent(work, www_keys):
    """NSD on the parent's address serving the root, com. and example.com.,
    each signed with its own key, example.com. with the DS of every key in
    www_keys. Returns (NSD process, DS record of the root key: the trust
    anchor)."""
    d = os.path.join(work, "nsd-signed-%d" % random.randrange(1 << 30))
    os.makedirs(d)
    zone_files(d)
    keys = {origin: keygen(d, origin) for origin in (".", "com.", "example.com.")}
    extra = {
        "root.zone": ds_of(keys["com."]),
        "com.zone": ds_of(keys["example.com."]),
        "example.com.zone": "\n".join(ds_of(k) for k in www_keys),
    }
    for (name, origin) in [("example.com.zone", "example.com."), ("com.zone", "com."), ("root.zone", ".")]:
        path = os.path.join(d, name)
        with open(path, "a") as f:
            f.write(extra[name] + "\n")
        run(["dnssec-signzone", "-q", "-S", "-z", "-K", d, "-o", origin, "-f", path + ".signed", path], cwd=d)
    with open(os.path.join(parent_dir(work), "nsd.conf")) as f:
        conf = f.read().replace(parent_dir(work), d).replace('.zone"', '.zone.signed"')
    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write(conf)
    p = start(["nsd", "-d", "-c", os.path.join(d, "nsd.conf")], os.path.join(d, "stdout.log"))
    time.sleep(1.0)
    return p, ds_of(keys["."])


def ask_validating(server, name, qtype, timeout=5.0, tries=3):
    """A recursive query with AD=1 and DO=1: (rcode, AD bit, A addresses),
    or None when no answer came."""
    for _ in range(tries):
        qid = random.randrange(65536)
        q = build_query(qid, name, qtype, dnssec=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((server, 53))
            s.send(q)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                r, _, _ = select.select([s], [], [], end - time.monotonic())
                if not r:
                    break
                try:
                    msg = s.recv(4096)
                except OSError:
                    break
                if len(msg) < 12 or struct.unpack(">H", msg[:2])[0] != qid:
                    continue
                flags = struct.unpack(">H", msg[2:4])[0]
                return flags & 0xF, bool(flags & 0x20), answer_addresses(msg)
    return None


def answer_addresses(msg):
    try:
        return parse_response(msg)[3]
    except (ValueError, struct.error, IndexError):
        return []


def host_keys(work, mode):
    """(dns_dnssec_* lines per host, keys the parent has a DS for)."""
    d = os.path.join(work, "keys-%s" % mode)
    os.makedirs(d)
    if mode == "multi":
        keys = [keygen(d, ZONE) for _ in HOSTS]
        published = " ".join(k + ".key" for k in keys)
        return ["dns_dnssec_key %s;\n        dns_dnssec_public_keys %s;" % (k, published) for k in keys], keys
    good, rogue = keygen(d, ZONE), keygen(d, ZONE)
    line = {"good": "dns_dnssec_key %s;" % good, "rogue": "dns_dnssec_key %s;" % rogue}
    if mode == "shared":
        return [line["good"]] * len(HOSTS), [good]
    if mode == "no-ds":
        return [line["rogue"]] * len(HOSTS), [good]
    return [line["rogue"]] + [line["good"]] * (len(HOSTS) - 1), [good]  # mixed


def rounds(mode):
    """(round name, hosts running, queries: [(what, name, qtype)]) of a mode."""
    if mode in ("shared", "multi"):
        return [("host %d" % (i + 1), [i], [(w, n, t) for w, n, t, _ in CHECKS]) for i in range(len(HOSTS))]
    if mode == "no-ds":
        return [("all hosts", list(range(len(HOSTS))), [("A", ZONE, 1)])]
    names = [("wildcard A %d" % k, "m%06x." + ZONE, 1) for k in range(MIXED_QUERIES)]
    return [("all hosts", list(range(len(HOSTS))), names)]


def exp_dnssec(lab):
    """Runs every mode; leaves the unsigned parent and hosts as it found them."""
    stop(lab.parent)
    # idle hosts: the rounds check signatures, not shedding (an experiment
    # before this one may have left host 1 loaded)
    lab.loads("0", "0", "0")
    out = {"modes": {}}
    try:
        for mode in MODES:
            lines, ds_keys = host_keys(lab.work, mode)
            parent, anchor = signed_parent(lab.work, ds_keys)
            out["anchor_" + mode] = anchor
            rows = out["modes"][mode] = {}
            try:
                for round_name, running, queries in rounds(mode):
                    for h in lab.hosts:
                        h.stop()
                    for i in running:
                        lab.hosts[i].start(dnssec=lines[i])
                    for r in lab.resolvers:
                        r.anchor = anchor
                    for r in lab.fresh_resolvers():
                        got = rows.setdefault(r.name, {}).setdefault(round_name, {})
                        for what, name, qtype in queries:
                            name = name % random.randrange(1 << 24) if "%" in name else name
                            t = time.monotonic()
                            a = ask_validating(r.addr, name, qtype)
                            got[what] = None if a is None else {"rcode": a[0], "ad": a[1], "addrs": a[2],
                                                                "seconds": round(time.monotonic() - t, 2)}
                        log("dnssec %s, %s, %s: %s" % (mode, round_name, r.label, got))
                    lab.stop_resolvers()
                if mode == "shared":
                    for h in lab.hosts:
                        h.stop()
                    for i, h in enumerate(lab.hosts):
                        h.start(dnssec=lines[i])
                    out["zonemaster"] = zonemaster(lab.work)
                    log("zonemaster: %s" % {k: v for k, v in out["zonemaster"].items() if k != "messages"})
                    t = time.monotonic()
                    out["scenarios"] = scenarios(lab, lines)
                    out["scenarios"]["seconds"] = round(time.monotonic() - t, 1)
            finally:
                stop(parent)
    finally:
        for r in lab.resolvers:
            r.anchor = None
        lab.start_hosts()
        lab.parent = start(["nsd", "-d", "-c", os.path.join(parent_dir(lab.work), "nsd.conf")],
                           os.path.join(parent_dir(lab.work), "stdout.log"))
        time.sleep(1.0)
    lab.results["experiments"]["dnssec"] = out


def scenarios(lab, lines):
    """Shedding, drain and failover with every host signing (its lines)
    and every resolver validating, through the Lab's own runs: the load
    sweep (host 1 at SCENARIO_SHED_LOADS), the drain and return and the
    failover (host 1's nginx killed), each with the quick mode's figures
    and hosts 2 and 3 at SCENARIO_OTHERS, once per SCENARIO_VARIANTS entry.
    Returns their results; the hosts restart without the lines, the
    resolvers with their defaults, and the driver stops asking for
    validation afterwards."""
    for h, line in zip(lab.hosts, lines):
        h.dnssec = line
    lab.validating = True
    out = {"others": list(SCENARIO_OTHERS), "ttl": SCENARIO_TTL, "variants": []}
    try:
        for v in SCENARIO_VARIANTS:
            t = time.monotonic()
            for r in lab.resolvers:
                r.synthesis = v["synthesis"]
            got = {"name": v["name"], "synthesis": v["synthesis"]}
            if v["sweep"]:
                log("dnssec scenarios, %s: shedding (host 1 at %s)" % (v["name"], SCENARIO_SHED_LOADS))
                got["sweep"] = {"count": SCENARIO_COUNT, "rate": SCENARIO_RATE, "rows": lab.sweep_rows(
                    SCENARIO_SHED_LOADS, SCENARIO_COUNT, SCENARIO_RATE, others=SCENARIO_OTHERS, reps=1,
                    refuse=False)}
            dur, drain_at, up_at, rate = lab.drain_params(True)
            log("dnssec scenarios, %s: drain" % v["name"])
            got["drain"] = {"duration": dur, "drain_at": drain_at, "up_at": up_at, "rate": rate, "runs": [
                lab.drain_run(silence, dur, drain_at, up_at, rate, others=SCENARIO_OTHERS)
                for silence in v["silences"]]}
            lab.hosts[0].start()
            if v["failover"]:
                log("dnssec scenarios, %s: failover" % v["name"])
                got["failover"] = lab.failover_run(*lab.failover_params(True))
            got["seconds"] = round(time.monotonic() - t, 1)
            out["variants"].append(got)
        return out
    finally:
        for h in lab.hosts:
            h.dnssec = ""
        for r in lab.resolvers:
            r.synthesis = True
        lab.validating = False


def zonemaster(work, timeout=300):
    """zonemaster-cli against www.example.com from the private root's hints,
    IPv4 only: {command, version, counts: {module: {level: n}}, messages:
    [NOTICE and above], testcases: {module: [test cases that logged]}, error}."""
    cmd = ["zonemaster-cli", "--hints", root_hints(work), "--no-ipv6", "--level", "DEBUG",
           "--json-stream", "--json-translate", "--no-progress"]
    for m in ZONEMASTER_MODULES:
        cmd += ["--test", m]
    cmd.append(ZONE)
    res = {"command": " ".join(cmd).replace(root_hints(work), "root.hints"), "counts": {},
           "messages": [], "testcases": {}, "error": None}
    try:
        res["version"] = " ".join(subprocess.run(["zonemaster-cli", "--version"], capture_output=True,
                                                 text=True, timeout=60).stdout.split()[:6])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        res["error"] = str(e)
        return res
    entries = []
    for line in p.stdout.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        entries += e.get("results", [e]) if isinstance(e, dict) else []
    if not entries:
        res["error"] = "exit %d, no JSON output: %s" % (p.returncode, (p.stderr or p.stdout)[-500:])
    for e in entries:
        level, module = e.get("level"), e.get("module", "?")
        if level not in ZONEMASTER_LEVELS:
            continue
        cases = res["testcases"].setdefault(module, [])
        if e.get("testcase") and e["testcase"] not in cases:
            cases.append(e["testcase"])
        c = res["counts"].setdefault(module, {})
        c[level] = c.get(level, 0) + 1
        if level == "DEBUG" or level == "INFO":
            if module == "DNSSEC":
                tags = res.setdefault("dnssec_tags", {})
                tags[e.get("tag")] = tags.get(e.get("tag"), 0) + 1
        else:
            res["messages"].append({k: e.get(k) for k in ("level", "module", "testcase", "tag", "message", "args")})
    return res


def verdict(mode, round_name, got):
    """Whether a resolver's answers in one round are what the mode expects."""
    if not got:
        return False
    if mode == "no-ds":
        return got.get("A") is not None and got["A"]["rcode"] == 2
    if mode == "mixed":
        # Validated answers from hosts 2 and 3, or SERVFAIL for host 1's:
        # never an answer with host 1's address.
        bad = HOSTS[0][1]
        valid = [a for a in got.values() if a and a["rcode"] == 0 and a["ad"] and a["addrs"]
                 and bad not in a["addrs"]]
        failed = [a for a in got.values() if a and a["rcode"] == 2]
        # no answer with host 1's address is ever accepted; a resolver that
        # took its DNSKEY set from host 1 may hold the zone's keys bogus and
        # fail every name for the DNSKEY TTL (PowerDNS Recursor did)
        return len(valid) + len(failed) == len(got)
    host = HOSTS[int(round_name.split()[-1]) - 1][1]
    for what, _, _, rcode in CHECKS:
        a = got.get(what)
        if a is None or a["rcode"] != rcode or not a["ad"]:
            return False
        if what in ("A", "wildcard A") and a["addrs"][-1:] != [host]:
            return False
    return True


def describe(mode, round_name, got):
    """A table cell: what was seen."""
    if not got:
        return "not run"
    if verdict(mode, round_name, got):
        if mode == "no-ds":
            return "SERVFAIL"
        if mode == "mixed":
            valid = [a for a in got.values() if a["rcode"] == 0]
            if not valid:
                return "SERVFAIL ×%d (none accepted from host 1)" % len(got)
            hosts = sorted({HOST_NAMES[a["addrs"][-1]] for a in valid})
            cell = "AD=1 ×%d, from %s" % (len(valid), " and ".join(hosts))
            if len(valid) < len(got):
                cell += "; SERVFAIL ×%d" % (len(got) - len(valid))
            return cell
        return "AD=1 ×%d" % len(got)
    wrong = []
    for what, a in got.items():
        if a is None:
            wrong.append("%s: no answer" % what)
        else:
            wrong.append("%s: rcode %d AD=%d %s" % (what, a["rcode"], a["ad"], ",".join(a["addrs"])))
    return "**failed**: " + "; ".join(wrong)


HOST_NAMES = {h[1]: "host %d" % (i + 1) for i, h in enumerate(HOSTS)}


def zonemaster_section(zm):
    """The Zonemaster part of the report."""
    if not zm:
        return ""
    head = """## Zonemaster

`zonemaster-cli` (%s) ran the test modules %s against `%s` while all
three hosts served it with the shared key (its DS in the signed
`example.com.`), from the private root's hints, IPv4 only:

    %s

""" % (zm.get("version", "version not recorded"), ", ".join(ZONEMASTER_MODULES), ZONE.rstrip("."),
       zm["command"])
    if zm.get("error"):
        return head + "It did not complete: %s\n" % zm["error"]
    rows = ["| module | " + " | ".join(ZONEMASTER_LEVELS) + " | test cases that logged |",
            "|" + "---|" * (len(ZONEMASTER_LEVELS) + 2)]
    for m in sorted(zm["counts"]):
        rows.append("| %s | " % m + " | ".join(str(zm["counts"][m].get(lv, 0)) for lv in ZONEMASTER_LEVELS)
                    + " | %s |" % ", ".join(zm.get("testcases", {}).get(m, [])))
    text = head + "Messages by level and module (Basic always runs first):\n\n" + ("\n".join(rows) if zm["counts"] else "(no messages)")
    if zm.get("dnssec_tags"):
        text += "\n\nThe DNSSEC module's INFO and DEBUG tags (count): " + ", ".join(
            "`%s` (%d)" % kv for kv in sorted(zm["dnssec_tags"].items())) + "."
    above = [m for m in zm["messages"] if m["level"] != "NOTICE"]
    text += "\n\nMessages above NOTICE: %s\n" % (len(above) or "none")
    for msg in zm["messages"]:
        why = ZONEMASTER_EXPECTED.get(msg["tag"])
        text += "\n- %s %s/%s `%s`: %s%s" % (msg["level"], msg["module"], msg["testcase"], msg["tag"],
                                          " ".join((msg.get("message") or json.dumps(msg.get("args"))).split()),
                                          " (%s)" % why if why else "")
    return text + "\n"


def answers(n):
    return "%d answer%s" % (n, "" if n == 1 else "s")


def fine_pct(part, whole):
    """A share in percent, with a decimal below 1%."""
    if not whole:
        return "–"
    p = 100.0 * part / whole
    return "%.1f%%" % p if 0 < p < 1 else "%d%%" % round(p)


def pct_of(part, whole):
    return "%d%%" % round(100.0 * part / whole) if whole else "–"


def phase_row(phase, label, s):
    """A table row of one summary (analysis.summarize): answers, each
    host's share of them, the share validated (AD=1), SERVFAIL, no answer."""
    ok = s["ok"]
    shares = [pct_of(n, ok) for n in s["hosts"]]
    return "| %s | %s | %d of %d | %s | %s | %d | %d |" % (
        phase, label, ok, s["sent"], " | ".join(shares),
        pct_of(s.get("ad", 0), ok) if "ad" in s else "not asked", s["servfail"], s["timeout"])


PHASE_HEADER = ["| phase | resolver | answers | host 1 | host 2 | host 3 | AD=1 | SERVFAIL | no answer |",
                "|---|---|---|---|---|---|---|---|---|"]


def all_validated(summaries):
    """Every answer with an address had AD=1 and none was SERVFAIL."""
    return all(s.get("ad", -1) == s["ok"] and s["servfail"] == 0 for s in summaries)


def failures(summaries):
    return sum(s["servfail"] for s in summaries), sum(s["timeout"] for s in summaries)


def last_h1_bin(run, name, lo, hi):
    """The start (s) of the last 5 s bin from lo to hi with an answer from
    host 1, or None."""
    starts = [b["start"] for b in run["res"].get(name, []) if lo <= b["start"] < hi and b["hosts"][0]]
    return max(starts) if starts else None


def scenario_checks(v, name, label, ttl):
    """One line per resolver and variant: what held and what did not,
    from the data. With synthesis, an answer synthesized from the
    validated cache may carry host 1's address for up to a TTL after host
    1 stopped answering (also in the no-synthesis runs for a resolver that
    cannot be told not to synthesize); without it, only within the 5 s bin
    in which the module and the resolvers see a drain."""
    said = []
    synthesizes = v["synthesis"] or name not in SYNTHESIS_OFF
    # the 5 s bin in which the module and the resolver see a drain, and
    # the TTL of an answer given just before it
    grace = 5 + (ttl if synthesizes else 0)
    sweep = v.get("sweep")
    rows = [row["res"].get(name) for row in sweep["rows"]] if sweep else []
    if rows and all(rows):
        h1 = [r["hosts"][0] / r["ok"] if r["ok"] else 0.0 for r in rows]
        moved = all(x < h1[0] for x in h1[1:])
        said.append("shedding %s (host 1: %s)" % (
            "holds" if moved and h1[0] >= 0.1 else "**did not move the share**" if h1[0] >= 0.1 else
            "not shown: the resolver did not prefer host 1 at load 0",
            " → ".join("%s at %g" % (fine_pct(r["hosts"][0], r["ok"]), row["load"])
                       for r, row in zip(rows, sweep["rows"]))))
    d = v["drain"]
    for run in d["runs"]:
        ph = {p["phase"]: p for p in run["phases"].get(name, [])}
        if not ph:
            continue
        drained = ph["first 5 s drained"]["hosts"][0] + ph["rest of drain"]["hosts"][0]
        late = last_h1_bin(run, name, d["drain_at"] + grace, d["up_at"])
        last = last_h1_bin(run, name, d["drain_at"], d["up_at"])
        back = ph["first 5 s back"]["hosts"][0] + ph["rest"]["hosts"][0]
        normal = ph["normal"]["hosts"][0]
        sf, lost = failures(ph.values())
        said.append("drain with `dns_silence %s`: %s from host 1 while drained%s, %s; %s; %s%s" % (
            run["silence"], answers(drained),
            "" if last is None else " (the last in the %g–%g s bin)" % (last - d["drain_at"], last - d["drain_at"] + 5),
            "none %g s after `drain`" % grace if late is None else "**some %g s after `drain`**" % grace,
            "%d SERVFAIL, %d unanswered" % (sf, lost),
            "host 1 answered again after `up` (%s)" % answers(back) if back else
            "no answer from host 1 within %g s after `up`" % (d["duration"] - d["up_at"]),
            "" if normal else " (host 1 got no answers before the drain either)"))
    f = v.get("failover", {}).get("res", {}).get(name)
    # a killed host answers nothing more: only a synthesized answer given
    # before the kill may still carry its address, for a TTL
    kill_grace = ttl if synthesizes else 1
    if f:
        h1_last = f["unique_h1_last_s"]
        said.append("failover: %d of %d unique names answered after the kill (%d SERVFAIL, %d unanswered), "
                    "%s; cached names: %s" % (
                        f["after"]["ok"], f["after"]["sent"], f["after"]["servfail"], f["after"]["timeout"],
                        "none from host 1" if not f["after"]["hosts"][0] else
                        "%s from host 1, the last sent %g s after the kill%s" % (
                            answers(f["after"]["hosts"][0]), h1_last,
                            "" if h1_last is not None and h1_last <= kill_grace else
                            " **(later than %g s)**" % kill_grace),
                        "%d failure%s" % (f["cached_failed"], "" if f["cached_failed"] == 1 else "s")))
    summaries = [r for r in rows if r] + [p for run in d["runs"] for p in run["phases"].get(name, [])] \
        + ([f["before"], f["after"]] if f else [])
    said.append("every answer with an address AD=1, no SERVFAIL" if all_validated(summaries) else
                "**%d answers without AD=1, %d SERVFAIL**" % (
                    sum(s["ok"] - s.get("ad", 0) for s in summaries), sum(s["servfail"] for s in summaries)))
    return "- **%s**: %s." % (label, "; ".join(said))


def delay_at(results, load):
    """What a host at `load` does by the module's default curve, as the
    run read it from a status endpoint."""
    points = [p for p in (results.get("module_defaults") or {}).get("curve", []) if p["load"] == load]
    if not points:
        return "later, by the module's default curve"
    return "%g ms later, by the module's default curve" % points[0]["delay_ms"]


SYNTHESIS_OFF = {"unbound": "`aggressive-nsec: no`", "bind": "`synth-from-dnssec no`",
                 "pdns": "`aggressive-nsec-cache-size=0`"}


def scenarios_section(results):
    """Shedding, drain and failover with validation on, from the data."""
    sc = results["experiments"]["dnssec"].get("scenarios")
    if not sc:
        return ""
    names = [n for n in results["resolvers"]]
    label = {n: results["resolvers"][n]["label"] for n in names}
    text = ["""## Shedding, drain and failover with validation on

The open-loop lab's load sweep, drain and failover runs (the same code,
`scripts/labkit/experiments.py`, with the quick mode's figures), with
every host signing with the shared key (its DS in `example.com.`) and the
resolvers validating from the root's trust anchor. The driver asks every
query with AD=1 and DO=1 and records the AD bit. Hosts 2 and 3 run at load
%s (%s), so that the resolvers that follow the fastest server prefer host
1, the host that is loaded, drained or killed. Fresh resolvers (empty
caches) for each run; unique names below `www.example.com`, which the
wildcard answers; TTL %d s.

A validating resolver that has the wildcard's signed answer and the NSEC
that proves a name absent may answer any other name below
`www.example.com` from its cache (RFC 8198, on by default in all four),
without asking a host: for up to a TTL, every unique name then gets the
address that the last host asked gave. The runs are therefore made twice:

- **no synthesis**: the resolvers told not to synthesize (%s), so that
  every unique name reaches a host, as in the open-loop lab: shedding,
  drain with both silences, failover. Knot Resolver has no such setting;
  it synthesizes in both.
- **resolver defaults**: what clients of these resolvers get: drain with
  the module's default silence (`refuse`) and failover. A host is left
  within a TTL instead of at once.

"What held" judges a drained host by the answers that still carry its
address after the 5 s bin in which `drain` was written (the module reads
its load file four times a second), and a killed host by those sent over
a second after the kill; where the resolver synthesizes, a TTL later
(an answer given just before the change may be used for a TTL).
After `dns_silence drop`, a resolver that saw host 1 time out may avoid it
for minutes after `up`; the open-loop lab (`lab.md`, experiment 4) shows
the same without DNSSEC.

Columns: answers with an address (of the queries sent), each host's share
of them, the share of them with AD=1 (validated), SERVFAIL responses, and
queries with no answer within 5 s. %s
""" % (sc["others"][0], delay_at(results, float(sc["others"][0])), sc["ttl"],
       ", ".join("%s %s" % (label[n], SYNTHESIS_OFF[n]) for n in names if n in SYNTHESIS_OFF),
       "The runs took %s." % ", ".join("%g s (%s)" % (v["seconds"], v["name"]) for v in sc["variants"]))]
    for v in sc["variants"]:
        text.append("### %s\n" % v["name"].capitalize())
        if v.get("sweep"):
            rows = v["sweep"]["rows"]
            text.append("""**Shedding.** Host 1's load file at %s; %d unique names per resolver at %d/s
for each. Host 1's state, delay and drop ratio as its status endpoint
reported them: %s.
""" % (", ".join("%g" % r["load"] for r in rows), v["sweep"]["count"], v["sweep"]["rate"],
                "; ".join("load %g: %s, %s ms, drop %s" % (r["load"], r.get("state"), r.get("delay_ms"),
                                                           r.get("drop_ratio")) for r in rows)))
            lines = list(PHASE_HEADER)
            for n in names:
                for r in rows:
                    if n in r["res"]:
                        lines.append(phase_row("host 1 load %g" % r["load"], label[n], r["res"][n]))
            text.append("\n".join(lines) + "\n")
        d = v["drain"]
        text.append("""**Drain and return.** Unique names at %d/s for %g s per resolver; host
1's load file says `drain` from %g s and `up` from %g s; %s. Phases by the
time a query was sent.
""" % (d["rate"], d["duration"], d["drain_at"], d["up_at"], " and ".join(
            "`dns_silence %s` (%s)" % (run["silence"], "the drained host sends nothing" if run["silence"] == "drop"
                                       else "it answers REFUSED, unsigned") for run in d["runs"])))
        lines = list(PHASE_HEADER)
        for run in d["runs"]:
            for n in names:
                for ph in run["phases"].get(n, []):
                    lines.append(phase_row("%s: %s" % (run["silence"], ph["phase"]), label[n], ph))
        text.append("\n".join(lines) + "\n")
        f = v.get("failover")
        if f:
            text.append("""**Failover.** Unique names at %d/s and %d cached names (%d queries per
second) per resolver for %g s; host 1's nginx killed (SIGKILL) at %g s.
Unique names before and after the kill:
""" % (f["unique_rate"], f["cached_names"], f["cached_rate"], f["duration"], f["kill_at"]))
            lines = list(PHASE_HEADER)
            for n in names:
                for when in ("before", "after"):
                    if n in f["res"]:
                        lines.append(phase_row("%s the kill" % when, label[n], f["res"][n][when]))
            text.append("\n".join(lines) + "\n")
        text.append("**What held** (%s):\n\n" % v["name"] + "\n".join(
            scenario_checks(v, n, label[n], sc["ttl"]) for n in names) + "\n")
    return "\n".join(text)


def report(results):
    """docs/lab-dnssec.md from a run's results."""
    ex = results["experiments"]["dnssec"]
    label = {n: results["resolvers"][n]["label"] for n in results["resolvers"]}
    columns = [(mode, name) for mode in MODES for name, _, _ in rounds(mode)]
    titles = {"shared": "shared key", "multi": "multi-signer", "no-ds": "no DS (all hosts)",
              "mixed": "host 1 without DS"}
    header = ["resolver"] + ["%s, %s" % (titles[m], n) if m in ("shared", "multi") else titles[m]
                             for m, n in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in results["resolvers"]:
        cells = [describe(m, n, ex["modes"].get(m, {}).get(name, {}).get(n)) for m, n in columns]
        lines.append("| " + " | ".join([label[name]] + cells) + " |")
    return """# DNSSEC in the resolver lab

Written by `scripts/lab --only dnssec` from the measured data (%s run, %s
build of the module). The lab's private root, `com.` and `example.com.`
are signed with `dnssec-signzone` (one ECDSA P-256 key each);
`example.com.` delegates `www` with the DS records of the hosts' keys.
Every resolver validates from the root's DS record as its only trust
anchor (Unbound `trust-anchor`, BIND `trust-anchors static-ds`, PowerDNS
Recursor `addTA`, Knot Resolver `trust_anchors.add`); every query sets AD
and DO, and every round starts the resolvers with empty caches.

- **shared key, host N**: one key on every host (`dns_dnssec_key`), one
  DS; host N alone runs (the others stopped), so every answer is its own.
  Four queries: `www.example.com A`, a name the wildcard answers, a
  NODATA (`www.example.com TXT`) and an NXDOMAIN (a name below
  `*.www.example.com`). "AD=1 ×4": all four validated, with the expected
  rcode and host N's address in the address answers.
- **multi-signer, host N**: the same with a key per host, every host
  publishing all three (`dns_dnssec_public_keys`), three DS records
  (RFC 8901 model 2).
- **no DS (all hosts)**, a negative control: every host signs with a key
  the parent has no DS for; `www.example.com A` must be SERVFAIL.
- **host 1 without DS**, a negative control: host 1 signs with such a key,
  hosts 2 and 3 with the key of the DS; %d unique names through all three
  must each validate or be SERVFAIL (an answer of host 1 that the resolver
  rejects without asking another host), and none may carry host 1's
  address.

Software: %s.

%s
%s%s""" % (results["mode"], results.get("build", "?"), MIXED_QUERIES,
       ", ".join("%s %s" % kv for kv in results.get("versions", {}).items()) or "not recorded",
       "\n".join(lines), "\n" + zonemaster_section(ex.get("zonemaster")) if ex.get("zonemaster") else "",
       "\n" + scenarios_section(results) if ex.get("scenarios") else "")
