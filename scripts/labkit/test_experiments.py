"""The Lab's sweep, drain and failover runs, called as the open-loop
experiments and as the signed chain's scenarios call them, against stand-in
hosts and resolvers (no processes, no network): what each run does to host
1 and what it returns (cd scripts && python3 -m unittest
labkit.test_experiments; t/lab_report.t runs it)."""

import unittest
from unittest import mock

from . import experiments
from .dnssec import SCENARIO_OTHERS, SCENARIO_VARIANTS, scenarios
from .experiments import Lab


class Host:
    def __init__(self, index):
        self.index = index
        self.dnssec = ""
        self.log = []

    def start(self, **kw):
        self.log.append(("start", kw, self.dnssec))

    def set_load(self, text):
        self.log.append(("load", text))

    def kill(self):
        self.log.append(("kill",))

    def status(self):
        return {"state": "ready", "delay_ms": 0, "drop_ratio": 0,
                "queries": {"udp": 0, "tcp": 0}, "dropped": {}, "answered": 0, "delayed": 0,
                "refused_by_policy": 0}


class Resolver:
    def __init__(self, name):
        self.name = name
        self.synthesis = True
        self.seen = []


def record(host, sent, tag, validating):
    """What the driver records for an answer of host index `host`."""
    rec = {"sent": sent, "tag": tag, "lat": 0.001, "status": "ok", "host": host}
    return dict(rec, ad=True) if validating else rec


def stand_in(quick=True):
    """A Lab with stand-in hosts and resolvers: every plan is answered by
    host 2 at once; queries ask for validation when the Lab says so."""
    lab = Lab.__new__(Lab)
    lab.quick, lab.reps, lab.n, lab.rate = quick, 1, 10, 100
    lab.hosts = [Host(i) for i in range(3)]
    lab.resolvers = [Resolver("unbound"), Resolver("kresd")]
    lab.results = {"experiments": {}}
    lab.validating = False
    lab.fresh_resolvers = lambda: [r for r in lab.resolvers if not r.seen.append(r.synthesis)]
    lab.stop_resolvers = lambda: None

    def run_parallel(plans):
        return {r.name: [record(1, t, tag, lab.validating) for t, _, tag in plan]
                for r, plan in plans.items()}

    lab.run_parallel = run_parallel
    return lab


@mock.patch.object(experiments.time, "sleep", lambda s: None)
@mock.patch.object(experiments, "timer", lambda delay, fn, *args: fn(*args))
class Runs(unittest.TestCase):
    def test_the_open_loop_runs_keep_their_results(self):
        lab = stand_in()
        lab.exp_sweep()
        rows = lab.results["experiments"]["sweep"]["rows"]
        self.assertEqual([(r["load"], r["silence"]) for r in rows],
                         [(x, "drop") for x in (0.6, 0.7, 0.8, 0.9, 0.95, 1.0)] + [(1.0, "refuse")])
        self.assertNotIn("ad", rows[0]["res"]["unbound"], "no validation asked")
        self.assertIn(("load", "1.0"), lab.hosts[0].log)
        self.assertIn(("start", {"silence": "refuse"}, ""), lab.hosts[0].log)
        lab.exp_drain()
        d = lab.results["experiments"]["drain"]
        self.assertEqual((d["duration"], d["drain_at"], d["up_at"], d["rate"]), (45.0, 10.0, 25.0, 40))
        self.assertEqual([r["silence"] for r in d["runs"]], ["drop", "refuse"])
        self.assertEqual([p["phase"] for p in d["runs"][0]["phases"]["kresd"]],
                         ["normal", "first 5 s drained", "rest of drain", "first 5 s back", "rest"])
        self.assertEqual(len(d["runs"][1]["res"]["unbound"]), 9, "5 s bins")
        h1 = [e for e in lab.hosts[0].log if e[0] == "load"]
        self.assertIn(("load", "drain"), h1)
        self.assertIn(("load", "up"), h1)
        lab.exp_failover()
        f = lab.results["experiments"]["failover"]
        self.assertEqual((f["duration"], f["kill_at"], f["unique_rate"]), (30.0, 13.0, 40))
        self.assertEqual(f["res"]["unbound"]["after"]["hosts"], [0, 680, 0])
        self.assertIn(("kill",), lab.hosts[0].log)
        self.assertEqual(lab.hosts[0].log[-1][0], "load", "loads back to 0 after the restart")

    def test_the_scenarios_run_with_signing_hosts_and_validating_resolvers(self):
        lab = stand_in(quick=False)
        out = scenarios(lab, ["dns_dnssec_key k%d;" % i for i in range(3)])
        self.assertEqual([v["name"] for v in out["variants"]], [v["name"] for v in SCENARIO_VARIANTS])
        nosyn, defaults = out["variants"]
        self.assertEqual([r["load"] for r in nosyn["sweep"]["rows"]], [0.0, 0.95, 1.0])
        self.assertNotIn("sweep", defaults)
        self.assertEqual([r["silence"] for r in nosyn["drain"]["runs"]], ["drop", "refuse"])
        self.assertEqual([r["silence"] for r in defaults["drain"]["runs"]], ["refuse"])
        self.assertEqual(nosyn["drain"]["duration"], 45.0, "the quick mode's figures in a full run")
        self.assertEqual(nosyn["failover"]["duration"], 30.0)
        s = nosyn["sweep"]["rows"][0]["res"]["unbound"]
        self.assertEqual((s["ok"], s["ad"]), (300, 300), "validation asked and recorded")
        self.assertEqual(defaults["failover"]["res"]["kresd"]["after"]["ad"], 680)
        # the other hosts at SCENARIO_OTHERS, every start with the signing lines
        self.assertIn(("load", SCENARIO_OTHERS[0]), lab.hosts[1].log)
        starts = [e for h in lab.hosts for e in h.log if e[0] == "start"]
        self.assertTrue(starts and all(e[2].startswith("dns_dnssec_key") for e in starts))
        self.assertEqual(lab.resolvers[0].seen[0], False, "no synthesis first")
        self.assertEqual(lab.resolvers[0].seen[-1], True, "then the defaults")
        # and everything back as it was
        self.assertEqual([h.dnssec for h in lab.hosts], ["", "", ""])
        self.assertTrue(all(r.synthesis for r in lab.resolvers))
        self.assertFalse(lab.validating)


if __name__ == "__main__":
    unittest.main()
