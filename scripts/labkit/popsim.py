"""A population model of the closed loop: resolvers of four families choose
among hosts by their own rules, clients hold the hosts' request slots, the
hosts' load shapes their answers (the module's curve), and the answers
steer the resolvers.

Time advances in steps of DT seconds. Each step, sessions arrive (Poisson)
and each asks its resolver, which picks a host by its family's rule and
sees that host's answer: a reply after distance + the curve's delay, a fast
REFUSED (it then tries another host), or a drop (it times out and tries
another). The session then holds one of the host's slots for its hold time,
or fails when every slot is busy. Each host's load is smoothed and mapped
to (delay, refuse, drop) as the module does (policy.rs): linear between
the curve's points, silent at the high mark, with 0.05 of hysteresis where
shedding starts.

Selection rules, simplified from the resolvers' documented behaviour and
the lab's measurements:
  unbound  random among the hosts whose smoothed RTT is within 400 ms of
           the best (so delays below that do not move it); a REFUSED or a
           timeout makes it pick again among the others; a timeout right
           after a timeout doubles the host's RTT (Unbound's backoff of its
           retransmit timeout), and a host's entry expires INFRA_HOST_TTL_S
           after it was last measured (it is unknown again)
  bind     the lowest smoothed RTT (new = 0.7 old + 0.3 sample); the RTT of
           a host not measured decays toward 0 (x 0.98 per second in
           which the resolver resolves, a half-life of BIND_HALF_LIFE_S;
           BIND's own factor is 511/512 per such second, the model's is
           fitted to the lab) so it gets retried; a REFUSED
           makes the host lame for LAME_S seconds
  pdns     the same with a half-life of PDNS_HALF_LIFE_S; a REFUSED counts
           as a slow answer
  kresd    the lowest smoothed RTT, but EXPLORE of the queries go to a
           random other host; a REFUSED makes it pick again

Fleets: hosts and resolvers may have regions (distances, regional demand,
a regional outage), and the service name may be delegated to NS names that
each carry several hosts' addresses; each family then uses what its
resolver uses of such a delegation (BIND's 20 NS names, or 13 addresses
from 9.21 on, PowerDNS Recursor's sample of 13 NS names per resolution,
all of them for Unbound and Knot Resolver). labkit/fleet.py runs the
fleet experiments and writes docs/popsim.md.

Usage (from scripts/): python3 -m labkit.popsim [--policy default|previous|nearest]
[--shed "dns_shed ..."] [--offered 0.7] [--resolvers N] [--seeds 4];
python3 -m labkit.popsim fleet [--quick] [--out ../docs/popsim.md]; or
simulate() and calibrate() from Python; tests: python3 -m unittest
labkit.test_popsim (from scripts/).
"""

import argparse
import heapq
import math
import random

DT = 0.1  # seconds per step
SMOOTHING_S = 2.0  # the module's dns_load_smoothing default
MARGIN = 0.05  # the module's hysteresis
UNBOUND_BAND_MS = 400.0
BIND_HALF_LIFE_S = 34.0  # 0.98 per second
LAME_S = 60.0  # the open-loop lab: BIND back over 10% within 80 s after a drain with REFUSED
PDNS_HALF_LIFE_S = 60.0
EXPLORE = 0.05
TIMEOUT_MS = 800.0  # what a drop costs a client (a resolver's retry timeout)
CLIENT_TIMEOUT_MS = 5000.0  # a stub gives up after this much waiting (glibc's timeout:5)
INFRA_HOST_TTL_S = 900.0  # Unbound's infra-host-ttl: a host's RTT entry expires
UNKNOWN_SERVER_MS = 376.0  # Unbound's RTT for a host it knows nothing of
UNBOUND_MAX_RTO_MS = 120000.0  # Unbound's infra-cache-max-rtt

# What a resolver uses of a delegation with many NS names (see docs/popsim.md
# for the sources): BIND 9.18 and 9.20 look up the addresses of at most the
# first 20 NS records (NS_PROCESSING_LIMIT) in the order its cache iterates
# them, every address of each; BIND 9.21.20 and later (max-delegation-servers,
# default 13) keep at most 13 NS records of a referral and use at most 13
# addresses in all; PowerDNS Recursor (max-ns-per-resolve, default 13) takes
# a random sample of 13 NS records per resolution, every address of each;
# Knot Resolver 5.6 takes 13 NS names of a zone cut, the first address of
# each plus at most 8 more in all (fetch_ns() in lib/zonecut.c); Unbound
# uses every address of every NS name with glue.
BIND_NS_LIMIT = 20
KRESD_NS_LIMIT = 13
KRESD_EXTRA_ADDRESSES = 8
HALF_LIFE = {"bind": BIND_HALF_LIFE_S, "pdns": PDNS_HALF_LIFE_S}
BIND921_SERVERS = 13
PDNS_NS_PER_RESOLVE = 13

# the module's default (policy.rs); the status endpoint's report wins where known
DEFAULT_CURVE = {"points": [(0.6, 2, 0, 0), (0.7, 10, 0, 0), (0.8, 50, 0, 0.3), (0.9, 100, 0, 0.6),
                            (0.95, 200, 0, 0.9)], "high": 0.98}
NEVER = {"points": [], "high": 2.0}  # shedding off: every host answers at once


def parse_shed(text):
    """A dns_shed line (LOAD:DELAY[:DROP][:drop=P][:refuse=P] ... high=H) as
    a curve for this model; None: the module's default curve."""
    if not text or "dns_shed" not in text:
        return None
    points, high = [], 0.98
    statement = text.split("dns_shed", 1)[1].split(";", 1)[0]
    for arg in statement.split():
        if arg.startswith("high="):
            high = float(arg[5:])
            continue
        if arg.startswith("hold="):
            continue  # the state's hold changes no answer
        fields = arg.split(":")
        load = float(fields[0])
        delay = fields[1]
        delay_ms = float(delay[:-2]) if delay.endswith("ms") else float(delay.rstrip("s")) * (
            1000 if delay.endswith("s") else 1)
        drop = refuse = 0.0
        for i, f in enumerate(fields[2:]):
            if f.startswith("refuse="):
                refuse = float(f[7:])
            elif f.startswith("drop="):
                drop = float(f[5:])
            elif i == 0:
                drop = float(f)
        points.append((load, delay_ms, drop, refuse))
    return {"points": points, "high": high}


def shape(curve, load):
    """(delay ms, drop, refuse) at load, as policy.rs computes it; None when
    the host is silent (at or above the high mark)."""
    if load >= curve["high"]:
        return None
    pts = curve["points"]
    above = next((i for i, p in enumerate(pts) if p[0] > load), None)
    if above == 0 or not pts:
        return 0.0, 0.0, 0.0
    if above is None:
        return pts[-1][1], pts[-1][2], pts[-1][3]
    a, b = pts[above - 1], pts[above]
    t = (load - a[0]) / (b[0] - a[0])
    return tuple(a[k] + (b[k] - a[k]) * t for k in (1, 2, 3))


class Host:
    def __init__(self, capacity, curve):
        self.capacity = capacity
        self.curve = curve
        self.busy = []  # end times of the requests in flight
        self.smoothed = 0.0
        self.silent = False
        self.down = False  # drained: answers REFUSED (dns_silence refuse)
        self.dead = False  # killed: answers nothing, takes no requests

    def load(self):
        return len(self.busy) / self.capacity

    def tick(self, now):
        self.busy = [e for e in self.busy if e > now]
        alpha = 1 - math.exp(-DT / SMOOTHING_S)
        self.smoothed += alpha * (self.load() - self.smoothed)
        if self.smoothed >= self.curve["high"]:
            self.silent = True
        elif self.smoothed < self.curve["high"] - MARGIN:
            self.silent = False

    def answer(self, rng):
        """'ok' with the delay in ms, 'refused' or 'dropped'."""
        if self.dead:
            return "dropped", 0.0
        if self.down:
            return "refused", 0.0
        s = None if self.silent else shape(self.curve, self.smoothed)
        if s is None:
            return "refused", 0.0
        delay, drop, refuse = s
        draw = rng.random()
        if draw < refuse:
            return "refused", 0.0
        if draw < refuse + drop:
            return "dropped", 0.0
        return "ok", delay


class Resolver:
    """One resolver: its family's selection rule over the hosts it can see.

    delegation: the service name's NS names, each a list of host indices (the
    addresses of its glue), in the delegation's (canonical) order; None: one
    name per host. What a resolver sees of it is its family's rule (see
    DELEGATION_RULES): `view` is the hosts it can ever pick, PowerDNS draws
    its NS names afresh per resolution."""

    def __init__(self, family, distances, rng, delegation=None):
        self.rule = family
        self.family = "bind" if family == "bind921" else family
        self.dist = list(distances)
        self.rng = rng
        self.srtt = [rng.uniform(0, 5) for _ in distances]  # fresh: all look near
        self.measured = [0.0] * len(distances)  # when each was last measured (age_clock)
        self.active, self.last_second, self.clock = 0, None, 0.0  # BIND's age clock
        self.lame_until = [0.0] * len(distances)
        self.lame_last = 0.0  # the latest lame_until
        self.lost = [0] * len(distances)  # unbound: timeouts in a row per host
        self.at_zero = list(self.srtt)  # bind, pdns: each srtt decayed back to t = 0
        self.names = delegation if delegation is not None else [[h] for h in range(len(distances))]
        self.view = self.visible()
        self.timeouts = 0  # drops met by the last resolution

    def visible(self):
        """The hosts this resolver can pick from (the delegation rules)."""
        names = self.names
        if self.rule == "bind" and len(names) > BIND_NS_LIMIT:
            names = names[:BIND_NS_LIMIT]
        elif self.rule == "bind921":
            # the referral's order (a parent rotates its answers): one draw
            # per resolver, then at most BIND921_SERVERS addresses in all
            order = list(range(len(names)))
            self.rng.shuffle(order)
            hosts = []
            for j in order[:BIND921_SERVERS]:
                addrs = names[j]
                turn = self.rng.randrange(len(addrs)) if addrs else 0
                hosts.extend(addrs[turn:] + addrs[:turn])
            return sorted(set(hosts[:BIND921_SERVERS]))
        if self.rule == "kresd" and (len(names) > KRESD_NS_LIMIT or
                                     sum(len(a) - 1 for a in names if a) > KRESD_EXTRA_ADDRESSES):
            # the cache's order of the NS set: one draw per resolver
            order = list(range(len(names)))
            self.rng.shuffle(order)
            hosts, extra = [], KRESD_EXTRA_ADDRESSES
            for j in order[:KRESD_NS_LIMIT]:
                addrs = names[j]
                if addrs:
                    more = addrs[1:1 + extra]
                    extra -= len(more)
                    hosts += [addrs[0]] + more
            return sorted(set(hosts))
        return sorted({h for addrs in names for h in addrs})

    def age_clock(self, now):
        """The time the resolver's RTTs age by: wall time for PowerDNS and
        Unbound; for BIND the seconds in which it resolved (it ages the
        addresses it did not try when it resolves, at most once a second:
        adjustsrtt() with DNS_ADB_RTTADJAGE in BIND's adb.c), which is wall
        time for a resolver busy every second."""
        if self.family != "bind":
            return now
        second = int(now)
        if second != self.last_second:
            self.active += 1
            self.last_second = second
        self.clock = self.active + (now - second)
        return self.clock

    def rtt(self, h, now):
        half_life = HALF_LIFE.get(self.family)
        if half_life:
            # the average decays toward 0 while the host is not measured
            t = self.clock if self.family == "bind" else now
            return self.srtt[h] * 0.5 ** ((t - self.measured[h]) / half_life)
        if self.family == "unbound" and self.measured[h] and now - self.measured[h] >= INFRA_HOST_TTL_S:
            return UNKNOWN_SERVER_MS  # the infrastructure cache entry expired: unknown again
        return self.srtt[h]

    def candidates(self):
        """The hosts this resolution may pick from."""
        if self.rule == "pdns" and len(self.names) > PDNS_NS_PER_RESOLVE:
            hosts = set()
            for j in self.rng.sample(range(len(self.names)), PDNS_NS_PER_RESOLVE):
                hosts.update(self.names[j])
            return sorted(hosts)
        return self.view

    def choose(self, now, exclude, view=None):
        view = self.view if view is None else view
        if not exclude and self.lame_last <= now:
            cands = view  # nothing excluded, no host lame
        else:
            cands = [h for h in view if h not in exclude and self.lame_until[h] <= now]
        if not cands:
            cands = [h for h in view if h not in exclude]
        if not cands:
            return None
        if self.family == "unbound":
            if now >= INFRA_HOST_TTL_S:
                rtts = [self.rtt(h, now) for h in cands]
            else:
                rtts = [self.srtt[h] for h in cands]
            best = min(rtts)
            return self.rng.choice([h for h, r in zip(cands, rtts) if r <= best + UNBOUND_BAND_MS])
        if self.family == "kresd" and len(cands) > 1 and self.rng.random() < EXPLORE:
            return self.rng.choice(cands)
        if self.family in HALF_LIFE:
            # the lowest decayed RTT: every host's decays by the same factor
            # from its value at t = 0, so compare those
            return min(cands, key=self.at_zero.__getitem__)
        return min(cands, key=self.srtt.__getitem__)

    def observe(self, h, now, outcome, rtt_ms):
        if outcome == "ok":
            sample = rtt_ms
        elif outcome == "dropped":
            sample = TIMEOUT_MS
        elif self.family == "bind":
            self.lame_until[h] = now + LAME_S
            self.lame_last = max(self.lame_last, self.lame_until[h])
            return
        elif self.family == "pdns":
            sample = self.rtt(h, now) + 100.0  # a REFUSED counts as a slow answer
        else:
            return  # unbound, kresd: a REFUSED is not a speed sample
        if self.family == "unbound":
            if outcome == "dropped" and self.lost[h]:
                # a further timeout in a row: Unbound doubles the host's
                # retransmit timeout (rtt_lost() in util/rtt.c)
                self.srtt[h] = min(UNBOUND_MAX_RTO_MS, max(2 * self.rtt(h, now), TIMEOUT_MS))
            else:
                self.srtt[h] = 0.75 * self.rtt(h, now) + 0.25 * sample
            self.lost[h] = self.lost[h] + 1 if outcome == "dropped" else 0
        else:
            self.srtt[h] = 0.7 * self.rtt(h, now) + 0.3 * sample
        t = self.clock if self.family == "bind" else now
        self.measured[h] = t
        if self.family in HALF_LIFE:
            self.at_zero[h] = self.srtt[h] * 2.0 ** (t / HALF_LIFE[self.family])

    def resolve(self, hosts, now):
        """The host whose address the client gets, or None (every host it
        may pick failed, or the client gave up after CLIENT_TIMEOUT_MS of
        resolver timeouts)."""
        tried = set()
        self.age_clock(now)
        view = self.candidates()
        self.timeouts = 0
        for _ in range(len(view)):
            h = self.choose(now, tried, view)
            if h is None:
                return None
            outcome, delay = hosts[h].answer(self.rng)
            self.observe(h, now, outcome, self.dist[h] + delay)
            if outcome == "ok":
                return h
            if outcome == "dropped":
                self.timeouts += 1
                if self.timeouts * TIMEOUT_MS >= CLIENT_TIMEOUT_MS:
                    return None
            tried.add(h)
        return None


def simulate(capacity, curve, families, distances, offered, seconds, hold_s=(1.0, 5.0), seed=1,
             events=(), host_region=None, resolver_region=None, demand=None, delegation=None,
             info=None):
    """Runs the model; offered: [(from s, fraction of all slots)], events:
    [(s, "drain"|"up"|"kill"|"return"|"slow", host)] or [(s, "region-kill"|
    "region-return", region)]. Returns per-second samples {"t", "load":
    [...], "ok": [...], "failed": n, "full": n (of the failed: sent to a
    host with every slot busy), "delayed": n (sessions whose resolution met
    a resolver timeout), "families": {family: [ok, no address, host full,
    delayed]}}.

    Regions: host_region and resolver_region give each host and resolver a
    region; demand: [(from s, [weight per region])], the share of the
    offered sessions whose clients are in each region (they ask that
    region's resolvers); None: every resolver in turn. delegation: the
    service name's NS names as lists of host indices (Resolver); None: one
    name per host. info: a dict that gets the resolvers ("resolvers"); with
    info["track_family_hosts"] true the samples also count each family's
    sessions per host ("family_hosts": {family: [...]})."""
    rng = random.Random(seed)
    hosts = [Host(c, curve) for c in capacity]
    resolvers = [Resolver(f, d, random.Random(seed * 100 + k), delegation)
                 for k, (f, d) in enumerate(zip(families, distances))]
    track = info is not None and info.get("track_family_hosts")
    if info is not None:
        info["resolvers"] = resolvers
    mean_hold = sum(hold_s) / 2
    slow = [1.0] * len(hosts)
    events = sorted(events)
    offered = sorted(offered)
    by_region, turn = None, None
    if demand is not None:
        demand = sorted(demand)
        regions = max(max(resolver_region) + 1, max(len(ws) for _, ws in demand))
        by_region = [[r for k, r in enumerate(resolvers) if resolver_region[k] == g] for g in range(regions)]
        turn = [0] * regions
    ends = []  # (end time, host) of the requests in flight, a heap
    samples, second = [], {"ok": [0] * len(hosts), "failed": 0, "full": 0, "delayed": 0, "families": {}}
    steps = int(round(seconds / DT))
    per_second = int(round(1 / DT))
    total = sum(capacity)
    k = 0
    for step in range(steps):
        now = step * DT
        while events and events[0][0] <= now:
            _, what, h = events.pop(0)
            if what.startswith("region-"):
                targets = [i for i, g in enumerate(host_region) if g == h]
                what = what[len("region-"):]
            else:
                targets = [h]
            for i in targets:
                if what == "drain":
                    hosts[i].down = True
                elif what == "kill":
                    hosts[i].dead = True
                    hosts[i].busy = []
                elif what == "up":
                    hosts[i].down = False
                elif what == "return":
                    hosts[i].dead = False
                elif what == "slow":
                    slow[i] = 2.0
        # requests end: drop them from the hosts' lists before their tick
        # (whose filter then keeps them all)
        ended = set()
        while ends and ends[0][0] <= now:
            ended.add(heapq.heappop(ends)[1])
        for i in ended:
            host = hosts[i]
            host.busy = [e for e in host.busy if e > now]
        for host in hosts:
            host.tick(now)
        while len(offered) > 1 and offered[1][0] <= now:
            offered.pop(0)
        rate = offered[0][1] * total / mean_hold
        if by_region is None:
            arrivals = [(None, poisson(rng, rate * DT))]
        else:
            while len(demand) > 1 and demand[1][0] <= now:
                demand.pop(0)
            weights = demand[0][1]
            wsum = float(sum(weights))
            arrivals = [(g, poisson(rng, rate * DT * w / wsum)) for g, w in enumerate(weights)]
        for g, count in arrivals:
            for _ in range(count):
                if g is None:
                    r = resolvers[k % len(resolvers)]
                    k += 1
                else:
                    pool = by_region[g]
                    if not pool:
                        second["failed"] += 1
                        continue
                    r = pool[turn[g] % len(pool)]
                    turn[g] += 1
                h = r.resolve(hosts, now)
                tally = second["families"].setdefault(r.rule, [0, 0, 0, 0])
                if r.timeouts:
                    second["delayed"] += 1
                    tally[3] += 1
                if h is None:
                    second["failed"] += 1
                    tally[1] += 1
                    continue
                host = hosts[h]
                if host.dead or len(host.busy) >= host.capacity:
                    second["failed"] += 1
                    second["full"] += 1
                    tally[2] += 1
                    continue
                end = now + rng.uniform(*hold_s) * slow[h]
                host.busy.append(end)
                heapq.heappush(ends, (end, h))
                second["ok"][h] += 1
                tally[0] += 1
                if track:
                    second.setdefault("family_hosts", {}).setdefault(r.rule, [0] * len(hosts))[h] += 1
        if (step + 1) % per_second == 0:
            second.update(t=round(now + DT), load=[round(h.load(), 3) for h in hosts])
            samples.append(second)
            second = {"ok": [0] * len(hosts), "failed": 0, "full": 0, "delayed": 0, "families": {}}
    return samples


def poisson(rng, mean):
    """A Poisson draw (Knuth's method, in parts of mean <= 50 for large
    means), at most 1000."""
    if mean <= 0:
        return 0
    if mean > 50:
        if mean > 2000:
            return 1000
        parts = int(math.ceil(mean / 50.0))
        return min(1000, sum(poisson(rng, mean / parts) for _ in range(parts)))
    limit, n, p = math.exp(-mean), 0, 1.0
    while n < 1000:
        p *= rng.random()
        if p <= limit:
            return n
        n += 1
    return n


def window(samples, a, b):
    """Mean load per host, share of sessions per host and failures in [a, b)."""
    sel = [s for s in samples if a <= s["t"] < b]
    n = len(sel[0]["load"]) if sel else 0
    ok = [sum(s["ok"][h] for s in sel) for h in range(n)]
    total = sum(ok)
    return {"mean_load": [round(sum(s["load"][h] for s in sel) / max(1, len(sel)), 3) for h in range(n)],
            "peak_load": [max((s["load"][h] for s in sel), default=0) for h in range(n)],
            "share": [round(x / total, 3) if total else 0 for x in ok],
            "failed": sum(s["failed"] for s in sel), "sessions": total + sum(s["failed"] for s in sel)}


def swing(samples, a, b, h, width=5):
    """Peak-to-peak of host h's `width` s mean load in [a + width, b), as the
    lab computes it."""
    means = []
    for i, smp in enumerate(samples):
        vals = [x["load"][h] for x in samples[max(0, i - width + 1):i + 1]]
        means.append((smp["t"], sum(vals) / len(vals)))
    sel = [v for t, v in means if a + width <= t < b]
    return max(sel) - min(sel) if sel else 0.0


def population(n, seed=5):
    """n resolvers, the four families in turn, each nearest (1-10 ms) to one
    host and 15-80 ms from the others, as the lab's twelve."""
    rng = random.Random(seed)
    fams = [("unbound", "bind", "pdns", "kresd")[k % 4] for k in range(n)]
    dist = [[round(rng.uniform(1, 10) if h == (k // 4) % 3 else rng.uniform(15, 80), 1) for h in range(3)]
            for k in range(n)]
    return fams, dist


def main():
    import sys
    if sys.argv[1:2] == ["fleet"]:
        from .fleet import main as fleet_main
        return fleet_main(sys.argv[2:])
    from .closedloop import CAPACITY, FAMILIES, PER_FAMILY, POLICIES, distances
    ap = argparse.ArgumentParser(description="the population model at steady offered load; prints the "
                                 "mean over seeds of the largest swing, the failed share and the peak load")
    ap.add_argument("--offered", type=float, default=0.7, help="fraction of all slots (default 0.7)")
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--resolvers", type=int, default=0, help="a population of this many (default: the lab's 12)")
    ap.add_argument("--policy", default="default", choices=[p for p in POLICIES if p != "round-robin"])
    ap.add_argument("--shed", default="", help='a dns_shed line to model instead, e.g. "dns_shed 0.6:0 0.9:0:refuse=0.5"')
    args = ap.parse_args()
    curve = curve_of(args.shed or POLICIES[args.policy], None)
    if args.resolvers:
        fams, dist = population(args.resolvers)
    else:
        fams, dist = [cls.name for cls in FAMILIES for _ in range(PER_FAMILY)], distances()
    a = min(20.0, args.seconds / 4)
    sw, failed, peak, mean = [], [], [], []
    for seed in range(1, args.seeds + 1):
        s = simulate(CAPACITY, curve, fams, dist, [(0, args.offered)], args.seconds, seed=seed)
        w = window(s, a, args.seconds)
        sw.append(max(swing(s, a, args.seconds, h) for h in range(len(CAPACITY))))
        failed.append(w["failed"] / max(1, w["sessions"]))
        peak.append(max(w["peak_load"]))
        mean.append(w["mean_load"])
    n = len(sw)
    print("swing %.2f  failed %.1f%%  peak %.2f  mean load %s" % (
        sum(sw) / n, 100 * sum(failed) / n, sum(peak) / n,
        " / ".join("%.2f" % (sum(m[h] for m in mean) / n) for h in range(len(CAPACITY)))))




def curve_of(lines, defaults):
    """The model's curve for a closed-loop policy's server lines; defaults:
    the module's default policy as its status endpoint reports it."""
    if lines is None or not lines.strip():
        return NEVER
    parsed = parse_shed(lines)
    if parsed is not None:
        return parsed
    if defaults is None:
        return DEFAULT_CURVE
    return {"points": [(p["load"], p["delay_ms"], p["drop"], p.get("refuse", 0.0)) for p in defaults["curve"]],
            "high": defaults["high"]}


def calibrate(cl, defaults, seed=11):
    """The model on the lab's own runs (same capacities, distances, offered
    load and events): per policy and scenario window, the share of sessions
    per host in the lab and in the model and the largest gap in points."""
    fams = [r["family"] for r in cl["resolvers"]]
    rows = []
    for run in cl["runs"]:
        lines = cl["policies"].get(run["policy"])
        if lines is None:
            continue  # round-robin has no resolver choice to model
        samples = simulate(cl["capacity"], curve_of(lines, defaults), fams, cl["distances"],
                           [tuple(s) for s in run["steps"]], run["duration"],
                           hold_s=tuple(x / 1000.0 for x in cl["hold_ms"]), seed=seed,
                           events=[tuple(e) for e in run["events"]])
        for w in run["windows"]:
            model = window(samples, w["from"], w["to"])
            total = sum(w["hosts"])
            lab = [round(x / total, 3) if total else 0 for x in w["hosts"]]
            gap = max(abs(a - b) for a, b in zip(lab, model["share"])) * 100
            rows.append({"policy": run["policy"], "name": w["name"], "lab_share": lab,
                         "model_share": model["share"], "lab_mean_load": w["mean_load"],
                         "model_mean_load": model["mean_load"], "gap_points": round(gap, 1)})
    return rows


if __name__ == "__main__":
    main()


def populations(cl, defaults, sizes=(12, 48, 240), offered=0.7, seconds=120, seeds=2):
    """Where the lab cannot go: the lab's hosts and policies with populations
    of `sizes` resolvers at steady offered load; per size and policy the mean
    over seeds of the largest swing, the failed share and the peak load."""
    rows = []
    for n in sizes:
        fams, dist = population(n)
        for policy, lines in cl["policies"].items():
            if lines is None:
                continue
            curve = curve_of(lines, defaults)
            sw, failed, peak = [], [], []
            for seed in range(1, seeds + 1):
                s = simulate(cl["capacity"], curve, fams, dist, [(0, offered)], seconds,
                             hold_s=tuple(x / 1000.0 for x in cl["hold_ms"]), seed=seed)
                w = window(s, 20, seconds)
                sw.append(max(swing(s, 20, seconds, h) for h in range(len(cl["capacity"]))))
                failed.append(w["failed"] / max(1, w["sessions"]))
                peak.append(max(w["peak_load"]))
            rows.append({"resolvers": n, "policy": policy, "offered": offered,
                         "swing": round(sum(sw) / seeds, 2), "failed_pct": round(100 * sum(failed) / seeds, 1),
                         "peak": round(sum(peak) / seeds, 2)})
    return rows
