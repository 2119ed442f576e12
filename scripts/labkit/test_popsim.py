"""Tests of the population model (cd scripts && python3 -m unittest labkit.test_popsim)."""

import random
import unittest

from . import popsim
from .popsim import DEFAULT_CURVE, NEVER, Host, Resolver, parse_shed, shape, simulate, window


def shares(family, curve_of_host0, n=3000, dist=(5, 5, 5), seed=3):
    """Share of n queries one resolver sends to each of three equal hosts,
    host 0 shedding at a fixed load under curve_of_host0."""
    hosts = [Host(100, curve_of_host0), Host(100, NEVER), Host(100, NEVER)]
    hosts[0].smoothed = 0.5  # the fixed load the curves below act at
    r = Resolver(family, dist, random.Random(seed))
    got = [0, 0, 0]
    for q in range(n):
        h = r.resolve(hosts, q * 0.01)
        if h is not None:
            got[h] += 1
    return [g / n for g in got]


def flat(delay_ms=0, drop=0.0, refuse=0.0):
    """A curve that does (delay, drop, refuse) at every load from 0."""
    return {"points": [(0.0, delay_ms, drop, refuse)], "high": 0.98}


class Curve(unittest.TestCase):
    def test_default_curve_as_the_module(self):
        self.assertEqual(shape(DEFAULT_CURVE, 0.4), (0.0, 0.0, 0.0))
        self.assertAlmostEqual(shape(DEFAULT_CURVE, 0.65)[0], 6.0)
        self.assertEqual(tuple(round(x, 3) for x in shape(DEFAULT_CURVE, 0.9)), (100, 0, 0.6))
        self.assertEqual(shape(DEFAULT_CURVE, 0.97), (200, 0, 0.9))
        self.assertIsNone(shape(DEFAULT_CURVE, 0.98))

    def test_parse_shed(self):
        c = parse_shed("dns_load_upstream app;\n dns_shed 0.5:0 0.7:10ms:refuse=0.4 0.9:1s:0.2:refuse=0.6 high=0.95;")
        self.assertEqual(c["high"], 0.95)
        self.assertEqual(c["points"], [(0.5, 0, 0, 0), (0.7, 10, 0, 0.4), (0.9, 1000, 0.2, 0.6)])
        self.assertEqual(parse_shed("dns_shed 0.5:0 0.9:5ms high=0.95 hold=30s;")["points"],
                         [(0.5, 0, 0, 0), (0.9, 5, 0, 0)])
        self.assertAlmostEqual(shape(c, 0.6)[2], 0.2)
        self.assertIsNone(parse_shed("dns_load_upstream app;"))

    def test_hysteresis_at_the_high_mark(self):
        h = Host(10, DEFAULT_CURVE)
        h.smoothed = 0.99
        h.busy = [1e9] * 10
        h.tick(0)
        self.assertTrue(h.silent)
        h.smoothed = 0.95
        h.busy = [1e9] * 9  # keeps the smoothed load near 0.95
        h.tick(0.1)
        self.assertTrue(h.silent, "silence ends only 0.05 below the mark")


class Families(unittest.TestCase):
    def test_unbound_ignores_delays_below_its_band(self):
        s = shares("unbound", flat(delay_ms=100))
        self.assertGreater(s[0], 0.25)

    def test_bind_pdns_kresd_leave_a_host_a_few_ms_late(self):
        for family in ("bind", "pdns", "kresd"):
            s = shares(family, flat(delay_ms=3))
            self.assertLess(s[0], 0.08, family)

    def test_refusals_grade_unbound_and_knot(self):
        for family in ("unbound", "kresd"):
            half = shares(family, flat(refuse=0.5))[0]
            none = shares(family, flat())[0]
            self.assertLess(half, none * 0.75, family)
        self.assertLess(shares("bind", flat(refuse=0.1))[0], 0.05, "BIND leaves at 10% refused")

    def test_nearest_host_wins_without_shedding(self):
        for family in ("bind", "pdns", "kresd"):
            s = shares(family, NEVER, dist=(30, 4, 60))
            self.assertGreater(s[1], 0.9, family)


class ClosedLoop(unittest.TestCase):
    FAMS = [f for f in ("unbound", "bind", "pdns", "kresd") for _ in range(3)]
    DIST = [[2 if h == k % 3 else 20 + 10 * ((k + h) % 5) for h in range(3)] for k in range(12)]

    def run_policy(self, curve, offered=0.7, seconds=80, events=()):
        s = simulate([100, 100, 200], curve, self.FAMS, self.DIST, [(0, offered)], seconds,
                     seed=5, events=events)
        return window(s, 30, seconds)

    def test_nearest_overloads_the_small_hosts(self):
        w = self.run_policy(NEVER)
        self.assertGreater(min(w["mean_load"][:2]), 0.85)
        self.assertLess(w["mean_load"][2], 0.6)

    def test_the_default_curve_moves_load_to_the_big_host(self):
        nearest = self.run_policy(NEVER)
        default = self.run_policy(DEFAULT_CURVE)
        self.assertLess(max(default["mean_load"][:2]), max(nearest["mean_load"][:2]) - 0.1)
        self.assertGreater(default["share"][2], nearest["share"][2] + 0.1)

    def test_a_drained_host_gets_no_new_sessions(self):
        s = simulate([100, 100, 200], DEFAULT_CURVE, self.FAMS, self.DIST, [(0, 0.5)], 60, seed=2,
                     events=[(20, "drain", 0)])
        after = window(s, 22, 60)
        self.assertEqual(after["share"][0], 0)
        self.assertEqual(after["failed"], 0)

    def test_bounded(self):
        self.assertEqual(popsim.poisson(random.Random(1), 0), 0)
        self.assertLessEqual(popsim.poisson(random.Random(1), 1e6), 1000)


if __name__ == "__main__":
    unittest.main()
