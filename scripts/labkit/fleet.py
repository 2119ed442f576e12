"""The population model (popsim.py) where the lab cannot go: thousands of
resolvers, fleets of 3-40 hosts in several regions, a regional outage, and
delegations with more name servers than resolvers use.

Hosts have 100, 100 and 200 request slots in turn and are grouped in
regions (hosts 0..N/R-1 in region 0 and so on); resolvers take the four
families and the regions in turn. A resolver is 1-15 ms from the hosts of
its own region and 30-200 ms from the others (a base per pair of regions,
30-180 ms, plus 0-20 ms per resolver and host), drawn from a seed per
resolver in host order, so that a host keeps its distances when the fleet
grows. The service name is delegated to NS names that each carry one or
more of the hosts' addresses (host h under name h mod m).

Usage (from scripts/): python3 -m labkit.popsim fleet [--quick]
[--json ../docs/popsim.json] [--out ../docs/popsim.md] (about 4 minutes;
--from-json FILE writes the document from saved results); tests:
python3 -m unittest labkit.test_popsim.
"""

import json
import os
import random
import time

from . import popsim

FAMILIES = ("unbound", "bind", "pdns", "kresd")
CAPACITY_CYCLE = (100, 100, 200)
SAME_REGION_MS = (1.0, 15.0)
REGION_PAIR_MS = (30.0, 180.0)
PAIR_JITTER_MS = 20.0
DISTANCE_SEED = 17
MEAN_WINDOW = 5  # s: loads are averaged over this for swing and settling, as in the lab
SETTLE_BAND = 0.10  # settled: every host's averaged load within this of its final level
FAMILY_NAMES = {"unbound": "Unbound", "bind": "BIND 9.18", "bind921": "BIND 9.21", "pdns": "PowerDNS",
                "kresd": "Knot Resolver"}


def hosts(n, regions):
    """Capacities and regions of a fleet of n hosts in `regions` regions."""
    return ([CAPACITY_CYCLE[i % len(CAPACITY_CYCLE)] for i in range(n)],
            [i * regions // n for i in range(n)])


def resolvers(n, regions, bind="bind", only=None):
    """Families and regions of n resolvers (the four families in turn, each
    family spread evenly over the regions); bind: the rule BIND follows
    ("bind": 9.18, "bind921": 9.21); only: every resolver of this family."""
    fams = [(bind if f == "bind" else f) for f in (FAMILIES[k % 4] for k in range(n))]
    if only:
        fams = [only] * n
    return fams, [(k // 4) % regions for k in range(n)]


def distances(resolver_region, host_region, seed=DISTANCE_SEED):
    """Round-trip ms from each resolver to each host: 1-15 ms within its
    region, a base per pair of regions plus 0-20 ms across; reproducible per
    resolver and host from the seed."""
    regions = max(max(resolver_region), max(host_region)) + 1
    base = {}
    for a in range(regions):
        for b in range(a + 1, regions):
            base[a, b] = base[b, a] = random.Random("%d:region:%d:%d" % (seed, a, b)).uniform(*REGION_PAIR_MS)
    out = []
    for k, g in enumerate(resolver_region):
        rng = random.Random(seed * 1000003 + k)
        row = []
        for hr in host_region:
            same, jitter = rng.uniform(*SAME_REGION_MS), rng.uniform(0, PAIR_JITTER_MS)
            row.append(round(same if hr == g else base[g, hr] + jitter, 1))
        out.append(row)
    return out


def delegation(n_hosts, names):
    """`names` NS names carrying the n hosts' addresses: host h under name h
    mod names (so a name's addresses lie in several regions)."""
    return [[h for h in range(n_hosts) if h % names == j] for j in range(names)]


def curve(policy):
    from .closedloop import POLICIES
    return popsim.curve_of(POLICIES[policy], None)


def setting(n_hosts, regions, n_resolvers, names=None, bind="bind", only=None):
    """Hosts, resolvers, distances and delegation (`names` NS names; None:
    one per host) of one fleet."""
    cap, hreg = hosts(n_hosts, regions)
    fams, rreg = resolvers(n_resolvers, regions, bind, only)
    return {"capacity": cap, "host_region": hreg, "families": fams, "resolver_region": rreg,
            "distances": distances(rreg, hreg), "delegation": delegation(n_hosts, names or n_hosts)}


def run(st, policy, offered, seconds, seed=1, demand=None, events=(), info=None):
    return popsim.simulate(st["capacity"], curve(policy), st["families"], st["distances"], offered, seconds,
                           seed=seed, events=events, host_region=st["host_region"],
                           resolver_region=st["resolver_region"], demand=demand,
                           delegation=st["delegation"], info=info)


def figures(samples, capacity, a, b, hosts_of=None):
    """Peak one-second load, largest swing of a host's 5 s mean, failed and
    delayed (a resolver timeout on the way) shares of the sessions, mean load
    per host and the share of the sessions per host against its share of
    the capacity, over [a, b); hosts_of: only these hosts' loads."""
    w = popsim.window(samples, a, b)
    sel = [s for s in samples if a <= s["t"] < b]
    hs = list(range(len(capacity))) if hosts_of is None else list(hosts_of)
    total = float(sum(capacity))
    cap_share = [c / total for c in capacity]
    ratio = [w["share"][h] / cap_share[h] for h in range(len(capacity))]
    sessions = max(1, w["sessions"])
    return {"peak": max(w["peak_load"][h] for h in hs),
            "swing": round(max(popsim.swing(samples, a, b, h) for h in hs), 3),
            "failed_pct": round(100.0 * w["failed"] / sessions, 2),
            "delayed_pct": round(100.0 * sum(s.get("delayed", 0) for s in sel) / sessions, 2),
            "mean_load": w["mean_load"], "share": w["share"],
            "min_load": min(w["mean_load"][h] for h in hs), "max_load": max(w["mean_load"][h] for h in hs),
            "share_gap": round(100 * max(abs(w["share"][h] - cap_share[h]) for h in range(len(capacity))), 1),
            "min_ratio": round(min(ratio), 2), "max_ratio": round(max(ratio), 2),
            "idle_hosts": sum(1 for x in w["share"] if x == 0), "sessions": w["sessions"],
            "hot_pct": round(100.0 * sum(1 for smp in sel for h in hs if smp["load"][h] >= 0.9) /
                             max(1, len(sel) * len(hs)), 2)}


def settle(samples, hs, event_at, b):
    """Seconds after event_at until every host in hs keeps its 5 s mean load
    within SETTLE_BAND of its final level (the mean of the last quarter of
    [event_at, b)), as the lab computes it; None: not within the window."""
    tail = b - (b - event_at) / 4.0
    last_out = event_at
    for h in hs:
        series = [(s["t"], s["load"][h]) for s in samples]
        means = []
        for i, (t, _) in enumerate(series):
            vals = [v for _, v in series[max(0, i - MEAN_WINDOW + 1):i + 1]]
            means.append((t, sum(vals) / len(vals)))
        final = [v for t, v in means if tail <= t < b]
        level = sum(final) / len(final) if final else 0.0
        for t, v in means:
            if event_at <= t < b and abs(v - level) > SETTLE_BAND:
                last_out = max(last_out, t)
    return round(last_out - event_at, 1) if last_out < tail else None


def region_settle(samples, capacity, region_hosts, event_at, b):
    """settle() for the capacity-weighted load of each group of hosts."""
    series = []
    for hs in region_hosts:
        cap = float(sum(capacity[h] for h in hs))
        series.append([sum(s["load"][h] * capacity[h] for h in hs) / cap for s in samples])
    merged = [{"t": s["t"], "load": [x[i] for x in series]} for i, s in enumerate(samples)]
    return settle(merged, range(len(region_hosts)), event_at, b)


def views(resolver_objs, n_hosts):
    """Per family: the mean number of hosts one resolution may pick from,
    and the hosts that no resolver of the family can ever pick."""
    out = {}
    for r in resolver_objs:
        d = out.setdefault(r.rule, {"n": 0, "per_query": 0.0, "seen": set()})
        d["n"] += 1
        if r.rule == "pdns" and len(r.names) > popsim.PDNS_NS_PER_RESOLVE:
            per_query = popsim.PDNS_NS_PER_RESOLVE * float(len(r.view)) / len(r.names)
        else:
            per_query = len(r.view)
        d["per_query"] += per_query
        d["seen"].update(r.view)
    return {f: {"per_query": round(d["per_query"] / d["n"], 1), "unseen": n_hosts - len(d["seen"])}
            for f, d in out.items()}


# ---------------------------------------------------------------- experiments

def fleet_sizes(sizes=(3, 6, 13, 20, 40), policies=("default", "previous"), n_resolvers=2000, regions=3,
                offered=0.7, seconds=180, warmup=60, seeds=(1,)):
    """(a) Fleets of `sizes` hosts in `regions` regions, every host reachable
    (min(N, 13) NS names), n_resolvers resolvers, steady offered load."""
    rows = []
    for n in sizes:
        st = setting(n, regions, n_resolvers, names=min(n, 13))
        for policy in policies:
            per_seed = []
            for seed in seeds:
                s = run(st, policy, [(0, offered)], seconds, seed=seed)
                per_seed.append(figures(s, st["capacity"], warmup, seconds))
            rows.append(dict(mean_figures(per_seed), hosts=n, policy=policy, names=min(n, 13),
                             capacity=sum(st["capacity"])))
    return {"resolvers": n_resolvers, "regions": regions, "offered": offered, "seconds": seconds,
            "warmup": warmup, "seeds": list(seeds), "rows": rows}


def family_figures(samples, a, b):
    """Per resolver family over [a, b): sessions, and the shares that got no
    address, were sent to a full host, or met a resolver timeout."""
    out = {}
    for smp in samples:
        if a <= smp["t"] < b:
            for f, v in smp["families"].items():
                o = out.setdefault(f, [0, 0, 0, 0])
                for i in range(4):
                    o[i] += v[i]
    res = {}
    for f, (ok, noaddr, full, delayed) in out.items():
        n = max(1, ok + noaddr + full)
        res[f] = {"sessions": ok + noaddr + full, "no_address_pct": round(100.0 * noaddr / n, 2),
                  "full_pct": round(100.0 * full / n, 2), "delayed_pct": round(100.0 * delayed / n, 2)}
    return res


def family_share(samples, hs, a, b):
    """Per family: the share of its sessions over [a, b) that went to the
    hosts hs (samples with family_hosts)."""
    tot, part = {}, {}
    for smp in samples:
        if a <= smp["t"] < b:
            for f, per_host in smp.get("family_hosts", {}).items():
                tot[f] = tot.get(f, 0) + sum(per_host)
                part[f] = part.get(f, 0) + sum(per_host[h] for h in hs)
    return {f: round(part[f] / float(tot[f]), 3) for f in tot if tot[f]}


def herds(n_hosts=40, counts=(200, 2000, 8000), policies=("default", "previous"), regions=3, offered=0.7,
          seconds=180, warmup=60, seed=1):
    """The same fleet and offered load spread over fewer or more resolvers:
    fewer resolvers are bigger herds."""
    rows = []
    for n in counts:
        st = setting(n_hosts, regions, n, names=min(n_hosts, 13))
        for policy in policies:
            s = run(st, policy, [(0, offered)], seconds, seed=seed)
            rows.append(dict(figures(s, st["capacity"], warmup, seconds), resolvers=n, policy=policy,
                             per_resolver=round(offered * sum(st["capacity"]) / 3.0 / n, 2)))
    return {"hosts": n_hosts, "regions": regions, "offered": offered, "seconds": seconds, "warmup": warmup,
            "rows": rows}


def mean_figures(per_seed):
    keys = ("peak", "swing", "failed_pct", "delayed_pct", "min_load", "max_load", "share_gap", "min_ratio",
            "max_ratio", "hot_pct")
    out = {k: round(sum(f[k] for f in per_seed) / len(per_seed), 3) for k in keys}
    out["idle_hosts"] = max(f["idle_hosts"] for f in per_seed)
    return out


def regional_outage(policies=("default", "previous"), regions=3, per_region=4, n_resolvers=2000,
                    demand=(0.5, 0.3, 0.2), offered=0.5, kill_at=100, return_at=200, seconds=320, seed=1):
    """(b) `regions` regions of `per_region` hosts, regional demand, every
    host of region 0 (the busiest) killed at kill_at and back at return_at."""
    n = regions * per_region
    st = setting(n, regions, n_resolvers, names=min(n, 13))
    region_hosts = [[h for h in range(n) if st["host_region"][h] == g] for g in range(regions)]
    survivors = [h for h in range(n) if st["host_region"][h] != 0]
    rows = []
    for policy in policies:
        s = run(st, policy, [(0, offered)], seconds, seed=seed, demand=[(0, list(demand))],
                events=[(kill_at, "region-kill", 0), (return_at, "region-return", 0)],
                info={"track_family_hosts": True})
        warm = kill_at * 0.4
        before = figures(s, st["capacity"], warm, kill_at)
        during = figures(s, st["capacity"], kill_at, return_at, hosts_of=survivors)
        after = figures(s, st["capacity"], return_at, seconds)
        region_load = lambda f: [round(sum(f["mean_load"][h] * st["capacity"][h] for h in hs) /
                                       sum(st["capacity"][h] for h in hs), 2) for hs in region_hosts]
        rows.append({"policy": policy,
                     "before": dict(before, region_load=region_load(before)),
                     "during": dict(during, region_load=region_load(during),
                                    settle_s=settle(s, survivors, kill_at, return_at),
                                    region_settle_s=region_settle(s, st["capacity"], region_hosts[1:],
                                                                  kill_at, return_at),
                                    families=family_figures(s, kill_at, return_at)),
                     "after": dict(after, region_load=region_load(after),
                                   settle_s=settle(s, range(n), return_at, seconds),
                                   region_settle_s=region_settle(s, st["capacity"], region_hosts,
                                                                 return_at, seconds)),
                     "region1_share": {"before": family_share(s, region_hosts[0], warm, kill_at),
                                       "after": family_share(s, region_hosts[0], return_at, seconds),
                                       "last_minute": family_share(s, region_hosts[0], seconds - 60, seconds)}})
    region_capacity = [sum(st["capacity"][h] for h in hs) for hs in region_hosts]
    return {"regions": regions, "per_region": per_region, "resolvers": n_resolvers, "demand": list(demand),
            "offered": offered, "kill_at": kill_at, "return_at": return_at, "seconds": seconds,
            "region_capacity": region_capacity, "rows": rows}


def ns_limits(n_hosts=40, layouts=(40, 20, 13, 8, 4), binds=("bind", "bind921"),
              alone=("bind", "bind921", "pdns"), alone_layouts=(40, 13, 8), policy="default",
              n_resolvers=2000, regions=3, offered=0.7, seconds=180, warmup=60, seed=1):
    """(c) One fleet of n_hosts behind `layouts` NS names (the hosts'
    addresses spread over them), with the four families under each BIND
    rule, and populations of one family alone."""
    cases = [(None, bind, m) for bind in binds for m in layouts]
    cases += [(only, "bind", m) for only in alone for m in alone_layouts]
    rows = []
    for only, bind, m in cases:
        st = setting(n_hosts, regions, n_resolvers, names=m, bind=bind, only=only)
        info = {}
        s = run(st, policy, [(0, offered)], seconds, seed=seed, info=info)
        f = figures(s, st["capacity"], warmup, seconds)
        sizes = sorted({len(x) for x in st["delegation"]})
        rows.append(dict(f, population=only or "all", bind=bind, names=m,
                         per_name="-".join(str(x) for x in sizes), views=views(info["resolvers"], n_hosts)))
    return {"hosts": n_hosts, "resolvers": n_resolvers, "regions": regions, "policy": policy,
            "offered": offered, "seconds": seconds, "warmup": warmup, "rows": rows}


def experiments(quick=False):
    """All three; quick: fewer resolvers and shorter runs (for a look, not
    for the doc)."""
    t0 = time.time()
    if quick:
        out = {"fleet": fleet_sizes(sizes=(3, 13, 40), n_resolvers=400, seconds=90, warmup=30),
               "herds": herds(counts=(100, 400), seconds=90, warmup=30),
               "outage": regional_outage(n_resolvers=400, kill_at=60, return_at=120, seconds=180),
               "ns": ns_limits(layouts=(40, 8), alone=("bind",), alone_layouts=(40,), n_resolvers=400,
                               seconds=90, warmup=30)}
    else:
        out = {"fleet": fleet_sizes(seeds=(1, 2)), "herds": herds(), "outage": regional_outage(),
               "ns": ns_limits()}
    out["quick"] = quick
    out["elapsed_s"] = round(time.time() - t0)
    return out


# ---------------------------------------------------------------- the document

SOURCES = """What each resolver family uses of a delegation with many NS names,
as read in the resolvers' source and documentation (the versions the lab
runs: BIND 9.18.49, PowerDNS Recursor 4.8.8, Unbound 1.17.1, Knot Resolver
5.6.0), and how the model applies it (`Resolver.visible` and
`Resolver.candidates` in popsim.py):

- **BIND 9.18 and 9.20** look up addresses for at most the first 20 NS
  records of a delegation (`NS_PROCESSING_LIMIT`, added against
  CVE-2022-2795; `fctx_getaddresses()` in
  [lib/dns/resolver.c](https://github.com/isc-projects/bind9/blob/v9.18.49/lib/dns/resolver.c)),
  and use every address of each of them, choosing the lowest smoothed RTT.
  The records are taken in the order the cache iterates them, which is
  DNSSEC (canonical) order ([lib/dns/rdataslab.c](https://github.com/isc-projects/bind9/blob/v9.18.49/lib/dns/rdataslab.c)):
  every BIND resolver takes the same 20. Model: the first 20 NS names of
  the delegation, every address of each (`bind`).
- **BIND 9.21.20 and later** replace that limit with `max-delegation-servers`
  (default 13, 1–100; release note of 9.21.20: "the maximum number of
  processed delegation nameservers … default 13, replacing the hardcoded
  NS_PROCESSING_LIMIT (20)"). In `resolver.c` the limit counts name-server
  *addresses*: at most 13 NS records of a referral are cached
  (`cache_delegns()`), and one resolution uses at most 13 addresses over all
  NS names and glue (`ns_processed`, shared by
  `fctx_getaddresses_addresses()` and `fctx_getaddresses_nameservers()`;
  the source says "the maximum number of nameserver names and addresses
  used for this resolution is at most `max_delegation_servers`"). Several
  addresses per NS name do not widen what one BIND 9.21 resolver sees
  beyond 13 hosts.
  Model: the NS names in the order of the referral the resolver got (a
  random order per resolver), at most 13 of them, and their addresses up
  to 13 in all (`bind921`).
- **PowerDNS Recursor** (4.5.11, 4.6.4, 4.7.3, 4.8.0 and later):
  `max-ns-per-resolve`, default 13: "If a zone has more than
  max-ns-per-resolve NS records, a random sample of this size will be used"
  ([settings](https://doc.powerdns.com/recursor/settings.html#max-ns-per-resolve));
  the sample is drawn in `getBestNSFromCache()` (`std::sample`, pdns
  `recursordist/syncres.cc`) for every resolution, and every address of a
  sampled NS name is used. Model: a fresh sample of 13 NS names per
  resolution, the lowest decayed RTT among their addresses (`pdns`).
- **Unbound** keeps every NS name and address of a delegation point and
  selects among all addresses with glue (random within 400 ms of the
  fastest). Its limits are on work, not on the set: at most 16 glue
  fetches per delegation point (`MAX_DP_TARGET_COUNT`) and 64 per query
  (`MAX_TARGET_COUNT`, `iterator/iterator.h`) for NS names without glue,
  and `max-sent-count` (default 32) queries per resolution. Model: every
  address (`unbound`).
- **Knot Resolver 5.6** keeps at most 13 NS names of a zone cut; the first
  A and the first AAAA of each name are taken, further addresses share a
  budget of 8 per zone cut (`fetch_ns()` in `lib/zonecut.c`; referral glue
  beyond 26 addresses keeps one address per name, `GLUE_COUNT_THROTTLE`
  in `lib/layer/iterate.c`), as read for the lab's check of several
  addresses per NS name ([lab-ns-addresses.md](lab-ns-addresses.md)).
  Model: 13 names in the cache's order (one draw per resolver), the first
  address of each and 8 more (`kresd`).

So the "about 13 name servers" limit holds per resolution for PowerDNS
Recursor (a different 13 each time), for all time for BIND 9.21 (13
addresses, whatever the number of NS names), and as 20 NS names for BIND
9.18/9.20, and for Knot Resolver as 13 NS names plus 8 more addresses;
Unbound sees every address."""


def pct(x):
    return "%.1f%%" % x


def rng_text(a, b, fmt="%.2f"):
    return (fmt + "–" + fmt) % (a, b) if a != b else fmt % a


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def settle_text(x):
    return "not within the window" if x is None else "%.0f s" % x


def doc(results):
    """docs/popsim.md from the results of experiments()."""
    fl, hd, ou, ns = results["fleet"], results["herds"], results["outage"], results["ns"]
    out = ["# The population model: fleets, regions, outages and delegation limits", ""]
    out.append("""Generated by `python3 -m labkit.popsim fleet --json ../docs/popsim.json --out
../docs/popsim.md` (from `scripts/`; the runs took %s s) from runs of the population model
([`scripts/labkit/popsim.py`](../scripts/labkit/popsim.py), experiments in
[`scripts/labkit/fleet.py`](../scripts/labkit/fleet.py)). The model is the
one calibrated on the closed-loop lab ([lab.md §7](lab.md#7-closed-loop)
compares its shares with the lab's on the same scenarios): resolvers of
four families choose hosts by their own rules (Unbound's 400 ms band,
BIND's decaying SRTT and lameness, PowerDNS Recursor's decaying speeds,
Knot Resolver's exploration), client sessions hold a host's request slots
for 1–5 s, and each host's smoothed load shapes its answers by the policy's
curve. Policies: `default` (the module's default curve) and `previous` (the
default curve before the closed-loop lab, delays then drops). The runs are the model's, not
measurements; the lab covers three hosts and twelve resolvers.""" % results.get("elapsed_s", "?"))
    out.append("")
    out.append("""**Setting.** Hosts have 100, 100 and 200 request slots in turn and are split
into %d regions in order; resolvers take the four families and the regions in
turn. A resolver is 1–15 ms from the hosts of its region and 30–200 ms from
the others (a base of 30–180 ms per pair of regions plus 0–20 ms per resolver
and host, drawn from a fixed seed). Figures over the steady part of each run
(from %d s to %d s): **peak** is the highest one-second load of any host
(fraction of its slots), **≥ 0.9** the share of host-seconds at a load of
0.9 or more, **swing** the largest peak-to-peak of a host's 5 s
mean load, **failed** the sessions that got no address or a host with every
slot busy, **timeout** the sessions whose resolution met a resolver timeout
(a silent host), **share / capacity** a host's share of the sessions divided
by its share of the slots (1 is fair).""" % (fl["regions"], fl["warmup"], fl["seconds"]))
    out.append("")

    # (a)
    out.append("## Fleet size")
    out.append("")
    out.append("""%d resolvers, offered load %.2f of all slots, %d s, mean of %d seed(s). Every
host reachable by every family: the hosts' addresses on min(N, 13) NS names.""" % (
        fl["resolvers"], fl["offered"], fl["seconds"], len(fl["seeds"])))
    out.append("")
    rows = []
    for r in fl["rows"]:
        rows.append([r["hosts"], r["names"], r["capacity"], r["policy"], "%.2f" % r["peak"], pct(r["hot_pct"]),
                     "%.2f" % r["swing"],
                     pct(r["failed_pct"]), pct(r["delayed_pct"]), rng_text(r["min_load"], r["max_load"]),
                     rng_text(r["min_ratio"], r["max_ratio"]), "%.1f" % r["share_gap"]])
    out.append(md_table(["hosts", "NS names", "slots", "policy", "peak", "≥ 0.9", "swing", "failed", "timeout",
                         "mean load (min–max host)", "share / capacity", "largest share gap (points)"], rows))
    out.append("")
    out.extend(fleet_findings(fl))
    out.append("")

    # herds
    out.append("## Herd size")
    out.append("")
    out.append("""The same %d hosts and offered load %.2f spread over fewer or more resolvers
(sessions per second per resolver in the table): a resolver of BIND, PowerDNS
Recursor or Knot Resolver sends all of its clients to one host at a time, so
fewer resolvers move bigger herds.""" % (hd["hosts"], hd["offered"]))
    out.append("")
    out.append(md_table(["resolvers", "sessions/s each", "policy", "peak", "≥ 0.9", "swing", "failed",
                         "mean load (min–max host)"],
                        [[r["resolvers"], "%.2f" % r["per_resolver"], r["policy"], "%.2f" % r["peak"],
                          pct(r["hot_pct"]), "%.2f" % r["swing"], pct(r["failed_pct"]), rng_text(r["min_load"], r["max_load"])]
                         for r in hd["rows"]]))
    out.append("")
    out.extend(herd_findings(hd))
    out.append("")

    # (b)
    out.append("## Regional outage")
    out.append("")
    cap = ou["region_capacity"]
    out.append("""%d regions of %d hosts (%s slots), %d resolvers, offered load %.2f of all
slots, of which the regions' clients ask for %s (clients follow the sun: region 1
is the busiest). Every host of region 1 is killed at %d s (it answers nothing
and its requests in flight are lost) and returns at %d s; the run ends at %d s.
Region loads are capacity-weighted mean loads; **settle** is the time until
every surviving host's (or region's) 5 s mean load stays within %.2f of its
final level (the last quarter of the window), as the lab computes it.""" % (
        ou["regions"], ou["per_region"], " / ".join(str(c) for c in cap), ou["resolvers"], ou["offered"],
        " / ".join("%.0f%%" % (100 * d / sum(ou["demand"])) for d in ou["demand"]), ou["kill_at"],
        ou["return_at"], ou["seconds"], SETTLE_BAND))
    out.append("")
    rows = []
    for r in ou["rows"]:
        for key, label in (("before", "before"), ("during", "region 1 down"), ("after", "returned")):
            f = r[key]
            rows.append([r["policy"], label, " / ".join("%.2f" % x for x in f["region_load"]),
                         "%.2f" % f["peak"], pct(f["hot_pct"]), "%.2f" % f["swing"], pct(f["failed_pct"]), pct(f["delayed_pct"]),
                         settle_text(f.get("settle_s")) if key != "before" else "",
                         settle_text(f.get("region_settle_s")) if key != "before" else ""])
    out.append(md_table(["policy", "window", "region load 1 / 2 / 3", "peak", "≥ 0.9", "swing", "failed",
                         "timeout",
                         "settle (hosts)", "settle (regions)"], rows))
    out.append("")
    out.append("""While region 1 is down, peak, ≥ 0.9 and swing are those of the surviving hosts.
Sessions that met a timeout while region 1 was down, per family:""")
    out.append("")
    fams = sorted({f for r in ou["rows"] for f in r["during"]["families"]})
    out.append(md_table(["policy"] + [FAMILY_NAMES.get(f, f) for f in fams],
                        [[r["policy"]] + [pct(r["during"]["families"].get(f, {}).get("delayed_pct", 0))
                                          for f in fams] for r in ou["rows"]]))
    out.append("")
    out.append("Share of each family's sessions that went to region 1: before the outage, in the %d s "
               "after its return, and in the last minute of the run:" % (ou["seconds"] - ou["return_at"]))
    out.append("")
    rows = []
    for r in ou["rows"]:
        for key, label in (("before", "before"), ("after", "after the return"), ("last_minute", "last minute")):
            rows.append([r["policy"], label] + [pct(100 * r["region1_share"][key].get(f, 0)) for f in fams])
    out.append(md_table(["policy", "window"] + [FAMILY_NAMES.get(f, f) for f in fams], rows))
    out.append("")
    out.extend(outage_findings(ou))
    out.append("")

    # (c)
    out.append("## How big a fleet one service name can serve")
    out.append("")
    out.append(SOURCES)
    out.append("")
    out.append("""**In the model**: %d hosts in %d regions, %d resolvers, offered load %.2f,
the `%s` policy, the hosts' addresses spread over N NS names (host h under
name h mod N: every name carries hosts of every region). *Hosts per
resolution*: how many hosts one resolution of a family may pick from (mean
over resolvers); *never picked*: hosts that no resolver of the family can
ever pick. Populations: all four families (BIND as 9.18 or as 9.21), or
one family alone.""" % (ns["hosts"], ns["regions"], ns["resolvers"], ns["offered"], ns["policy"]))
    out.append("")
    rows = []
    for r in ns["rows"]:
        v = r["views"]
        order = [f for f in ("unbound", "bind", "bind921", "pdns", "kresd") if f in v]
        pop = "all four" if r["population"] == "all" else FAMILY_NAMES.get(r["population"], r["population"])
        rows.append([pop, FAMILY_NAMES[r["bind"]] if r["population"] == "all" else "",
                     "%d × %s" % (r["names"], r["per_name"]),
                     ", ".join("%s %g" % (FAMILY_NAMES[f], v[f]["per_query"]) for f in order),
                     ", ".join("%s %d" % (FAMILY_NAMES[f], v[f]["unseen"]) for f in order if v[f]["unseen"]) or "none",
                     r["idle_hosts"], rng_text(r["min_ratio"], r["max_ratio"]),
                     rng_text(r["min_load"], r["max_load"]), "%.2f" % r["peak"], pct(r["hot_pct"]),
                     pct(r["failed_pct"])])
    out.append(md_table(["population", "BIND", "NS names × addresses", "hosts per resolution",
                         "never picked", "hosts without sessions", "share / capacity",
                         "mean load (min–max host)", "peak", "≥ 0.9", "failed"], rows))
    out.append("")
    out.extend(ns_findings(ns))
    out.append("")
    return "\n".join(out)


def fleet_findings(fl):
    out = []
    for policy in sorted({r["policy"] for r in fl["rows"]}):
        rows = [r for r in fl["rows"] if r["policy"] == policy]
        small, big = rows[0], rows[-1]
        out.append("- **%s**: from %d to %d hosts the host-seconds at 0.9 or more went from %s to %s (%s–%s "
                   "over all sizes), the swing from %.2f to %.2f and the failed share from %s to %s; share / "
                   "capacity stayed within %s." % (
                       policy, small["hosts"], big["hosts"], pct(small["hot_pct"]), pct(big["hot_pct"]),
                       pct(min(r["hot_pct"] for r in rows)), pct(max(r["hot_pct"] for r in rows)),
                       small["swing"], big["swing"], pct(small["failed_pct"]), pct(big["failed_pct"]),
                       rng_text(min(r["min_ratio"] for r in rows), max(r["max_ratio"] for r in rows))))
    return out


def herd_findings(hd):
    out = []
    for policy in sorted({r["policy"] for r in hd["rows"]}):
        rows = sorted((r for r in hd["rows"] if r["policy"] == policy), key=lambda r: r["resolvers"])
        a, b = rows[0], rows[-1]
        out.append("- **%s**: %d resolvers failed %s of the sessions (swing %.2f, host loads %s), %d "
                   "resolvers %s (swing %.2f, host loads %s)." % (
                       policy, a["resolvers"], pct(a["failed_pct"]), a["swing"], rng_text(a["min_load"], a["max_load"]),
                       b["resolvers"], pct(b["failed_pct"]), b["swing"], rng_text(b["min_load"], b["max_load"])))
    return out


def outage_findings(ou):
    out = []
    for r in ou["rows"]:
        d, a = r["during"], r["after"]
        out.append("- **%s**: with region 1 down its clients' sessions went to regions 2 and 3 (loads %s); "
                   "the surviving hosts peaked at %.2f, %s of the sessions failed and %s met a timeout; "
                   "after the return region 1 was back at %.2f (before: %.2f), settling in %s (regions)." % (
                       r["policy"], " / ".join("%.2f" % x for x in d["region_load"][1:]), d["peak"],
                       pct(d["failed_pct"]), pct(d["delayed_pct"]), a["region_load"][0],
                       r["before"]["region_load"][0], settle_text(a["region_settle_s"])))
    out.append("""- Unbound picks at random among the hosts within 400 ms of the fastest, so
  each Unbound resolver meets each dead host's silence itself (Unbound
  doubles a host's retransmit timeout from its first timeout, the model
  doubles its RTT from the second in a row); with one resolution every few
  seconds per resolver that takes much of the outage. A host it has given
  up on is unknown again only when its infrastructure-cache entry expires
  (`infra-host-ttl`, 900 s; the `infra-keep-probing` documentation: "it may
  take infra-host-ttl time to get probed again"), in the model as in
  Unbound.""")
    for r in ou["rows"]:
        before, last = r["region1_share"]["before"], r["region1_share"]["last_minute"]
        slow = sorted(last, key=lambda f: last[f] / before[f] if before.get(f) else 1.0)
        out.append("- **%s**, who comes back: in the last minute %s sent %s of their sessions to region 1 "
                   "(before the outage %s)." % (
                       r["policy"], " and ".join(FAMILY_NAMES.get(f, f) for f in slow[:2]),
                       " and ".join(pct(100 * last[f]) for f in slow[:2]),
                       " and ".join(pct(100 * before[f]) for f in slow[:2])))
    out.append("""- The model's Knot Resolver comes back to a returned host only through its 5%
  exploration, and its BIND through the slow aging of the RTTs it did not
  use (in seconds in which it resolves). Knot Resolver 5 itself treats an
  address as dead for 1 s after 4 timeouts in a row (`KR_NS_TIMEOUT_ROW_DEAD`,
  `KR_NS_TIMEOUT_RETRY_INTERVAL` in `lib/selection.h`) and then may try it
  again, so it may return sooner than the model's.""")
    return out


def ns_findings(ns):
    out = []
    find = lambda pop, bind, m: next((r for r in ns["rows"] if r["population"] == pop and r["bind"] == bind
                                      and r["names"] == m), None)
    one = find("all", "bind", ns["hosts"])
    many = [r for r in ns["rows"] if r["population"] == "all" and r["bind"] == "bind" and r["names"] <= 13]
    if one and many:
        out.append("- **One address per NS name, all four families** (BIND 9.18): BIND never picks %d of the "
                   "%d hosts and PowerDNS Recursor sees %g per resolution, yet the other families fill them: "
                   "share / capacity %s, %s of host-seconds at 0.9 or more, failed %s. With %s NS names "
                   "carrying several addresses every family can pick every host: share / capacity %s." % (
                       one["views"]["bind"]["unseen"], ns["hosts"], one["views"]["pdns"]["per_query"],
                       rng_text(one["min_ratio"], one["max_ratio"]), pct(one["hot_pct"]), pct(one["failed_pct"]),
                       " or ".join(str(r["names"]) for r in many),
                       rng_text(min(r["min_ratio"] for r in many), max(r["max_ratio"] for r in many))))
    b1 = find("bind", "bind", ns["hosts"])
    if b1:
        b13 = find("bind", "bind", 13)
        out.append("- **BIND 9.18 alone, one address per NS name**: %d hosts get no session at all and the "
                   "others are overloaded: %s of host-seconds at 0.9 or more, %s of the sessions failed%s." % (
                       b1["idle_hosts"], pct(b1["hot_pct"]), pct(b1["failed_pct"]),
                       "" if not b13 else " (13 NS names with several addresses: %s and %s)" % (
                           pct(b13["hot_pct"]), pct(b13["failed_pct"]))))
    b9 = [r for r in ns["rows"] if r["population"] == "bind921"]
    if b9:
        out.append("- **BIND 9.21 alone**: each resolver sees 13 hosts whatever the layout, but different "
                   "resolvers see different ones (their referrals' order): %s." % "; ".join(
                       "%d × %s: share / capacity %s, %s of host-seconds at 0.9 or more, failed %s" % (
                           r["names"], r["per_name"], rng_text(r["min_ratio"], r["max_ratio"]), pct(r["hot_pct"]),
                           pct(r["failed_pct"])) for r in b9))
    pd = [r for r in ns["rows"] if r["population"] == "pdns"]
    if pd:
        out.append("- **PowerDNS Recursor alone**: %s." % "; ".join(
            "%d × %s: %g hosts per resolution, share / capacity %s, %s of host-seconds at 0.9 or more, "
            "failed %s" % (r["names"], r["per_name"], r["views"]["pdns"]["per_query"],
                           rng_text(r["min_ratio"], r["max_ratio"]), pct(r["hot_pct"]), pct(r["failed_pct"]))
            for r in pd))
    out.append("""- **How big a fleet one name can serve**: with one address per NS name, up to
  13 hosts (every family sees every host); beyond that BIND 9.18/9.20 ignore
  the NS names after the 20th in DNSSEC order (the same hosts for every BIND
  resolver), PowerDNS Recursor sees 13 names per resolution and Knot
  Resolver 13 names. Putting several addresses on at most 13 NS names lets
  BIND 9.18/9.20, PowerDNS Recursor and Unbound reach every host; Knot
  Resolver takes the first address of each name and 8 more (21 hosts at
  most, a different set for different resolvers), and BIND 9.21 and later
  use 13 addresses per resolver, a different 13 for different resolvers.
  Each host is still reached by most resolvers, so load spreads over the
  whole fleet, but a fleet beyond about 20 hosts relies on resolvers
  seeing different subsets.""")
    return out


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="python3 -m labkit.popsim fleet",
                                 description="the population model's fleet experiments: fleet size, herd size, "
                                 "a regional outage, delegation limits; writes docs/popsim.md")
    ap.add_argument("--quick", action="store_true", help="fewer resolvers, shorter runs (about a minute)")
    ap.add_argument("--out", default="", help="write the document here (e.g. ../docs/popsim.md)")
    ap.add_argument("--json", default="", help="write the results here")
    ap.add_argument("--from-json", default="", help="read the results from here instead of running")
    args = ap.parse_args(argv)
    if args.from_json:
        with open(args.from_json) as f:
            results = json.load(f)
    else:
        results = experiments(quick=args.quick)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    text = doc(results)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(text)
    else:
        print(text)
