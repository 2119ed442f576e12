"""The Lab: sets up the parent, the hosts and the resolvers that work,
records the module's default policy, and runs the experiments (baseline,
load sweep, failover, drain, startup gating, distance; the closed loop,
the signed chain, the address move and several addresses per NS name
have their own modules), each writing its figures into the results that
report.py turns into docs/lab.md (and the pages beside it).
"""

import random
import socket
import threading
import time

from .analysis import bins, counter_delta, counters, failover_summary, summarize
from .addrmove import exp_address_move
from .dnssec import exp_dnssec
from .dnswire import ask, drive
from .procs import log, stop_many, timer
from .resolvers import RESOLVERS
from .topology import HOST_OF_ADDR, HOSTS, LAB_SILENCE, PARENT_ADDR, ZONE, Host, find_build, \
    start_parent

APP_PORT = 9081  # the gating experiment's application port (nothing listens at first)


def uniq_plan(t0, rate, count, tag="u", prefix=None):
    """count unique names below ZONE (never cached: the wildcard answers
    them), one every 1/rate seconds from t0."""
    prefix = prefix or "q%06x" % random.randrange(1 << 24)
    return [(t0 + k / rate, "%s-%d.%s" % (prefix, k, ZONE), tag) for k in range(count)]


class Lab:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.quick = args.quick
        self.nginx, self.module, profile = find_build(args.no_build)
        log("nginx and module: %s build" % profile)
        self.hosts = []
        self.resolvers = []
        self.skipped = {}
        self.results = {"mode": "quick" if args.quick else "full", "started": time.time(),
                        "build": profile, "host_silence": LAB_SILENCE,
                        "resolvers": {}, "skipped": {}, "experiments": {}}
        self.parent = None
        self.n = 300 if self.quick else 1000  # queries per resolver per setting
        self.reps = 1 if self.quick else 3  # fresh-resolver repetitions per setting
        self.rate = 200  # queries per second per resolver
        self.results["reps"] = self.reps
        # the driver's queries ask for validation (AD=1, DO=1) and record
        # the AD bit (the signed chain of dnssec.py)
        self.validating = False

    # --- set-up
    def setup(self):
        self.parent = start_parent(self.work)
        log("parent/root NSD on %s" % PARENT_ADDR)
        self.hosts = [Host(i, self.work, self.nginx, self.module) for i in range(len(HOSTS))]
        self.results["module_defaults"] = self.read_module_defaults()
        self.start_hosts()
        wanted = self.args.resolvers.split(",") if self.args.resolvers else None
        for cls in RESOLVERS:
            r = cls(self.work)
            if wanted and r.name not in wanted:
                continue
            if not r.available():
                self.skipped[r.name] = "%s not installed (scripts/lab --install)" % r.binary
                continue
            r.start()
            ok = r.wait_ready()
            if ok:
                rec = ask(r.addr, "check-%d.%s" % (random.randrange(1 << 30), ZONE), timeout=3)
                ok = rec is not None and rec["status"] == "ok"
                if not ok:
                    log("%s does not resolve %s: %s" % (r.label, ZONE, rec and rec["status"]))
            r.stop()
            if ok:
                self.resolvers.append(r)
                log("%s on %s resolves through the delegation" % (r.label, r.addr))
            else:
                self.skipped[r.name] = "did not resolve through the delegation; log: %s" % \
                    r.log_tail().strip().replace("\n", " | ")[-400:]
                log("skipping %s: %s" % (r.label, self.skipped[r.name]))
        self.results["resolvers"] = {r.name: {"label": r.label, "addr": r.addr}
                                     for r in self.resolvers}
        self.results["skipped"] = self.skipped
        if not self.resolvers:
            raise RuntimeError("no resolver works")

    def read_module_defaults(self):
        """The policy that host 1's status endpoint reports when its
        configuration sets neither dns_shed nor dns_silence: the module's
        defaults, which the report states next to the measurements. None
        when the status endpoint does not report a policy."""
        host = self.hosts[0]
        host.start(silence=None)
        policy = (host.status() or {}).get("policy")
        host.stop()
        if policy is None:
            log("the status endpoint reports no policy: the module's defaults stay unknown")
        else:
            log("module defaults: high mark %s, dns_silence %s" %
                (policy.get("high"), policy.get("silence")))
        return policy

    def start_hosts(self, **kw):
        for h in self.hosts:
            h.start(**kw)

    def loads(self, *values):
        for h, v in zip(self.hosts, values):
            h.set_load(v)
        time.sleep(1.0)  # the module reads the file four times a second

    def fresh_resolvers(self):
        for r in self.resolvers:
            r.start()
        ready = []
        for r in self.resolvers:
            if r.wait_ready():
                ready.append(r)
            else:
                log("%s did not come up: %s" % (r.label, r.log_tail()[-300:]))
        return ready

    def stop_resolvers(self):
        stop_many([r.proc for r in self.resolvers])
        for r in self.resolvers:
            r.proc = None

    def run_parallel(self, plans, host_of=None):
        """plans: {resolver: plan}; drives all at once, returns {name: recs}.
        host_of: what an answer's address means (default: the host's index)."""
        out = {}

        def worker(r, plan):
            out[r.name] = drive(r.addr, plan, host_of=host_of or HOST_OF_ADDR, dnssec=self.validating)

        threads = [threading.Thread(target=worker, args=(r, p), daemon=True)
                   for r, p in plans.items()]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():  # short joins: Ctrl-C still reaches the main thread
                t.join(0.2)
        return out

    def snapshot(self):
        return [counters(h.status()) for h in self.hosts]

    def measure(self, count, rate, reps=None):
        """`reps` (default: the mode's) times: fresh resolvers, `count`
        unique names through each at `rate`/s. Returns the pooled summary
        per resolver (with each repetition's host shares) and host counters
        summed over the runs."""
        pooled, per_rep, server = {}, {}, None
        for _ in range(self.reps if reps is None else reps):
            ready = self.fresh_resolvers()
            before = self.snapshot()
            t0 = time.monotonic() + 0.2
            recs = self.run_parallel({r: uniq_plan(t0, rate, count) for r in ready})
            after = self.snapshot()
            self.stop_resolvers()
            for name, v in recs.items():
                pooled.setdefault(name, []).extend(v)
                per_rep.setdefault(name, []).append(summarize(v)["hosts"])
            delta = [counter_delta(a, b) for a, b in zip(before, after)]
            if server is None:
                server = delta
            else:
                server = [None if a is None or b is None else {k: a[k] + b[k] for k in a}
                          for a, b in zip(server, delta)]
        res = {}
        for name, v in pooled.items():
            res[name] = summarize(v)
            res[name]["reps"] = per_rep[name]
        return res, server

    # --- experiments
    def exp_baseline(self):
        n, rate = self.n, self.rate
        log("baseline: equal load, %d queries per resolver at %d/s" % (n, rate))
        self.loads("0", "0", "0")
        res, server = self.measure(n, rate)
        self.results["experiments"]["baseline"] = {"count": n, "rate": rate, "res": res,
                                                   "server": server}

    def sweep_rows(self, settings, n, rate, others=("0", "0"), reps=None, refuse=True):
        """Host 1's load stepped through `settings` (hosts 2 and 3 at
        `others`), `measure(n, rate, reps)` at each; refuse: then load 1.0
        with dns_silence refuse. One row per setting."""
        rows = []
        for load in settings:
            log("sweep: host1 load %.2f" % load)
            self.loads("%.2f" % load, *others)
            res, server = self.measure(n, rate, reps)
            st = self.hosts[0].status() or {}
            rows.append({"load": load, "silence": LAB_SILENCE, "res": res, "server": server,
                         "state": st.get("state"), "delay_ms": st.get("delay_ms"),
                         "drop_ratio": st.get("drop_ratio")})
        if refuse:
            # the same silence answered with a fast REFUSED instead of nothing
            log("sweep: host1 load 1.00 with dns_silence refuse")
            self.hosts[0].start(silence="refuse")
            self.loads("1.0", *others)
            res, server = self.measure(n, rate, reps)
            rows.append({"load": 1.0, "silence": "refuse", "res": res, "server": server,
                         "state": (self.hosts[0].status() or {}).get("state")})
            self.hosts[0].start()
        return rows

    def exp_sweep(self):
        n, rate = self.n, self.rate
        settings = [0.6, 0.7, 0.8, 0.9, 0.95, 1.0] if self.quick else \
            [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
        rows = self.sweep_rows(settings, n, rate)
        self.results["experiments"]["sweep"] = {"count": n, "rate": rate, "rows": rows}

    def failover_params(self, quick):
        """(duration, kill time, unique names per second) of a failover run."""
        return (30.0, 13.0, 40) if quick else (45.0, 17.0, 100)

    def exp_failover(self):
        self.results["experiments"]["failover"] = self.failover_run(*self.failover_params(self.quick))

    def failover_run(self, dur, kill_at, urate):
        """Unique names at `urate`/s and cached names through fresh
        resolvers for `dur` s; host 1's nginx killed at `kill_at` s, started
        again afterwards. Returns the run's figures."""
        crate, cnames, ttl = 25, 50, 10.0
        log("failover: host1 killed at %.0f s of %.0f s (TTL 10 s)" % (kill_at, dur))
        # hosts 2 and 3 answer 2 ms late, so the resolvers that follow the
        # fastest server prefer host 1: the host that fails is the busy one
        self.loads("0", "0.6", "0.6")
        ready = self.fresh_resolvers()
        t0 = time.monotonic() + 0.5
        plans = {}
        for r in ready:
            plan = uniq_plan(t0, urate, int(dur * urate))
            prefix = "c%06x" % random.randrange(1 << 24)
            # cached names: name k first asked at k * TTL / cnames, then every
            # cnames / crate seconds, so that cache expiries spread evenly
            period = cnames / crate
            for k in range(cnames):
                t = k * ttl / cnames
                while t < dur:
                    plan.append((t0 + t, "%s-%d.%s" % (prefix, k, ZONE), "c"))
                    t += period
            plans[r] = sorted(plan)
        timer(t0 + kill_at - time.monotonic(), self.hosts[0].kill)
        recs = self.run_parallel(plans)
        self.stop_resolvers()
        out = {}
        for name, rs in recs.items():
            out[name] = failover_summary(rs, t0, kill_at, dur)
        self.hosts[0].start()
        self.loads("0", "0", "0")
        return {"duration": dur, "kill_at": kill_at, "unique_rate": urate, "cached_rate": crate,
                "cached_names": cnames, "other_load": 0.6, "res": out}

    def drain_params(self, quick):
        """(duration, drain time, return time, unique names per second) of
        a drain run."""
        return (45.0, 10.0, 25.0, 40) if quick else (240.0, 20.0, 60.0, 100)

    def exp_drain(self):
        dur, drain_at, up_at, rate = self.drain_params(self.quick)
        runs = [self.drain_run(silence, dur, drain_at, up_at, rate) for silence in ("drop", "refuse")]
        self.hosts[0].start()
        self.results["experiments"]["drain"] = {
            "duration": dur, "drain_at": drain_at, "up_at": up_at, "rate": rate, "bin": 5,
            "runs": runs}

    def drain_run(self, silence, dur, drain_at, up_at, rate, others=("0", "0")):
        """Host 1 (with `silence`) drained at `drain_at` s and back at
        `up_at` s of `dur` s of unique names at `rate`/s through fresh
        resolvers; hosts 2 and 3 at load `others`. Returns the run: 5 s
        bins and phases per resolver."""
        log("drain (dns_silence %s): host1 drained at %.0f s, back at %.0f s, %.0f s in all" %
            (silence, drain_at, up_at, dur))
        self.hosts[0].start(silence=silence)
        self.loads("0", *others)
        ready = self.fresh_resolvers()
        t0 = time.monotonic() + 0.5
        plans = {r: uniq_plan(t0, rate, int(dur * rate)) for r in ready}
        timer(t0 + drain_at - time.monotonic(), self.hosts[0].set_load, "drain")
        timer(t0 + up_at - time.monotonic(), self.hosts[0].set_load, "up")
        recs = self.run_parallel(plans)
        self.stop_resolvers()
        phases = {}
        for name, rs in recs.items():
            phases[name] = [
                dict(summarize([r for r in rs if lo <= r["sent"] - t0 < hi]), phase=ph)
                for ph, lo, hi in [("normal", 0, drain_at),
                                   ("first 5 s drained", drain_at, drain_at + 5),
                                   ("rest of drain", drain_at + 5, up_at),
                                   ("first 5 s back", up_at, up_at + 5),
                                   ("rest", up_at + 5, dur + 1)]]
        self.hosts[0].set_load("0")
        return {"silence": silence,
                "res": {name: bins(rs, t0, 5.0, dur) for name, rs in recs.items()},
                "phases": phases}

    def exp_gating(self):
        n, rate = self.n, self.rate
        log("gating: host3 probes tcp://127.0.0.1:%d, nothing listening" % APP_PORT)
        self.loads("0", "0", "0")
        probe = "dns_load_probe tcp://127.0.0.1:%d interval=1s timeout=500ms rise=2 fall=2;" % APP_PORT
        self.hosts[2].start(probe=probe, silence=LAB_SILENCE)
        time.sleep(1.5)
        state_a = (self.hosts[2].status() or {}).get("state")
        res_a, server_a = self.measure(n, rate)
        # now the application comes up: a listener on the probed port
        app = socket.socket()
        app.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        app.bind(("127.0.0.1", APP_PORT))
        app.listen(64)
        stop_app = threading.Event()

        def accept_loop():
            app.settimeout(0.2)
            while not stop_app.is_set():
                try:
                    c, _ = app.accept()
                    c.close()
                except OSError:
                    pass

        th = threading.Thread(target=accept_loop, daemon=True)
        th.start()
        t_up = time.monotonic()
        state_b = None
        for _ in range(100):
            state_b = (self.hosts[2].status() or {}).get("state")
            if state_b == "ready":
                break
            time.sleep(0.1)
        ready_after = time.monotonic() - t_up
        res_b, server_b = self.measure(n, rate)
        stop_app.set()
        th.join()
        app.close()
        self.hosts[2].start()
        self.results["experiments"]["gating"] = {
            "count": n, "rate": rate, "app_port": APP_PORT, "silence": LAB_SILENCE,
            "phases": [{"phase": "app not listening", "state": state_a, "res": res_a,
                        "server": server_a},
                       {"phase": "app listening", "state": state_b, "res": res_b,
                        "server": server_b, "ready_after": ready_after}]}

    def exp_distance(self):
        n, rate = self.n, self.rate
        dist = [2, 20, 60]
        settings = [0.0, 0.7, 0.8, 0.9] if self.quick else [0.0, 0.6, 0.7, 0.8, 0.9, 0.95]
        log("distance: relays add %s ms round trip" % dist)
        for h, d in zip(self.hosts, dist):
            h.start(behind_relay_ms=d)
        rows = []
        for load in settings:
            log("distance: near host load %.2f" % load)
            self.loads("%.2f" % load, "0", "0")
            res, server = self.measure(n, rate)
            rows.append({"load": load, "res": res, "server": server})
        self.loads("0", "0", "0")  # the experiments after this one start from idle hosts
        for h in self.hosts:
            h.start()
        self.results["experiments"]["distance"] = {"count": n, "rate": rate, "rtt_ms": dist,
                                                   "rows": rows}

    def exp_ns_addresses(self):
        from . import nsaddr
        nsaddr.run(self)

    def exp_closed_loop(self):
        from . import closedloop
        closedloop.run(self, policies=self.args.policies, runs=self.args.runs, repeat=self.args.repeat,
                       skip=getattr(self.args, "skip_runs", set()))

    def run(self, experiments):
        """Sets up, then runs the named experiments in the order given."""
        self.setup()
        for name in experiments:
            t = time.monotonic()
            EXPERIMENTS[name](self)
            self.results.setdefault("seconds", {})[name] = round(time.monotonic() - t, 1)
        self.results["elapsed"] = round(time.time() - self.results["started"], 1)


# name (as --only takes it) → the experiment, in the order of a full run
EXPERIMENTS = {
    "baseline": Lab.exp_baseline,
    "sweep": Lab.exp_sweep,
    "failover": Lab.exp_failover,
    "drain": Lab.exp_drain,
    "gating": Lab.exp_gating,
    "distance": Lab.exp_distance,
    "closed-loop": Lab.exp_closed_loop,
    "dnssec": exp_dnssec,
    "address-move": exp_address_move,
    "ns-addresses": Lab.exp_ns_addresses,
}
# run only when named in --only: they take long, or answer a question of their own
ON_REQUEST = ["closed-loop", "ns-addresses"]
