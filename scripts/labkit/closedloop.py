"""The closed-loop lab: the application's real load decides the DNS answers,
the answers send the clients, the clients are the load.

Three hosts, each nginx + the module in front of its own application
(scripts/lab.d/app.py) with 100, 100 and 200 request slots (max_conns of an
upstream with a zone, which the module reads with dns_load_upstream); a
relay on each host's glue address gives each resolver its own distance to
the host; twelve resolvers (three each of Unbound, BIND 9, PowerDNS
Recursor and Knot Resolver), each nearest to one host; a driver
(scripts/lab.d/sessions.py) whose sessions resolve a unique name through
one of the resolvers, connect to the address they got and hold a request
for 1-5 s. Scenarios (steady load, a step, a host slowed to half its
capacity, a host killed, a host drained and returned, load oscillating
around a shedding threshold) are run under each policy: round-robin (NSD
serves the three addresses, the way before the module), nearest (the
module with shedding off), previous (the module's default curve before
this lab) and default (the module's defaults).
Each host's load, state and shedding shape are read from its status
endpoint once per second; the figures per scenario are computed here and
written by report.py (closed-loop.json, and in full mode the pictures and
the closed-loop section of lab.md).
"""

import json
import math
import os
import random
import statistics
import sys
import time
import urllib.request

from . import LAB_D
from .procs import log, start, stop, stop_many, timer
from .resolvers import Bind, Knot, PowerDNS, Unbound
from .topology import HOSTS, start_parent

CAPACITY = [100, 100, 200]  # request slots per host (max_conns)
APP_PORTS = [9101, 9102, 9103]
HOLD_MS = (1000, 5000)  # a session holds its request this long (uniform)
MEAN_HOLD_S = sum(HOLD_MS) / 2 / 1000.0
TTL = "10s"
FAMILIES = [Unbound, Bind, PowerDNS, Knot]
PER_FAMILY = 3
RESOLVER_BASE = 31  # resolver k listens on, and queries from, 127.0.0.(31 + k)
DISTANCE_SEED = 7
MEAN_WINDOW = 5  # seconds: loads are averaged over this before the swing
SETTLE_WINDOW = 10  # seconds: loads are averaged over this before settling and the 10 s peak
SETTLE_BAND = 0.10  # settled: every host's averaged load within this of its final level

# The policies compared: the stream server lines of www.example.com besides
# its load file (drain). None: NSD answers with all three addresses.
# Previous: the module's default curve before this lab (delays, then silent
# drops at the top; the state followed the load at once).
PREVIOUS_SHED = ("dns_shed 0.5:0 0.6:2ms 0.7:10ms 0.8:50ms 0.9:200ms:0.25 0.95:400ms:0.75 "
                 "high=0.98 hold=0;")
POLICIES = {
    "round-robin": None,
    # no load source but the load file: shedding off, the nearest host wins
    "nearest": "",
    "previous": "dns_load_upstream app;\n        " + PREVIOUS_SHED,
    # the module's defaults: no dns_shed, no dns_silence, no smoothing set
    "default": "dns_load_upstream app;",
}


def resolver_addr(k):
    return "127.0.0.%d" % (RESOLVER_BASE + k)


def distances():
    """Round-trip delay in ms that resolver k sees to each host: resolver k is
    nearest (1-10 ms) to host k mod 3 and 15-80 ms from the others, so that
    every family has one instance nearest to each host."""
    out = []
    for k in range(len(FAMILIES) * PER_FAMILY):
        rng = random.Random(DISTANCE_SEED * 1000 + k)
        near = k % len(HOSTS)
        out.append([round(rng.uniform(1, 10) if h == near else rng.uniform(15, 80), 1)
                    for h in range(len(HOSTS))])
    return out


def rate_for(fraction):
    """Sessions per second that keep `fraction` of all request slots busy."""
    return fraction * sum(CAPACITY) / MEAN_HOLD_S


# ---------------------------------------------------------------- scenarios

def scenarios(quick):
    """Runs of the driver, each with its load steps (start s, fraction of the
    total capacity), events (s, what, host) and the windows reported as
    scenarios: (name, from s, to s). Quick mode runs steady load and the step
    to 95% back to back in one run per policy."""
    if quick:
        return [{"run": "steady+step", "duration": 90,
                 "steps": [(0, 0.70), (45, 0.95)], "events": [],
                 "windows": [("steady", 15, 45, None), ("step", 45, 90, 45)]}]
    # full mode: one run per scenario, each with a first part to learn in
    osc = [(t, round(0.70 + 0.15 * math.sin(2 * math.pi * t / 90.0), 3)) for t in range(0, 180, 5)]
    return [
        {"run": "steady", "duration": 100, "steps": [(0, 0.70)], "events": [],
         "windows": [("steady", 20, 100, None)]},
        {"run": "step", "duration": 120, "steps": [(0, 0.70), (40, 0.95)], "events": [],
         "windows": [("step", 40, 120, 40)]},
        # the other events at 0.6, so that the remaining slots can carry the load
        # 160 s after the event: settling within 2 minutes can be seen
        {"run": "capacity", "duration": 200, "steps": [(0, 0.60)], "events": [(40, "slow", 0)],
         "windows": [("capacity-halves", 40, 200, 40)]},
        {"run": "kill", "duration": 100, "steps": [(0, 0.60)], "events": [(40, "kill", 0)],
         "windows": [("kill", 40, 100, 40)]},
        # drained at 0.45, when the other hosts can take its clients (0.6 of
        # their slots): a drain is planned; losing a host at 0.6 is "kill"
        {"run": "drain", "duration": 120, "steps": [(0, 0.45)],
         "events": [(30, "drain", 0), (70, "up", 0)],
         "windows": [("drain", 30, 120, 70)]},
        # offered load around the shedding thresholds: 0.55-0.85, period 90 s
        {"run": "oscillate", "duration": 180, "steps": osc, "events": [],
         "windows": [("oscillate", 20, 180, None)]},
    ]


# ---------------------------------------------------------------- the world

class ClosedHost:
    """nginx (closed-loop template) + the application + the relay of one host."""

    def __init__(self, index, work, nginx, module, sources):
        self.index = index
        self.nginx, self.module = nginx, module
        self.name, self.addr, self.backend, self.status_port = HOSTS[index]
        self.app_port = APP_PORTS[index]
        self.capacity = CAPACITY[index]
        self.dir = os.path.join(work, "cl-" + self.name)
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.proc = self.app = self.relay = None
        self.sources = os.path.join(self.dir, "sources.json")
        with open(self.sources, "w") as f:
            json.dump(sources, f)
        self.set_load("up")

    def set_load(self, text):
        tmp = os.path.join(self.dir, "load.tmp")
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(self.dir, "load"))

    def start(self, policy_lines):
        self.stop()
        self.set_load("up")
        with open(os.path.join(LAB_D, "closed-loop-host.conf")) as f:
            conf = f.read()
        for key, value in [("module", self.module), ("dir", self.dir), ("status_port", self.status_port),
                           ("app_port", self.app_port), ("capacity", self.capacity), ("addr", self.addr),
                           ("backend", self.backend), ("ttl", TTL), ("policy", policy_lines or "")]:
            conf = conf.replace("$" + key, str(value))
        path = os.path.join(self.dir, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        self.app = start([sys.executable, os.path.join(LAB_D, "app.py"), str(self.app_port),
                          str(self.capacity)], os.path.join(self.dir, "app.log"))
        self.proc = start([self.nginx, "-p", self.dir, "-c", path], os.path.join(self.dir, "stdout.log"))
        self.relay = start([sys.executable, os.path.join(LAB_D, "relay.py"), self.addr, self.backend, "0",
                            "53", self.sources], os.path.join(self.dir, "relay.log"))
        for _ in range(100):
            if self.status() is not None and self.app_get("/stats") is not None:
                break
            if self.proc.poll() is not None:
                raise RuntimeError("nginx for %s exited: see %s/error.log" % (self.name, self.dir))
            time.sleep(0.05)
        else:
            raise RuntimeError("closed-loop host %s did not start" % self.name)
        time.sleep(0.5)  # the relay binds its sockets

    def stop(self):
        stop_many([p for p in (self.relay, self.proc, self.app) if p is not None])
        self.proc = self.app = self.relay = None

    def kill(self):
        """A crash of the host: nginx (master and worker) gets SIGKILL."""
        if self.proc is not None:
            stop(self.proc, sig=9)
            self.proc = None

    def app_get(self, path):
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open("http://127.0.0.1:%d%s" % (self.app_port, path), timeout=1) as r:
                return r.read().decode()
        except OSError:
            return None

    def status(self):
        """{service name: status object}, or None when nginx does not answer."""
        try:
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open("http://127.0.0.1:%d/status?format=json" % self.status_port, timeout=0.5) as r:
                doc = json.loads(r.read())
            return {s["name"]: s for s in doc["services"]}
        except (OSError, ValueError, KeyError):
            return None


def rr_zone_text(drained=()):
    """example.com the old way: no delegation; every name below www gets the
    addresses of all hosts (but the drained ones), in rotating order (NSD's
    round-robin), with the same TTL as the module's answers."""
    lines = ["$TTL 3600",
             "example.com.  IN SOA ns.lab. hostmaster.lab. 1 3600 600 86400 3600",
             "example.com.  IN NS ns.lab."]
    for i, h in enumerate(HOSTS):
        if i not in drained:
            lines.append("*.www  %d IN A  %s" % (int(TTL.rstrip("s")), h[1]))
    return "\n".join(lines) + "\n"


class World:
    """The closed loop's parts, set up once: hosts with their relays and
    applications, twelve resolvers, the parent NSD (swapped for the
    round-robin zone when that policy runs)."""

    def __init__(self, lab):
        self.lab = lab
        self.work = lab.work
        self.dist = distances()
        self.hosts = []
        for h in range(len(HOSTS)):
            sources = {resolver_addr(k): self.dist[k][h] for k in range(len(self.dist))}
            self.hosts.append(ClosedHost(h, self.work, lab.nginx, lab.module, sources))
        self.resolvers = []
        for f, cls in enumerate(FAMILIES):
            for i in range(PER_FAMILY):
                k = f * PER_FAMILY + i
                self.resolvers.append(cls(self.work, addr=resolver_addr(k), instance="-cl%d" % k))
        self.parent_mode = "delegation"
        self.nsd_runs = 0
        self.rr_drained = set()

    def addresses(self):
        return [r.addr for r in self.resolvers]

    def set_parent(self, mode, drained=()):
        """Runs the parent NSD with the delegation (the module) or with the
        round-robin zone (optionally without the drained hosts' addresses)."""
        if mode == self.parent_mode and set(drained) == self.rr_drained:
            return
        stop(self.lab.parent)
        self.nsd_runs += 1
        zone = rr_zone_text(drained) if mode == "round-robin" else None
        extra = "\n    round-robin: yes" if mode == "round-robin" else ""
        self.lab.parent = start_parent(self.work, example_zone=zone, tag="nsd-cl%d" % self.nsd_runs,
                                       extra=extra)
        self.parent_mode, self.rr_drained = mode, set(drained)

    def start_resolvers(self):
        for r in self.resolvers:
            r.start()
        ready = [r for r in self.resolvers if r.wait_ready()]
        if len(ready) < len(self.resolvers):
            log("closed loop: %d of %d resolvers came up" % (len(ready), len(self.resolvers)))
        return ready

    def stop_resolvers(self):
        stop_many([r.proc for r in self.resolvers])
        for r in self.resolvers:
            r.proc = None

    def stop(self):
        self.stop_resolvers()
        for h in self.hosts:
            h.stop()


# ---------------------------------------------------------------- one run

def sample(hosts):
    """One reading of every host: load (the meter's unsmoothed upstream
    reading, a fraction of the host's slots), and www's state, smoothed
    load, delay, drop and refuse ratios and answer counters."""
    out = []
    for h in hosts:
        st = h.status()
        if st is None:
            out.append(None)
            continue
        meter = st.get("meter.lab", {})
        www = st.get("www.example.com", {})
        out.append({
            "load": ((meter.get("sources") or {}).get("upstream") or {}).get("load"),
            "state": www.get("state"), "smoothed": www.get("load"), "delay_ms": www.get("delay_ms"),
            "drop": www.get("drop_ratio"), "refuse": www.get("refuse_ratio"),
            "queries": sum((www.get("queries") or {}).get(k, 0) for k in ("udp", "tcp")),
            "answered": (www.get("answered") or 0) + (www.get("delayed") or 0),
        })
    return out


def run_once(world, policy, scenario, quick, seed):
    """One run of one scenario under one policy: fresh resolvers, the
    driver, a status reading per second; returns the raw run."""
    lab = world.lab
    lines = POLICIES[policy]
    world.set_parent("round-robin" if lines is None else "delegation")
    for h in world.hosts:
        h.start(lines)
    ready = world.start_resolvers()
    res_ok = [r.addr for r in ready]
    log("closed loop: %s under %s (%d s, %d resolvers)" % (scenario["run"], policy, scenario["duration"],
                                                            len(res_ok)))
    run_dir = os.path.join(world.work, "cl-runs", "%s-%s" % (policy, scenario["run"]))
    os.makedirs(run_dir, exist_ok=True)
    start_at = time.time() + 1.0
    plan = {"resolvers": [r.addr for r in world.resolvers],
            "hosts": {h[1]: i for i, h in enumerate(HOSTS)},
            "steps": [[t, rate_for(f)] for t, f in scenario["steps"]],
            "duration": scenario["duration"], "hold_ms": list(HOLD_MS),
            "prefix": "s%06x" % random.Random(seed).randrange(1 << 24), "seed": seed,
            "max_open": 4 * sum(CAPACITY), "start_at": start_at}
    plan_path = os.path.join(run_dir, "plan.json")
    with open(plan_path, "w") as f:
        json.dump(plan, f)
    out_path = os.path.join(run_dir, "sessions.jsonl")
    driver = start([sys.executable, os.path.join(LAB_D, "sessions.py"), plan_path, out_path],
                   os.path.join(run_dir, "driver.log"))
    t0 = start_at + (time.monotonic() - time.time())  # the plan's start on the monotonic clock

    def event(what, host):
        h = world.hosts[host]
        log("closed loop: %s host %d" % (what, host + 1))
        if what == "slow":
            h.app_get("/control?slow=2")
        elif what == "kill":
            h.kill()
        elif what in ("drain", "up"):
            if lines is None:  # the old way: the operator edits the zone
                drained = world.rr_drained | {host} if what == "drain" else world.rr_drained - {host}
                world.set_parent("round-robin", drained)
            else:
                h.set_load(what)

    for t, what, host in scenario["events"]:
        timer(t0 + t - time.monotonic(), event, what, host)
    samples = []
    end = t0 + scenario["duration"]
    k = 0
    while time.monotonic() < end and not lab_stopping():
        k += 1
        wait = t0 + k - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        samples.append({"t": round(time.monotonic() - t0, 2), "hosts": sample(world.hosts)})
    # the driver finishes the sessions in flight (bounded by its own limits)
    deadline = time.monotonic() + HOLD_MS[1] / 1000.0 * 2 + 30
    while driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    stop(driver)
    world.stop_resolvers()
    recs = []
    if os.path.exists(out_path):
        with open(out_path) as f:
            recs = [json.loads(line) for line in f if line.strip()]
    return {"policy": policy, "run": scenario["run"], "duration": scenario["duration"],
            "steps": scenario["steps"], "events": scenario["events"], "samples": samples,
            "per_second": per_second(recs, scenario["duration"]),
            "windows": [window_figures(name, a, b, ev, samples, recs)
                        for name, a, b, ev in scenario["windows"]],
            "resolvers_up": len(res_ok)}


def lab_stopping():
    from .procs import stop_requested
    return stop_requested.is_set()


# ---------------------------------------------------------------- figures

def per_second(recs, duration):
    """Sessions started per second: total, failed, and per host."""
    out = []
    for s in range(int(duration)):
        sel = [r for r in recs if s <= r["t"] < s + 1]
        out.append({"t": s, "n": len(sel), "failed": sum(r["status"] != "ok" for r in sel),
                    "hosts": [sum(r["host"] == h and r["status"] == "ok" for r in sel)
                              for h in range(len(HOSTS))]})
    return out


def load_series(samples, h):
    """(t, load) of host h; a host that does not answer its status (killed)
    counts as 0."""
    out = []
    for s in samples:
        st = s["hosts"][h]
        out.append((s["t"], (st or {}).get("load") or 0.0))
    return out


def moving_mean(series, width):
    out = []
    for i, (t, _) in enumerate(series):
        vals = [v for tt, v in series[max(0, i - width + 1):i + 1]]
        out.append((t, sum(vals) / len(vals)))
    return out


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def window_figures(name, a, b, event_at, samples, recs):
    """The figures of one scenario window [a, b) of a run; event_at: when
    its (last) event happened, None for steady windows."""
    hosts = range(len(HOSTS))
    sess = [r for r in recs if a <= r["t"] < b]
    in_win = [s for s in samples if a <= s["t"] < b]
    peak, peak10, swing, flips = [], [], [], []
    settle = None
    means = [moving_mean(load_series(samples, h), MEAN_WINDOW) for h in hosts]
    means10 = [moving_mean(load_series(samples, h), SETTLE_WINDOW) for h in hosts]
    steady_from = a if event_at is None else a + (b - a) / 2
    for h in hosts:
        # a host that does not answer its status (killed) counts as 0, as in load_series()
        loads = [(s["hosts"][h] or {}).get("load") or 0.0 for s in in_win]
        peak.append(round(max(loads), 3) if loads else 0.0)
        m10 = [v for t, v in means10[h] if a + SETTLE_WINDOW <= t < b]
        peak10.append(round(max(m10), 3) if m10 else 0.0)
        m = [v for t, v in means[h] if steady_from + MEAN_WINDOW <= t < b]
        swing.append(round(max(m) - min(m), 3) if m else 0.0)
        states = [s["hosts"][h]["state"] for s in in_win if s["hosts"][h]]
        flips.append(sum(1 for x, y in zip(states, states[1:]) if x != y))
    minutes = (b - a) / 60.0
    if event_at is not None:
        tail = b - (b - event_at) / 4  # the final level: the last quarter's mean
        last_out = event_at
        for h in hosts:
            final = [v for t, v in means10[h] if tail <= t < b]
            level = sum(final) / len(final) if final else 0.0
            for t, v in means10[h]:
                if event_at <= t < b and abs(v - level) > SETTLE_BAND:
                    last_out = max(last_out, t)
        settle_at = last_out - event_at
        # settling that ends in the last quarter is not settling within the run
        settle = round(settle_at, 1) if last_out < tail else None
    failed = [r for r in sess if r["status"] != "ok"]
    kinds = {}
    for r in failed:
        kinds[r["status"]] = kinds.get(r["status"], 0) + 1
    ok = [r for r in sess if r["status"] == "ok"]
    conn = [r["conn_ms"] for r in sess if r.get("conn_ms") is not None]
    dns = [r["dns_ms"] for r in sess if r.get("dns_ms") is not None]
    share = [sum(r["host"] == h for r in ok) for h in hosts]
    fam = {}
    for r in ok:
        f = FAMILIES[r["res"] // PER_FAMILY].name
        fam.setdefault(f, [0] * len(HOSTS))[r["host"]] += 1
    return {
        "name": name, "from": a, "to": b, "event_at": event_at,
        "host_capacity": list(CAPACITY), "peak_load": peak, "peak_load_10s": peak10,
        "peak_floor": peak_floor(sess, a, b), "swing": swing,
        "flips_per_min": round(max(flips) / minutes, 2) if minutes else 0.0,
        "flips": flips, "settle_s": settle, "failed_sessions": len(failed), "sessions": len(sess),
        "failures": kinds, "hosts": share, "families": fam,
        "mean_load": [round(statistics.mean([(s["hosts"][h] or {}).get("load") or 0.0 for s in in_win]
                                            or [0]), 3) for h in hosts],
        "conn_ms_median": round(statistics.median(conn), 2) if conn else None,
        "conn_ms_p99": round(pct(conn, 0.99), 2) if conn else None,
        "dns_ms_median": round(statistics.median(dns), 1) if dns else None,
        "dns_ms_p99": round(pct(dns, 0.99), 1) if dns else None,
    }


def peak_floor(sess, a, b, trials=20):
    """The highest one-second load that chance alone gives a host: the same
    sessions (their number in the window, the same hold times) split among
    the hosts in proportion to their slots, each host's busy slots read once
    per second; the mean over `trials` of the largest reading of any host.
    No policy can keep its peak below this at this offered load."""
    n, span = len(sess), b - a
    if n == 0 or span <= 0:
        return 0.0
    rng = random.Random(n)
    total = sum(CAPACITY)
    peaks = []
    for _ in range(trials):
        starts = sorted(rng.uniform(a, b) for _ in range(n))
        worst, k = 0.0, 0
        busy = [[] for _ in CAPACITY]
        for second in range(int(a), int(b)):
            while k < len(starts) and starts[k] < second:
                pick = rng.uniform(0, total)
                h = 0
                while pick >= CAPACITY[h] and h < len(CAPACITY) - 1:
                    pick -= CAPACITY[h]
                    h += 1
                busy[h].append(starts[k] + rng.uniform(*HOLD_MS) / 1000.0)
                k += 1
            for h in range(len(CAPACITY)):
                busy[h] = [e for e in busy[h] if e > second]
                # the first seconds only fill up: read after one longest hold
                if second >= a + HOLD_MS[1] / 1000.0:
                    worst = max(worst, min(1.0, len(busy[h]) / CAPACITY[h]))
        peaks.append(worst)
    return round(sum(peaks) / len(peaks), 3)


# ---------------------------------------------------------------- the experiment

def run(lab, policies=None, runs=None, repeat=1, skip=()):
    """Stops the open-loop hosts, sets up the closed loop and runs every
    scenario under every policy; stores the results in lab.results."""
    for h in lab.hosts:
        h.stop()
    added = add_resolver_addresses()
    world = World(lab)
    quick = lab.quick
    policies = policies or list(POLICIES)
    out = {"mode": "quick" if quick else "full", "capacity": CAPACITY, "hold_ms": list(HOLD_MS),
           "ttl": TTL, "distances": world.dist,
           "resolvers": [{"family": type(r).name, "label": type(r).label, "addr": r.addr}
                         for r in world.resolvers],
           "policies": {p: POLICIES[p] for p in policies}, "runs": []}
    lab.results["experiments"]["closed-loop"] = out
    try:
        for sc in scenarios(quick):
            if runs and sc["run"] not in runs:
                continue
            for k in range(repeat):
                for i, policy in enumerate(policies):
                    if (policy, sc["run"], k) in skip:
                        continue
                    one = run_once(world, policy, sc, quick, seed=1000 + i + 37 * k)
                    one["repeat"] = k
                    out["runs"].append(one)
                    save_partial(lab)
                    if lab_stopping():
                        return
    finally:
        world.stop()
        if not lab_stopping():  # experiments after this one need the delegation back
            world.set_parent("delegation")
        remove_addresses(added)


def save_partial(lab):
    """The runs so far, beside the results (a long run stopped half-way
    keeps what it measured; scripts/lab --report-only does not read it)."""
    path = os.path.join(os.path.dirname(lab.args.results), "closed-loop-partial.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(lab.results, f)


def add_resolver_addresses():
    import subprocess
    added = []
    for k in range(len(FAMILIES) * PER_FAMILY):
        a = resolver_addr(k)
        if subprocess.run(["ip", "addr", "add", a + "/32", "dev", "lo"],
                          stderr=subprocess.DEVNULL).returncode == 0:
            added.append(a)
    return added


def remove_addresses(addrs):
    import subprocess
    for a in addrs:
        subprocess.run(["ip", "addr", "del", a + "/32", "dev", "lo"], stderr=subprocess.DEVNULL)


def contract(results):
    """closed-loop.json: the fixed figures of every scenario window."""
    cl = results["experiments"]["closed-loop"]
    keys = ["name", "policy", "duration_s", "host_capacity", "peak_load", "swing", "flips_per_min",
            "settle_s", "failed_sessions", "sessions"]
    out = []
    for run in cl["runs"]:
        for w in run["windows"]:
            row = dict(w, policy=run["policy"], duration_s=w["to"] - w["from"])
            out.append({k: row[k] for k in keys})
    return {"scenarios": out}
