"""Several addresses per NS name (experiment "ns-addresses"): nine hosts
behind three NS names, each name with three A records as glue.

Resolvers look at a limited number of name servers per delegation (see
LIMITS: the figures and where in each resolver's source they are), so a
fleet larger than that can only be reached through several addresses per
NS name. This experiment checks that resolvers use those addresses:

- nine hosts (nginx + the module from scripts/lab.d/host.conf, each on its
  own loopback address with its own dns_load_file), delegated from the
  parent as www.example.com NS ns1-www, ns2-www, ns3-www, each name with
  three A records (ns1-www: hosts 1-3, ns2-www: 4-6, ns3-www: 7-9);
- in each phase fresh resolvers (Unbound, BIND 9, PowerDNS Recursor, Knot
  Resolver) get unique names (<unique>.www.example.com) for a bounded time,
  all at once, and the driver counts which host answered (each answers
  with its own address); each host's status counters say how many queries
  reached it;
- phases: A all nine idle; B1 host 1 at load 0.9 (one address of ns1-www
  shedding); B2 hosts 1-3 at load 0.9 (every address of ns1-www); B3 hosts
  1-3 drained; C hosts 1, 4 and 7 drained (one address of each name).

The figures per phase and resolver are stored in the results; conclusions()
turns them into the sentences of docs/lab-ns-addresses.md (report.py).
"""

import time

from .analysis import counter_delta, counters, summarize
from .procs import log, stop, stop_requested
from .topology import Host, add_extra_addresses, example_zone, remove_addresses, start_parent

NS_LABELS = ["ns1-www", "ns2-www", "ns3-www"]
PER_NAME = 3
N_HOSTS = len(NS_LABELS) * PER_NAME
# name, address (glue and listen), relay back-end (unused), status port
HOSTS9 = [("nsa-host%d" % (k + 1), "127.0.3.%d" % (k + 1), "127.0.4.%d" % (k + 1), 8101 + k)
          for k in range(N_HOSTS)]
HOST_OF = {h[1]: k for k, h in enumerate(HOSTS9)}
# Written into every host's configuration: a drained or silent host answers
# REFUSED at once (the module's default; the lab writes it so that the
# figures keep their meaning if the default changes).
SILENCE = "refuse"
EXPLORE_S = 5.0  # the first seconds of a phase, reported apart (exploration)
STEADY_MIN_SHARE = 0.02  # a host "in use" after exploration: at least 2% of the answers

PHASES = [  # name, what, load file text of hosts 1-9
    ("A", "all nine hosts idle", ["0"] * 9),
    ("B1", "host 1 at load 0.9 (one address of ns1-www)", ["0.9"] + ["0"] * 8),
    ("B2", "hosts 1-3 at load 0.9 (every address of ns1-www)", ["0.9"] * 3 + ["0"] * 6),
    ("B3", "hosts 1-3 drained (every address of ns1-www)", ["drain"] * 3 + ["0"] * 6),
    ("C", "hosts 1, 4 and 7 drained (one address of each name)",
     ["drain", "0", "0", "drain", "0", "0", "drain", "0", "0"]),
]

# What each resolver's source limits per delegation, for the installed
# versions and the newest ones: (resolver, limit, where).
LIMITS = [
    ("BIND 9",
     "9.18 (installed 9.18.49): address lookups for at most 20 NS names of an NS set "
     "(`NS_PROCESSING_LIMIT 20`), every address of each name; 9.21.20 and later: "
     "`max-delegation-servers` (default 13, 1-100) counts names and addresses together: "
     "at most 13 server addresses per resolution",
     "isc-projects/bind9: `lib/dns/resolver.c` at v9.18.49 (`NS_PROCESSING_LIMIT`) and at "
     "main (`fctx_getaddresses_addresses`, `fctx_getaddresses_nameservers`); change "
     "c1ba80169c \"Introduce max-delegation-servers configuration option\" (first in v9.21.20)"),
    ("PowerDNS Recursor",
     "`max-ns-per-resolve` (default 13, since 4.5.11/4.6.4/4.7.3/4.8.0): a random sample of "
     "13 NS names when a zone has more; every address of each chosen name, shuffled and then "
     "ordered by measured speed",
     "PowerDNS/pdns: `pdns/syncres.cc` at rec-4.8.8 (`s_maxnsperresolve`, `std::sample`; "
     "`getAddrs`: `shuffle`, `stable_sort` by speed); `pdns/recursordist/rec-rust-lib/table.py` "
     "(the setting's documentation)"),
    ("Unbound",
     "1.17 (installed 1.17.1): no cap on the NS names or addresses of a delegation; at most 16 "
     "address lookups for glueless names per delegation point (`MAX_DP_TARGET_COUNT`) and 64 per "
     "query (`MAX_TARGET_COUNT`); servers are picked at random among all addresses within 400 ms "
     "(`RTT_BAND`) of the fastest; 1.22.0 and later also keep at most 20 records of an NS set "
     "(`iter-scrub-ns`, default 20)",
     "NLnetLabs/unbound: `iterator/iterator.h` and `iterator/iter_utils.c` "
     "(`iter_filter_order`) at release-1.17.1; `util/config_file.c` and "
     "`doc/unbound.conf.5.in` (`iter-scrub-ns`, first in release-1.22.0)"),
    ("Knot Resolver",
     "5.6 (installed 5.6.0) and 6.x: the first 13 NS names of a zone cut; the first A and first "
     "AAAA of each name are free, further addresses share a budget of 8 per zone cut (so 3 names "
     "x 3 addresses = 3 + 6 are all kept; 13 names x 2 addresses would keep 13 + 8); glue from a "
     "referral beyond 26 addresses keeps one address per name (`GLUE_COUNT_THROTTLE`)",
     "CZ-NIC/knot-resolver: `lib/zonecut.c` (`fetch_ns`: `ns_rds.count > 13`, `addr_budget = 8`; "
     "`fetch_addr`) and `lib/layer/iterate.c` (`GLUE_COUNT_THROTTLE = 26`) at v5.6.0 and at "
     "v6.4.2"),
]


def delegation():
    """[(NS label, [glue addresses])]: three names, three hosts each."""
    return [(label, [HOSTS9[n * PER_NAME + i][1] for i in range(PER_NAME)])
            for n, label in enumerate(NS_LABELS)]


def name_of_host(k):
    return k // PER_NAME


def durations(quick):
    """(seconds per phase, queries per second per resolver)."""
    return (15.0, 100) if quick else (40.0, 100)


# ---------------------------------------------------------------- the run

def run(lab):
    """Stops the lab's three hosts, sets up the nine and the parent with
    their delegation, runs every phase with fresh resolvers; stores the
    figures in lab.results["experiments"]["ns-addresses"]."""
    from .experiments import uniq_plan
    dur, rate = durations(lab.quick)
    for h in lab.hosts:
        h.stop()
    added = add_extra_addresses([h[1] for h in HOSTS9])
    hosts = [Host(k, lab.work, lab.nginx, lab.module, spec=HOSTS9[k]) for k in range(N_HOSTS)]
    out = {"duration": dur, "rate": rate, "explore_s": EXPLORE_S, "silence": SILENCE,
           "ns": [{"name": label + ".example.com", "addresses": addrs}
                  for label, addrs in delegation()],
           "hosts": [h[1] for h in HOSTS9], "phases": []}
    lab.results["experiments"]["ns-addresses"] = out
    try:
        stop(lab.parent)
        lab.parent = start_parent(lab.work, example_zone=example_zone(delegation()), tag="nsd-nsa")
        log("ns-addresses: parent delegates www to %s, three addresses each" % ", ".join(NS_LABELS))
        for h in hosts:
            h.start(silence=SILENCE)
        for name, what, loads in PHASES:
            if stop_requested.is_set():
                break
            log("ns-addresses: phase %s, %s: %.0f s at %d/s per resolver" % (name, what, dur, rate))
            for h, v in zip(hosts, loads):
                h.set_load(v)
            time.sleep(1.0)  # the module reads its load file four times a second
            states = [(h.status() or {}).get("state") for h in hosts]
            ready = lab.fresh_resolvers()
            before = [counters(h.status()) for h in hosts]
            t0 = time.monotonic() + 0.2
            recs = lab.run_parallel({r: uniq_plan(t0, rate, int(dur * rate)) for r in ready},
                                    host_of=HOST_OF)
            after = [counters(h.status()) for h in hosts]
            lab.stop_resolvers()
            out["phases"].append({
                "phase": name, "what": what, "loads": loads, "states": states,
                "res": {n: phase_figures(rs, t0) for n, rs in recs.items()},
                "server": [counter_delta(a, b) for a, b in zip(before, after)]})
    finally:
        for h in hosts:
            h.stop()
        remove_addresses(added)
        if not stop_requested.is_set():  # experiments after this one: the usual world
            stop(lab.parent)
            lab.parent = start_parent(lab.work, tag="nsd-after-nsa")
            for h in lab.hosts:
                h.start()


def phase_figures(recs, t0):
    """One resolver's phase: the whole phase, its first EXPLORE_S seconds
    and the rest; when each host first answered (s from the start)."""
    first_use = [None] * N_HOSTS
    for r in recs:
        if r["status"] == "ok" and r["host"] is not None:
            t = round(r["sent"] - t0, 2)
            if first_use[r["host"]] is None or t < first_use[r["host"]]:
                first_use[r["host"]] = t
    return {"all": summarize(recs, N_HOSTS),
            "explore": summarize([r for r in recs if r["sent"] - t0 < EXPLORE_S], N_HOSTS),
            "steady": summarize([r for r in recs if r["sent"] - t0 >= EXPLORE_S], N_HOSTS),
            "first_use_s": first_use}


# ---------------------------------------------------------------- figures and conclusions

def shares(s):
    """Fractions of the answered queries per host, or None without answers."""
    if not s or not s.get("ok"):
        return None
    return [c / s["ok"] for c in s["hosts"]]


def group(sh, ks):
    return None if sh is None else sum(sh[k] for k in ks)


def name_shares(sh):
    return None if sh is None else [group(sh, range(n * PER_NAME, (n + 1) * PER_NAME))
                                    for n in range(len(NS_LABELS))]


def used(s, min_share=0.0):
    """How many hosts answered at all (min_share 0) or at least min_share."""
    sh = shares(s)
    if sh is None:
        return 0
    return sum(1 for c, f in zip(s["hosts"], sh) if c > 0 and f >= min_share)


def pc(f):
    return "—" if f is None else "%.0f%%" % (100 * f)


def join(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def phase(data, name):
    return next((p for p in data["phases"] if p["phase"] == name), None)


def conclusions(data, labels):
    """Sentences computed from the measured phases; labels: {resolver: name
    in the report}, in report order. A sentence is only written when its
    phase was measured."""
    out = []
    names = [n for n in labels if any(n in p["res"] for p in data["phases"])]
    a = phase(data, "A")
    if a:
        counts = {n: used(a["res"][n]["all"]) for n in names if n in a["res"]}
        steady = {n: used(a["res"][n]["steady"], STEADY_MIN_SHARE) for n in counts}
        all9 = [labels[n] for n in counts if counts[n] == N_HOSTS]
        if counts and len(all9) == len(counts):
            out.append("With all nine hosts idle (phase A), all %s resolver families used all "
                       "%d addresses." % (number(len(counts)), N_HOSTS))
        else:
            out.append("With all nine hosts idle (phase A), %s." % join(
                "%s used %d of the %d addresses" % (labels[n], c, N_HOSTS)
                for n, c in counts.items()))
        out.append("After the first %g s, the hosts that still got at least %g%% of a "
                   "resolver's answers (per NS name in brackets): %s." % (
                       data["explore_s"], 100 * STEADY_MIN_SHARE, join(
                           "%s %d (%s)" % (labels[n], c, "+".join(
                               str(x) for x in used_per_name(a["res"][n]["steady"],
                                                             STEADY_MIN_SHARE)))
                           for n, c in steady.items())))
        multi = [labels[n] for n in counts if per_name_max(a["res"][n]["all"]) > 1]
        if multi and len(multi) == len(counts):
            out.append("Every family used more than one address of the same NS name, so "
                       "several addresses per name do reach more hosts than one address "
                       "per name would.")
        elif multi:
            out.append("%s used more than one address of the same NS name; %s used at most "
                       "one per name." % (join(multi), join(labels[n] for n in counts
                                                           if labels[n] not in multi)))
        else:
            out.append("No family used more than one address of any NS name: several "
                       "addresses per name did not reach more hosts here.")
    b1 = phase(data, "B1")
    if a and b1:
        parts = []
        for n in names:
            if n not in a["res"] or n not in b1["res"]:
                continue
            sa, sb = shares(a["res"][n]["all"]), shares(b1["res"][n]["all"])
            if sa is None or sb is None:
                continue
            parts.append("%s %s → %s (hosts 2-3 %s → %s, hosts 4-9 %s → %s)" % (
                labels[n], pc(sa[0]), pc(sb[0]), pc(group(sa, [1, 2])), pc(group(sb, [1, 2])),
                pc(group(sa, range(3, 9))), pc(group(sb, range(3, 9)))))
        if parts:
            out.append("Host 1 at load 0.9 (phase B1), its share against phase A: %s." %
                       join(parts))
    for name, what in (("B2", "at load 0.9"), ("B3", "drained")):
        b = phase(data, name)
        if a and b:
            parts = ["%s %s → %s (the largest share of one host %s)" % (
                labels[n], pc(group(shares(a["res"][n]["all"]), [0, 1, 2])),
                pc(group(shares(b["res"][n]["all"]), [0, 1, 2])),
                pc(max(shares(b["res"][n]["all"]) or [None])))
                for n in names if n in a["res"] and n in b["res"]]
            out.append("Every address of ns1-www %s (phase %s), the share of hosts 1-3: %s." %
                       (what, name, join(parts)))
    for name, drained in (("B3", [0, 1, 2]), ("C", [0, 3, 6])):
        p = phase(data, name)
        server = (p or {}).get("server") or []
        if server and all(x is not None for x in server):
            total = sum(x["queries"] for x in server)
            to_drained = sum(server[k]["queries"] for k in drained)
            refused = sum(server[k]["refused"] for k in drained)
            clients = sum(s["all"]["sent"] for s in p["res"].values())
            if total and clients:
                out.append("In phase %s the drained hosts still received %s of the queries that "
                           "reached any host (all resolvers together, %.2f per client query)%s." % (
                               name, pc(to_drained / total), to_drained / clients,
                               ", %s of them answered REFUSED" % pc(refused / to_drained)
                               if to_drained else ""))
    c = phase(data, "C")
    if c:
        parts = []
        for n in names:
            if n not in c["res"]:
                continue
            sc = shares(c["res"][n]["all"])
            if sc is None:
                continue
            others = [k for k in range(N_HOSTS) if k % PER_NAME]
            parts.append("%s: drained hosts %s, per name %s, other hosts used %d of %d" % (
                labels[n], pc(group(sc, [0, 3, 6])), " / ".join(pc(x) for x in name_shares(sc)),
                sum(1 for k in others if c["res"][n]["all"]["hosts"][k] > 0), len(others)))
        if parts:
            out.append("One address of each name drained (phase C): %s." % "; ".join(parts))
    fails = []
    for p in data["phases"]:
        for n in names:
            s = p["res"].get(n, {}).get("all")
            if s and s["sent"] - s["ok"]:
                fails.append("%s in phase %s: %d of %d" % (labels[n], p["phase"],
                                                          s["sent"] - s["ok"], s["sent"]))
    out.append("Unanswered or failed queries: %s." % (join(fails) if fails else "none"))
    return out


def used_per_name(s, min_share=0.0):
    """Per NS name, how many of its addresses answered (at least min_share)."""
    sh = shares(s)
    if sh is None:
        return [0] * len(NS_LABELS)
    return [sum(1 for k in range(n * PER_NAME, (n + 1) * PER_NAME)
                if s["hosts"][k] > 0 and sh[k] >= min_share) for n in range(len(NS_LABELS))]


def per_name_max(s):
    """The most addresses of one NS name that answered."""
    return max(sum(1 for k in range(n * PER_NAME, (n + 1) * PER_NAME) if s["hosts"][k] > 0)
               for n in range(len(NS_LABELS)))


def number(n):
    return {1: "one", 2: "two", 3: "three", 4: "four"}.get(n, str(n))
