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


def phases(normal, first, rest, back, end):
    names = ["normal", "first 5 s drained", "rest of drain", "first 5 s back", "rest"]
    return [dict(summarize(r), phase=n) for n, r in zip(names, [normal, first, rest, back, end])]


def scenarios(drained_h1=0, ad=True):
    """Data of a run where everything held, unless told otherwise."""
    sweep = [{"load": load, "state": st, "delay_ms": d, "drop_ratio": p,
              "res": {n: summarize(recs(h1 + [1, 2] * 5, ad=ad)) for n in RESOLVERS}}
             for load, st, d, p, h1 in [(0.0, "ready", 0, 0, [0] * 20), (0.95, "shedding", 400, 0.75, [0]),
                                        (1.0, "down", 0, 1, [])]]
    runs = [{"silence": s, "res": {}, "phases": {n: phases(recs([0, 0, 1, 2]), recs([0, 1, 2]),
                                                             recs([1, 2] + [0] * drained_h1), recs([1, 2]),
                                                             recs([0, 1, 2]))
                                                  for n in RESOLVERS}}
            for s in ("drop", "refuse")]
    killed = recs([0, 0, 1], t=1.0) + recs([1, 2, 2], t=20.0)
    return {"others": ["0.6", "0.6"], "seconds": 123.4,
            "sweep": {"count": 300, "rate": 100, "rows": sweep},
            "drain": {"duration": 45.0, "drain_at": 10.0, "up_at": 25.0, "rate": 40, "runs": runs},
            "failover": {"duration": 30.0, "kill_at": 13.0, "unique_rate": 40, "cached_rate": 25,
                         "cached_names": 50, "res": {n: failover_summary(killed, 0.0, 13.0, 30.0)
                                                     for n in RESOLVERS}}}


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
        for heading in ("### Shedding", "### Drain and return", "### Failover", "### What held"):
            self.assertIn(heading, text)
        self.assertIn("| host 1 load 0 | Unbound | 30 of 30 | 67% | 17% | 17% | 100% | 0 | 0 |", text)
        self.assertIn("| host 1 load 1 | Knot Resolver | 10 of 10 | 0% | 50% | 50% | 100% | 0 | 0 |", text)
        self.assertEqual(text.count("| refuse: rest of drain | "), 2)
        self.assertIn("| after the kill | Unbound | 3 of 3 | 0% | 33% | 67% | 100% | 0 | 0 |", text)
        self.assertIn("These runs took 123.4 s.", text)
        self.assertIn("## Shedding, drain and failover with validation on", report(results(scenarios())))

    def test_what_held_comes_from_the_data(self):
        good = scenario_checks(scenarios(), "unbound", "Unbound")
        self.assertIn("shedding holds (host 1: 67% at 0 → 9% at 0.95 → 0% at 1)", good)
        self.assertIn("drain with `dns_silence drop`: 1 answer from host 1 in the first 5 s drained, "
                      "none after that, 0 SERVFAIL, 0 unanswered; host 1 answered again after `up` (1 answer)",
                      good)
        self.assertIn("failover: 3 of 3 unique names answered after the kill", good)
        self.assertIn("every answer with an address AD=1, no SERVFAIL", good)
        self.assertNotIn("**", good.split(": ", 1)[1], "nothing marked as not holding")
        bad = scenario_checks(scenarios(drained_h1=2, ad=False), "unbound", "Unbound")
        self.assertIn("**2 later in the drain**", bad)
        self.assertIn("**51 answers without AD=1, 0 SERVFAIL**", bad)


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
                self.assertIn("### What held", f.read())


if __name__ == "__main__":
    unittest.main()
