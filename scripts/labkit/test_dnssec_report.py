"""Tests of the signed chain's scenario report and of where the lab keeps
its data (cd scripts && python3 -m unittest labkit.test_dnssec_report;
t/lab_report.t runs them)."""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

from . import ROOT
from .analysis import failover_summary, summarize
from .dnssec import report, scenario_checks, scenarios_section
from .dnswire import build_query, parse_response

RESOLVERS = {"unbound": {"label": "Unbound", "addr": "127.0.0.21"},
             "kresd": {"label": "Knot Resolver", "addr": "127.0.0.24"}}


def recs(hosts, t=0.0, ad=True, servfail=0, timeout=0):
    """Driver records: one answer from each host index in hosts, sent at t."""
    out = [{"sent": t, "tag": "u", "lat": 0.001, "status": "ok", "host": h, "ad": ad} for h in hosts]
    out += [{"sent": t, "tag": "u", "lat": 0.001, "status": "servfail", "host": None, "ad": False}] * servfail
    out += [{"sent": t, "tag": "u", "lat": None, "status": "timeout", "host": None, "ad": False}] * timeout
    return out


def drain_run(silence, drained_h1):
    """A drain run (drain at 10 s, up at 25 s of 45 s) whose answers come
    from each host before the drain, from hosts 2 and 3 while drained
    (but for one answer of host 1 in 10-15 s and `drained_h1` in 15-20 s),
    and from all after."""
    at = {0: [0, 0, 1, 2], 5: [0, 1, 2], 10: [0, 1, 2], 15: [1, 2] + [0] * drained_h1, 20: [1, 2],
          25: [1, 2], 30: [0, 1, 2], 35: [0, 1], 40: [2]}
    rs = [r for t, hosts in at.items() for r in recs(hosts, t=t + 1.0)]
    res = []
    for t in sorted(at):
        b = summarize([r for r in rs if t <= r["sent"] < t + 5])
        b["start"] = t
        res.append(b)
    names = [("normal", 0, 10), ("first 5 s drained", 10, 15), ("rest of drain", 15, 25),
             ("first 5 s back", 25, 30), ("rest", 30, 46)]
    phases = [dict(summarize([r for r in rs if lo <= r["sent"] < hi]), phase=n) for n, lo, hi in names]
    return {"silence": silence, "res": {n: res for n in RESOLVERS}, "phases": {n: phases for n in RESOLVERS}}


def scenarios(drained_h1=0, ad=True, synthesis=False, late_h1=None):
    """Data of a run where everything held, unless told otherwise."""
    sweep = [{"load": load, "state": st, "delay_ms": d, "drop_ratio": p,
              "res": {n: summarize(recs(h1 + [1, 2] * 5, ad=ad)) for n in RESOLVERS}}
             for load, st, d, p, h1 in [(0.0, "ready", 0, 0, [0] * 20), (0.95, "shedding", 400, 0.75, [0]),
                                        (1.0, "down", 0, 1, [])]]
    killed = recs([0, 0, 1], t=1.0) + recs([1, 2, 2], t=20.0)
    if synthesis if late_h1 is None else late_h1:
        killed += recs([0], t=19.0)
    return {"others": ["0.6", "0.6"], "ttl": 10, "variants": [{
        "name": "resolver defaults" if synthesis else "no synthesis", "synthesis": synthesis, "seconds": 123.4,
        "sweep": {"count": 300, "rate": 100, "rows": sweep},
        "drain": {"duration": 45.0, "drain_at": 10.0, "up_at": 25.0, "rate": 40,
                  "runs": [drain_run(s, drained_h1) for s in ("drop", "refuse")]},
        "failover": {"duration": 30.0, "kill_at": 13.0, "unique_rate": 40, "cached_rate": 25,
                     "cached_names": 50, "res": {n: failover_summary(killed, 0.0, 13.0, 30.0)
                                                 for n in RESOLVERS}}}]}


def results(sc):
    return {"mode": "full", "build": "release", "resolvers": RESOLVERS, "versions": {},
            "experiments": {"dnssec": {"modes": {}, "scenarios": sc}}}


class Query(unittest.TestCase):
    def test_a_validating_query_asks_with_ad_and_do(self):
        q = build_query(0x1234, "www.example.com", dnssec=True)
        qid, flags, qd, an, ns, ar = struct.unpack(">HHHHHH", q[:12])
        self.assertEqual((qid, flags, qd, an, ns, ar), (0x1234, 0x0120, 1, 0, 0, 1))
        self.assertEqual(q[-11:], b"\0" + struct.pack(">HHIH", 41, 1232, 0x8000, 0))
        plain = build_query(0x1234, "www.example.com")
        self.assertEqual(struct.unpack(">HH", plain[2:4] + plain[10:12]), (0x0100, 0))
        self.assertEqual(q[12:len(plain)], plain[12:])
        self.assertEqual(parse_response(plain)[2:], (0, []))


class Summary(unittest.TestCase):
    def test_ad_is_counted_only_when_asked(self):
        s = summarize(recs([0, 1], ad=True) + recs([2], ad=False, servfail=1))
        self.assertEqual((s["ok"], s["ad"], s["servfail"]), (3, 2, 1))
        plain = [{k: v for k, v in r.items() if k != "ad"} for r in recs([0, 1])]
        self.assertNotIn("ad", summarize(plain))


class Report(unittest.TestCase):
    def test_every_phase_has_a_row_per_resolver(self):
        text = scenarios_section(results(scenarios()))
        for heading in ("### No synthesis", "**Shedding.**", "**Drain and return.**", "**Failover.**",
                        "**What held** (no synthesis):", "Unbound `aggressive-nsec: no`"):
            self.assertIn(heading, text)
        self.assertIn("| host 1 load 0 | Unbound | 30 of 30 | 67% | 17% | 17% | 100% | 0 | 0 |", text)
        self.assertIn("| host 1 load 1 | Knot Resolver | 10 of 10 | 0% | 50% | 50% | 100% | 0 | 0 |", text)
        self.assertEqual(text.count("| refuse: rest of drain | "), 2)
        self.assertIn("| refuse: rest of drain | Unbound | 4 of 4 | 0% | 50% | 50% | 100% | 0 | 0 |", text)
        self.assertIn("| drop: first 5 s drained | Knot Resolver | 3 of 3 | 33% | 33% | 33% | 100% | 0 | 0 |", text)
        self.assertIn("| after the kill | Unbound | 3 of 3 | 0% | 33% | 67% | 100% | 0 | 0 |", text)
        self.assertIn("The runs took 123.4 s (no synthesis).", text)
        self.assertIn("## Shedding, drain and failover with validation on", report(results(scenarios())))

    def test_what_held_comes_from_the_data(self):
        v = scenarios()["variants"][0]
        good = scenario_checks(v, "unbound", "Unbound", 10)
        self.assertIn("shedding holds (host 1: 67% at 0 → 9% at 0.95 → 0% at 1)", good)
        self.assertIn("drain with `dns_silence drop`: 1 answer from host 1 while drained (the last in the "
                      "0–5 s bin), none 5 s after `drain`; 0 SERVFAIL, 0 unanswered; "
                      "host 1 answered again after `up` (2 answers)", good)
        self.assertIn("failover: 3 of 3 unique names answered after the kill (0 SERVFAIL, 0 unanswered), "
                      "none from host 1; cached names: 0 failures", good)
        self.assertIn("every answer with an address AD=1, no SERVFAIL", good)
        self.assertNotIn("**", good.split(": ", 1)[1], "nothing marked as not holding")
        bad = scenario_checks(scenarios(drained_h1=2, ad=False)["variants"][0], "unbound", "Unbound", 10)
        self.assertIn("3 answers from host 1 while drained (the last in the 5–10 s bin), "
                      "**some 5 s after `drain`**", bad)
        self.assertIn("**51 answers without AD=1, 0 SERVFAIL**", bad)
        knot = scenario_checks(scenarios(drained_h1=2)["variants"][0], "kresd", "Knot Resolver", 10)
        self.assertIn("3 answers from host 1 while drained (the last in the 5–10 s bin), "
                      "none 15 s after `drain`", knot, "Knot Resolver synthesizes in both set-ups")

    def test_what_did_not_hold_is_marked(self):
        v = scenarios(late_h1=True)["variants"][0]
        v["sweep"]["rows"][0]["res"]["unbound"] = summarize(recs([0] + [1, 2] * 20))
        said = scenario_checks(v, "unbound", "Unbound", 10)
        self.assertIn("shedding not shown: the resolver did not prefer host 1 at load 0 "
                      "(host 1: 2% at 0 → 9% at 0.95 → 0% at 1)", said)
        self.assertIn("1 answer from host 1, the last sent 6 s after the kill **(later than 1 s)**", said)
        v["sweep"]["rows"][1]["res"]["unbound"] = summarize(recs([0] * 30 + [1, 2]))
        v["sweep"]["rows"][0]["res"]["unbound"] = summarize(recs([0] * 20 + [1, 2]))
        self.assertIn("shedding **did not move the share** (host 1: 91% at 0 → 94% at 0.95 → 0% at 1)",
                      scenario_checks(v, "unbound", "Unbound", 10))

    def test_with_synthesis_a_host_may_be_given_out_for_a_ttl(self):
        v = scenarios(drained_h1=2, synthesis=True)["variants"][0]
        said = scenario_checks(v, "unbound", "Unbound", 10)
        self.assertIn("3 answers from host 1 while drained (the last in the 5–10 s bin), "
                      "none 15 s after `drain`", said)
        self.assertIn("failover: 4 of 4 unique names answered after the kill (0 SERVFAIL, 0 unanswered), "
                      "1 answer from host 1, the last sent 6 s after the kill;", said)
        self.assertNotIn("**", said.split(": ", 1)[1])


class KeptApart(unittest.TestCase):
    def test_the_signed_chain_alone_leaves_lab_md_alone(self):
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "dnssec-results.json"), "w") as f:
                json.dump(results(scenarios()), f)
            lab_md = os.path.join(d, "lab.md")
            with open(lab_md, "w") as f:
                f.write("open-loop results\n")
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "lab"), "--report-only", "--out", d,
                            "--results", os.path.join(d, "results.json")],
                           check=True, capture_output=True)
            with open(lab_md) as f:
                self.assertEqual(f.read(), "open-loop results\n")
            self.assertFalse(os.path.exists(os.path.join(d, "lab-share.svg")))
            with open(os.path.join(d, "lab-dnssec.md")) as f:
                self.assertIn("**What held** (no synthesis):", f.read())


if __name__ == "__main__":
    unittest.main()
