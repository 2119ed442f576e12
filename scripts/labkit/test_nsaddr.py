"""Tests of the ns-addresses experiment's delegation, figures, conclusions and
report, and of how scripts/lab keeps its data apart from lab.md
(cd scripts && python3 -m unittest labkit.test_nsaddr)."""

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

from . import ROOT, nsaddr
from .report import write_ns_addresses
from .topology import example_zone

LABELS = {"unbound": "Unbound", "bind": "BIND 9", "pdns": "PowerDNS Recursor",
          "kresd": "Knot Resolver"}


def recs(counts, t0=100.0, failed=0):
    """Driver records: counts[k] answers from host k, spread over 20 s
    (host k's first answer at k/10 s), then `failed` timeouts."""
    out = []
    for k, c in enumerate(counts):
        for i in range(c):
            out.append({"sent": t0 + k / 10 + 20.0 * i / max(1, c), "status": "ok", "host": k,
                        "lat": 0.001, "tag": "u"})
    out += [{"sent": t0 + 1, "status": "timeout", "host": None, "lat": None, "tag": "u"}] * failed
    return out


def results(per_phase):
    """per_phase: {phase: {resolver: counts per host}} -> results as the lab stores them."""
    phases = []
    for name, what, loads in nsaddr.PHASES:
        if name not in per_phase:
            continue
        phases.append({"phase": name, "what": what, "loads": loads, "states": ["ready"] * 9,
                       "res": {n: nsaddr.phase_figures(recs(c), 100.0)
                               for n, c in per_phase[name].items()},
                       "server": [{"queries": sum(c[k] for c in per_phase[name].values()),
                                   "answered": 0, "delayed": 0, "dropped": 0, "refused": 0}
                                  for k in range(9)]})
    return {"mode": "quick", "build": "release", "versions": {"Unbound": "1.17.1"},
            "resolvers": {n: {"label": LABELS[n], "addr": "127.0.0.2%d" % i}
                          for i, n in enumerate(LABELS)},
            "experiments": {"ns-addresses": {
                "duration": 20.0, "rate": 100, "explore_s": nsaddr.EXPLORE_S, "silence": "refuse",
                "ns": [{"name": l + ".example.com", "addresses": a} for l, a in nsaddr.delegation()],
                "hosts": [h[1] for h in nsaddr.HOSTS9], "phases": phases}}}


EVEN = [100] * 9
ONE_PER_NAME = [300, 0, 0, 300, 0, 0, 300, 0, 0]


class Delegation(unittest.TestCase):
    def test_three_names_three_addresses_each(self):
        d = nsaddr.delegation()
        self.assertEqual([l for l, _ in d], ["ns1-www", "ns2-www", "ns3-www"])
        addrs = [a for _, a in d]
        self.assertTrue(all(len(a) == 3 for a in addrs))
        flat = [x for a in addrs for x in a]
        self.assertEqual(len(set(flat)), 9)
        # hosts 1-3 behind ns1-www, 4-6 behind ns2-www, 7-9 behind ns3-www
        self.assertEqual(flat, [h[1] for h in nsaddr.HOSTS9])
        self.assertEqual([nsaddr.name_of_host(k) for k in range(9)], [0, 0, 0, 1, 1, 1, 2, 2, 2])

    def test_zone_file(self):
        z = example_zone(nsaddr.delegation())
        self.assertEqual(len(re.findall(r"^www +3600 IN NS ns\d-www\.example\.com\.$", z, re.M)), 3)
        glue = re.findall(r"^(ns\d-www) +3600 IN A +(\S+)$", z, re.M)
        self.assertEqual(len(glue), 9)
        self.assertEqual([a for l, a in glue if l == "ns2-www"], [h[1] for h in nsaddr.HOSTS9[3:6]])

    def test_phase_c_drains_one_address_of_each_name(self):
        loads = dict((n, l) for n, _, l in nsaddr.PHASES)["C"]
        drained = [k for k, v in enumerate(loads) if v == "drain"]
        self.assertEqual(sorted(nsaddr.name_of_host(k) for k in drained), [0, 1, 2])


class Figures(unittest.TestCase):
    def test_phase_figures(self):
        f = nsaddr.phase_figures(recs([10, 0, 5, 0, 0, 0, 0, 0, 1], failed=2), 100.0)
        self.assertEqual(f["all"]["hosts"], [10, 0, 5, 0, 0, 0, 0, 0, 1])
        self.assertEqual(f["all"]["sent"], 18)
        self.assertEqual(f["first_use_s"][0], 0.0)
        self.assertIsNone(f["first_use_s"][1])
        self.assertAlmostEqual(f["first_use_s"][8], 0.8)
        self.assertEqual(nsaddr.used(f["all"]), 3)
        self.assertEqual(nsaddr.per_name_max(f["all"]), 2)
        self.assertEqual([round(x, 3) for x in nsaddr.name_shares(nsaddr.shares(f["all"]))],
                         [0.938, 0.0, 0.062])


class Conclusions(unittest.TestCase):
    def text(self, per_phase):
        r = results(per_phase)
        return " ".join(nsaddr.conclusions(r["experiments"]["ns-addresses"], LABELS))

    def test_all_nine_only_when_true(self):
        t = self.text({"A": {n: EVEN for n in LABELS}})
        self.assertIn("all four resolver families used all 9 addresses", t)
        self.assertIn("Every family used more than one address of the same NS name", t)
        t = self.text({"A": dict({n: EVEN for n in LABELS}, bind=ONE_PER_NAME)})
        self.assertNotIn("used all 9 addresses", t)
        self.assertIn("BIND 9 used 3 of the 9 addresses", t)
        self.assertIn("Unbound used 9 of the 9 addresses", t)
        self.assertIn("BIND 9 used at most one per name", t)

    def test_none_use_several_per_name(self):
        t = self.text({"A": {n: ONE_PER_NAME for n in LABELS}})
        self.assertIn("No family used more than one address of any NS name", t)

    def test_shedding_and_drain_phases(self):
        b1 = [0, 150, 150, 100, 100, 100, 100, 100, 100]
        c = [0, 150, 150, 0, 150, 150, 0, 150, 150]
        t = self.text({"A": {n: EVEN for n in LABELS}, "B1": {n: b1 for n in LABELS},
                       "C": {n: c for n in LABELS}})
        self.assertIn("Unbound 11% → 0% (hosts 2-3 22% → 33%, hosts 4-9 67% → 67%)", t)
        self.assertIn("Knot Resolver: drained hosts 0%, per name 33% / 33% / 33%, other hosts used 6 of 6", t)
        self.assertIn("Unanswered or failed queries: none.", t)
        self.assertIn("Unbound 9 (3+3+3)", t)
        # the status counters: each host got the answers of all four resolvers
        self.assertIn("In phase C the drained hosts still received 0% of the queries that reached any host (all resolvers together, 0.00 per client query)", t)
        t = self.text({"A": {n: EVEN for n in LABELS},
                       "B2": {n: [0, 0, 0, 600, 0, 0, 0, 0, 300] for n in LABELS}})
        self.assertIn("Unbound 33% → 0% (the largest share of one host 67%)", t)


class Report(unittest.TestCase):
    def test_report_tables(self):
        r = results({"A": {n: EVEN for n in LABELS}, "B3": {n: [0, 0, 0] + [150] * 6 for n in LABELS}})
        with tempfile.TemporaryDirectory() as d:
            text = write_ns_addresses(r, d)
            with open(os.path.join(d, "lab-ns-addresses.md")) as f:
                self.assertEqual(f.read(), text)
        self.assertIn("## Phase A: all nine hosts idle", text)
        self.assertIn("## Phase B3: hosts 1-3 drained", text)
        phase_a = text.split("## Phase A", 1)[1]
        row = re.search(r"^\| Unbound \| (.*)$", phase_a, re.M).group(1).split(" | ")
        self.assertEqual(row[:9], ["11.1%"] * 9)
        self.assertEqual(row[9:12], ["33.3%"] * 3)
        self.assertIn("| queries reaching the host | 400 |", text)
        limits = text.split("## What the resolvers' source limits", 1)[1].split("\n## ", 1)[0]
        for family in ("BIND 9", "PowerDNS Recursor", "Unbound", "Knot Resolver"):
            self.assertRegex(limits, r"(?m)^\| %s \| [^|]+ \| [^|]+/[^|]+ \|$" % family)
        self.assertIn("max-ns-per-resolve", text)
        self.assertIn("max-delegation-servers", text)


class Separation(unittest.TestCase):
    def test_report_only_leaves_lab_md(self):
        """The experiment's data lives in ns-addresses-results.json; rewriting
        the reports from it writes lab-ns-addresses.md and not lab.md."""
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "ns-addresses-results.json"), "w") as f:
                json.dump(results({"A": {n: EVEN for n in LABELS}}), f)
            out = os.path.join(d, "out")
            p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "lab"), "--report-only",
                                "--out", out, "--results", os.path.join(d, "results.json")],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(os.path.exists(os.path.join(out, "lab-ns-addresses.md")))
            self.assertFalse(os.path.exists(os.path.join(out, "lab.md")))

    def test_not_in_the_default_set(self):
        from .experiments import EXPERIMENTS, ON_REQUEST
        self.assertIn("ns-addresses", EXPERIMENTS)
        self.assertIn("ns-addresses", ON_REQUEST)


if __name__ == "__main__":
    unittest.main()
