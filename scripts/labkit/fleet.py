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
[--out docs/popsim.md] [--json FILE]; tests: python3 -m unittest
labkit.test_popsim.
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


def resolvers(n, regions, bind="bind"):
    """Families and regions of n resolvers (the four families in turn, each
    family spread evenly over the regions); bind: the rule BIND follows
    ("bind": 9.18, "bind921": 9.21)."""
    fams = [(bind if f == "bind" else f) for f in (FAMILIES[k % 4] for k in range(n))]
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


def setting(n_hosts, regions, n_resolvers, names=None, bind="bind"):
    cap, hreg = hosts(n_hosts, regions)
    fams, rreg = resolvers(n_resolvers, regions, bind)
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
            "idle_hosts": sum(1 for x in w["share"] if x == 0), "sessions": w["sessions"]}


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

def fleet_sizes(sizes=(3, 6, 13, 20, 40), policies=("default", "tuned"), n_resolvers=2000, regions=3,
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


def mean_figures(per_seed):
    keys = ("peak", "swing", "failed_pct", "delayed_pct", "min_load", "max_load", "share_gap", "min_ratio",
            "max_ratio")
    out = {k: round(sum(f[k] for f in per_seed) / len(per_seed), 3) for k in keys}
    out["idle_hosts"] = max(f["idle_hosts"] for f in per_seed)
    return out


def regional_outage(policies=("default", "tuned"), regions=3, per_region=4, n_resolvers=2000,
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
                events=[(kill_at, "region-kill", 0), (return_at, "region-return", 0)])
        warm = kill_at * 0.4
        before = figures(s, st["capacity"], warm, kill_at)
        during = figures(s, st["capacity"], kill_at, return_at, hosts_of=survivors)
        after = figures(s, st["capacity"], return_at, seconds)
        region_load = lambda f: [round(sum(f["mean_load"][h] * st["capacity"][h] for h in hs) /
                                       sum(st["capacity"][h] for h in hs), 2) for hs in region_hosts]
        rows.append({"policy": policy,
                     "before": dict(before, region_load=region_load(before)),
                     "during": dict(during, region_load=region_load(during),
                                    settle_s=settle(s, survivors, kill_at, return_at)),
                     "after": dict(after, region_load=region_load(after),
                                   settle_s=settle(s, range(n), return_at, seconds))})
    region_capacity = [sum(st["capacity"][h] for h in hs) for hs in region_hosts]
    return {"regions": regions, "per_region": per_region, "resolvers": n_resolvers, "demand": list(demand),
            "offered": offered, "kill_at": kill_at, "return_at": return_at, "seconds": seconds,
            "region_capacity": region_capacity, "rows": rows}


def ns_limits(n_hosts=40, layouts=(40, 20, 13, 8, 4), binds=("bind", "bind921"), policy="tuned",
              n_resolvers=2000, regions=3, offered=0.7, seconds=180, warmup=60, seed=1):
    """(c) One fleet of n_hosts behind NS names carrying one or more
    addresses each (layouts: the number of names), under each BIND rule."""
    rows = []
    for bind in binds:
        for m in layouts:
            st = setting(n_hosts, regions, n_resolvers, names=m, bind=bind)
            info = {}
            s = run(st, policy, [(0, offered)], seconds, seed=seed, info=info)
            f = figures(s, st["capacity"], warmup, seconds)
            sizes = sorted({len(x) for x in st["delegation"]})
            rows.append(dict(f, bind=bind, names=m, per_name="-".join(str(x) for x in sizes),
                             views=views(info["resolvers"], n_hosts)))
    return {"hosts": n_hosts, "resolvers": n_resolvers, "regions": regions, "policy": policy,
            "offered": offered, "seconds": seconds, "warmup": warmup, "rows": rows}


def experiments(quick=False):
    """All three; quick: fewer resolvers and shorter runs (for a look, not
    for the doc)."""
    t0 = time.time()
    if quick:
        out = {"fleet": fleet_sizes(sizes=(3, 13, 40), n_resolvers=400, seconds=90, warmup=30),
               "outage": regional_outage(n_resolvers=400, kill_at=60, return_at=120, seconds=180),
               "ns": ns_limits(layouts=(40, 8), n_resolvers=400, seconds=90, warmup=30)}
    else:
        out = {"fleet": fleet_sizes(), "outage": regional_outage(), "ns": ns_limits()}
    out["quick"] = quick
    out["elapsed_s"] = round(time.time() - t0)
    return out
