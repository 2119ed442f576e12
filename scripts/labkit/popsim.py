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
           timeout makes it pick again among the others
  bind     the lowest smoothed RTT (new = 0.7 old + 0.3 sample); the RTT of
           a host not measured decays toward 0 (x 0.98 per second, a
           half-life of BIND_HALF_LIFE_S) so it gets retried; a REFUSED
           makes the host lame for LAME_S seconds
  pdns     the same with a half-life of PDNS_HALF_LIFE_S; a REFUSED counts
           as a slow answer
  kresd    the lowest smoothed RTT, but EXPLORE of the queries go to a
           random other host; a REFUSED makes it pick again

Usage (from scripts/): python3 -m labkit.popsim [--policy default|previous|nearest]
[--shed "dns_shed ..."] [--offered 0.7] [--resolvers N] [--seeds 4], or
simulate() and calibrate() from Python; tests: python3 -m unittest
labkit.test_popsim (from scripts/).
"""

import argparse
import math
import random

DT = 0.1  # seconds per step
SMOOTHING_S = 2.0  # the module's dns_load_smoothing default
MARGIN = 0.05  # the module's hysteresis
UNBOUND_BAND_MS = 400.0
BIND_HALF_LIFE_S = 34.0  # 0.98 per second
LAME_S = 600.0
PDNS_HALF_LIFE_S = 60.0
EXPLORE = 0.05
TIMEOUT_MS = 800.0  # what a drop costs a client (a resolver's retry timeout)

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
    def __init__(self, family, distances, rng):
        self.family = family
        self.dist = list(distances)
        self.rng = rng
        self.srtt = [rng.uniform(0, 5) for _ in distances]  # fresh: all look near
        self.measured = [0.0] * len(distances)  # when each was last measured (pdns)
        self.lame_until = [0.0] * len(distances)

    def rtt(self, h, now):
        half_life = {"bind": BIND_HALF_LIFE_S, "pdns": PDNS_HALF_LIFE_S}.get(self.family)
        if half_life:
            # the average decays toward 0 while the host is not measured
            return self.srtt[h] * 0.5 ** ((now - self.measured[h]) / half_life)
        return self.srtt[h]

    def choose(self, now, exclude):
        cands = [h for h in range(len(self.dist)) if h not in exclude and self.lame_until[h] <= now]
        if not cands:
            cands = [h for h in range(len(self.dist)) if h not in exclude]
        if not cands:
            return None
        if self.family == "unbound":
            best = min(self.rtt(h, now) for h in cands)
            return self.rng.choice([h for h in cands if self.rtt(h, now) <= best + UNBOUND_BAND_MS])
        if self.family == "kresd" and len(cands) > 1 and self.rng.random() < EXPLORE:
            return self.rng.choice(cands)
        return min(cands, key=lambda h: self.rtt(h, now))

    def observe(self, h, now, outcome, rtt_ms):
        if outcome == "ok":
            sample = rtt_ms
        elif outcome == "dropped":
            sample = TIMEOUT_MS
        elif self.family == "bind":
            self.lame_until[h] = now + LAME_S
            return
        elif self.family == "pdns":
            sample = self.rtt(h, now) + 100.0  # a REFUSED counts as a slow answer
        else:
            return  # unbound, kresd: a REFUSED is not a speed sample
        if self.family == "unbound":
            self.srtt[h] = 0.75 * self.srtt[h] + 0.25 * sample
        else:
            self.srtt[h] = 0.7 * self.rtt(h, now) + 0.3 * sample
        self.measured[h] = now

    def resolve(self, hosts, now):
        """The host whose address the client gets, or None."""
        tried = set()
        for _ in range(len(hosts)):
            h = self.choose(now, tried)
            if h is None:
                return None
            outcome, delay = hosts[h].answer(self.rng)
            self.observe(h, now, outcome, self.dist[h] + delay)
            if outcome == "ok":
                return h
            tried.add(h)
        return None


def simulate(capacity, curve, families, distances, offered, seconds, hold_s=(1.0, 5.0), seed=1,
             events=()):
    """Runs the model; offered: [(from s, fraction of all slots)], events:
    [(s, "drain"|"up"|"kill"|"slow", host)]. Returns per-second samples
    {"t", "load": [...], "ok": [...], "failed": n} and totals."""
    rng = random.Random(seed)
    hosts = [Host(c, curve) for c in capacity]
    resolvers = [Resolver(f, d, random.Random(seed * 100 + k))
                 for k, (f, d) in enumerate(zip(families, distances))]
    mean_hold = sum(hold_s) / 2
    slow = [1.0] * len(hosts)
    events = sorted(events)
    samples, second = [], {"ok": [0] * len(hosts), "failed": 0}
    steps = int(round(seconds / DT))
    k = 0
    for step in range(steps):
        now = step * DT
        while events and events[0][0] <= now:
            _, what, h = events.pop(0)
            if what == "drain":
                hosts[h].down = True
            elif what == "kill":
                hosts[h].dead = True
                hosts[h].busy = []
            elif what == "up":
                hosts[h].down = False
            elif what == "slow":
                slow[h] = 2.0
        for h in hosts:
            h.tick(now)
        fraction = [f for t, f in offered if t <= now][-1]
        rate = fraction * sum(capacity) / mean_hold
        for _ in range(poisson(rng, rate * DT)):
            r = resolvers[k % len(resolvers)]
            k += 1
            h = r.resolve(hosts, now)
            if h is None:
                second["failed"] += 1
                continue
            host = hosts[h]
            if host.dead or len(host.busy) >= host.capacity:
                second["failed"] += 1
                continue
            host.busy.append(now + rng.uniform(*hold_s) * slow[h])
            second["ok"][h] += 1
        if (step + 1) % int(round(1 / DT)) == 0:
            samples.append({"t": round(now + DT), "load": [round(h.load(), 3) for h in hosts],
                            "ok": second["ok"], "failed": second["failed"]})
            second = {"ok": [0] * len(hosts), "failed": 0}
    return samples


def poisson(rng, mean):
    """A Poisson draw (Knuth's method; the means here are small)."""
    if mean <= 0:
        return 0
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
