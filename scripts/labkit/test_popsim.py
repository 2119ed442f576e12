"""Tests of the population model (cd scripts && python3 -m unittest labkit.test_popsim)."""

import random
import unittest

from . import fleet, popsim
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


def picks(family, names, dist, n=2000, seed=4, hosts=None):
    """How often one resolver of `family` picks each host over n resolutions
    of a delegation `names` (lists of host indices), every host answering."""
    hosts = hosts or [Host(100, NEVER) for _ in dist]
    r = Resolver(family, dist, random.Random(seed), names)
    got = [0] * len(dist)
    for q in range(n):
        h = r.resolve(hosts, q * 0.01)
        if h is not None:
            got[h] += 1
    return [g / n for g in got], r


class Regions(unittest.TestCase):
    def test_distances_by_region(self):
        cap, hreg = fleet.hosts(12, 3)
        fams, rreg = fleet.resolvers(60, 3)
        d = fleet.distances(rreg, hreg)
        for k, row in enumerate(d):
            for h, ms in enumerate(row):
                if rreg[k] == hreg[h]:
                    self.assertTrue(1 <= ms <= 15, (k, h, ms))
                else:
                    self.assertTrue(30 <= ms <= 200, (k, h, ms))
        self.assertEqual(d, fleet.distances(rreg, hreg), "reproducible from the seed")
        self.assertNotEqual(d, fleet.distances(rreg, hreg, seed=99))
        grown = fleet.distances(rreg, hreg + [2])
        self.assertEqual([row[:12] for row in grown], d, "a host keeps its distances when the fleet grows")
        self.assertEqual(sorted(set(rreg)), [0, 1, 2])
        self.assertEqual(hreg, [0] * 4 + [1] * 4 + [2] * 4)

    def test_regional_demand_comes_from_the_regions_resolvers(self):
        st = fleet.setting(6, 2, 40, only="bind")  # Unbound would spread within its 400 ms band
        s = simulate(st["capacity"], NEVER, st["families"], st["distances"], [(0, 0.3)], 30, seed=3,
                     host_region=st["host_region"], resolver_region=st["resolver_region"], demand=[(0, [1, 0])])
        w = window(s, 10, 30)
        region1 = sum(w["share"][h] for h in range(6) if st["host_region"][h] == 1)
        self.assertLess(region1, 0.02, "nearest hosts of region 0's resolvers are in region 0")
        s = simulate(st["capacity"], NEVER, st["families"], st["distances"], [(0, 0.3)], 30, seed=3,
                     host_region=st["host_region"], resolver_region=st["resolver_region"], demand=[(0, [0, 1])])
        w = window(s, 10, 30)
        region1 = sum(w["share"][h] for h in range(6) if st["host_region"][h] == 1)
        self.assertGreater(region1, 0.98)

    def test_a_regional_outage_sends_the_load_to_the_other_regions(self):
        st = fleet.setting(6, 2, 80)
        s = simulate(st["capacity"], DEFAULT_CURVE, st["families"], st["distances"], [(0, 0.35)], 160, seed=2,
                     host_region=st["host_region"], resolver_region=st["resolver_region"],
                     demand=[(0, [0.8, 0.2])], events=[(40, "region-kill", 0), (80, "region-return", 0)])
        region = lambda w, g: sum(w["share"][h] for h in range(6) if st["host_region"][h] == g)
        before, during, after = window(s, 20, 40), window(s, 45, 80), window(s, 130, 160)
        self.assertGreater(region(before, 0), 0.6)
        self.assertEqual(region(during, 0), 0, "no session lands on a dead host")
        self.assertGreater(during["sessions"], before["sessions"] * 1.5 * 0.8)
        self.assertLess(during["failed"], 0.05 * during["sessions"])
        self.assertGreater(max(during["mean_load"][h] for h in range(6) if st["host_region"][h] == 1),
                           max(before["mean_load"][h] for h in range(6) if st["host_region"][h] == 1) + 0.2)
        self.assertGreater(region(after, 0), 0.3, "the region gets its clients back after it returns")
        self.assertTrue(any(x["delayed"] for x in s[40:50]), "resolvers met the dead hosts' silence")

    def test_settle(self):
        samples = [{"t": t, "load": [0.5 if t < 30 else 0.8]} for t in range(100)]
        self.assertEqual(fleet.settle(samples, [0], 20, 100), 12.0)  # the 5 s mean is 0.68 at 32 s, 0.74 at 33 s
        flat = [{"t": t, "load": [0.5]} for t in range(100)]
        self.assertEqual(fleet.settle(flat, [0], 20, 100), 0)
        wild = [{"t": t, "load": [0.2 if t % 20 < 10 else 0.9]} for t in range(100)]
        self.assertIsNone(fleet.settle(wild, [0], 20, 100))


class Delegation(unittest.TestCase):
    N = 40
    DIST = [60.0] * 40

    def dist_nearest(self, h):
        d = list(self.DIST)
        d[h] = 2.0
        return d

    def test_bind_uses_the_first_20_ns_names(self):
        one = fleet.delegation(self.N, self.N)
        share, r = picks("bind", one, self.dist_nearest(30))
        self.assertEqual(r.view, list(range(20)))
        self.assertEqual(share[30], 0, "the nearest host is under the 31st NS name")
        self.assertEqual(sum(share[20:]), 0)
        share, r = picks("bind", one, self.dist_nearest(5))
        self.assertGreater(share[5], 0.9)

    def test_several_addresses_per_name_expose_every_host(self):
        five = fleet.delegation(self.N, 8)
        self.assertEqual(sorted(h for name in five for h in name), list(range(self.N)))
        for family in ("bind", "unbound", "pdns"):
            share, r = picks(family, five, self.dist_nearest(30))
            self.assertEqual(r.view, list(range(self.N)), family)
            if family != "unbound":  # Unbound spreads within its 400 ms band
                self.assertGreater(share[30], 0.85, family)

    def test_powerdns_samples_13_names_per_resolution(self):
        share, r = picks("pdns", fleet.delegation(self.N, self.N), self.dist_nearest(30))
        self.assertTrue(0.2 < share[30] < 0.45, share[30])  # 13 / 40 of the resolutions see it
        self.assertGreater(sum(1 for x in share if x > 0), 30, "over time it picks nearly every host")
        share, r = picks("pdns", fleet.delegation(13, 13), [60.0] * 12 + [2.0])
        self.assertGreater(share[12], 0.9, "13 NS names: no sampling")

    def test_unbound_sees_every_ns_name(self):
        share, r = picks("unbound", fleet.delegation(self.N, self.N), self.dist_nearest(30))
        self.assertEqual(len(r.view), self.N)
        self.assertGreater(share[30], 0.02)

    def test_knot_sees_13_names_and_8_more_addresses(self):
        share, r = picks("kresd", fleet.delegation(self.N, 8), self.dist_nearest(30))
        self.assertEqual(len(r.view), 8 + 8, "8 names x 5 addresses: the first of each and 8 more")
        share, r = picks("kresd", fleet.delegation(self.N, self.N), self.dist_nearest(30))
        self.assertEqual(len(r.view), 13)
        share, r = picks("kresd", fleet.delegation(self.N, 13), self.dist_nearest(30))
        self.assertEqual(len(r.view), 13 + 8)
        share, r = picks("kresd", fleet.delegation(9, 3), self.dist_nearest(3))
        self.assertEqual(len(r.view), 9, "3 names x 3 addresses: all kept")

    def test_bind921_uses_13_addresses_whatever_the_layout(self):
        views = []
        for names in (40, 8, 4, 1):
            for seed in range(6):
                r = Resolver("bind921", self.DIST, random.Random(seed), fleet.delegation(self.N, names))
                self.assertEqual(len(r.view), 13, names)
                views.append(tuple(r.view))
        self.assertGreater(len(set(views)), 6, "different resolvers see different hosts")

    def test_closed_loop_a_bind_only_population_leaves_hosts_idle(self):
        n = 24
        st = fleet.setting(n, 2, 120, names=n, only="bind")
        s = fleet.run(st, "default", [(0, 0.5)], 40)
        w = window(s, 20, 40)
        self.assertEqual(sum(w["share"][20:]), 0, "hosts under NS names 21-24 never get a session")
        st = fleet.setting(n, 2, 120, names=6, only="bind")
        s = fleet.run(st, "default", [(0, 0.5)], 40)
        w = window(s, 20, 40)
        self.assertGreater(min(w["share"][20:]), 0, "four addresses per name: every host gets sessions")

    def test_large_means_are_drawn(self):
        rng = random.Random(3)
        draws = [popsim.poisson(rng, 124.0) for _ in range(200)]
        self.assertTrue(115 < sum(draws) / 200.0 < 133)


class Memory(unittest.TestCase):
    def test_bind_ages_rtts_only_in_seconds_it_resolves(self):
        hosts = [Host(100, NEVER), Host(100, NEVER)]
        sparse = Resolver("bind", [300.0, 10.0], random.Random(1))
        dense = Resolver("bind", [300.0, 10.0], random.Random(1))
        for r in (sparse, dense):
            r.observe(0, 0.0, "ok", 300.0)
            r.observe(0, 0.0, "ok", 300.0)
        sparse.resolve(hosts, 0.5)
        sparse.resolve(hosts, 100.5)
        for t in range(101):
            dense.resolve(hosts, t + 0.5)
        self.assertGreater(sparse.rtt(0, 100.5), 0.9 * sparse.srtt[0], "two resolutions: hardly aged")
        self.assertLess(dense.rtt(0, 100.5), 0.3 * dense.srtt[0], "a resolution every second: aged 100 s")

    def test_unbound_backs_off_from_the_second_timeout_in_a_row(self):
        r = Resolver("unbound", [5.0, 5.0], random.Random(2))
        r.observe(0, 1.0, "dropped", 0)
        first = r.srtt[0]
        self.assertLess(first, 400, "one timeout keeps the host within the band")
        r.observe(0, 2.0, "dropped", 0)
        self.assertGreaterEqual(r.srtt[0], popsim.TIMEOUT_MS)
        r.observe(0, 3.0, "dropped", 0)
        self.assertGreaterEqual(r.srtt[0], 2 * popsim.TIMEOUT_MS)
        r.observe(1, 3.0, "ok", 5.0)
        r.observe(0, 4.0, "ok", 5.0)
        r.observe(0, 5.0, "dropped", 0)
        self.assertLess(r.srtt[0], 2 * popsim.TIMEOUT_MS, "an answer ends the run of timeouts")
        self.assertEqual(r.rtt(0, 5.0 + popsim.INFRA_HOST_TTL_S), popsim.UNKNOWN_SERVER_MS,
                         "the entry expires: unknown again")


class Document(unittest.TestCase):
    def test_figures(self):
        samples = [{"t": t, "load": [1.0, 0.5], "ok": [3, 1], "failed": 1, "full": 1, "delayed": 2,
                    "families": {}} for t in range(10)]
        f = fleet.figures(samples, [100, 300], 0, 10)
        self.assertEqual(f["hot_pct"], 50.0)
        self.assertEqual(f["failed_pct"], 20.0)
        self.assertEqual(f["delayed_pct"], 40.0)
        self.assertEqual(f["share_gap"], 50.0)  # 75% of the sessions for 25% of the slots
        self.assertEqual((f["min_ratio"], f["max_ratio"]), (0.33, 3.0))

    def test_sessions_per_family_and_host(self):
        st = fleet.setting(6, 2, 24)
        s = fleet.run(st, "default", [(0, 0.5)], 20, info={"track_family_hosts": True})
        for smp in s:
            per_host = [sum(v[h] for v in smp.get("family_hosts", {}).values()) for h in range(6)]
            self.assertEqual(per_host, smp["ok"])
        shares = fleet.family_share(s, [0, 1, 2], 5, 20)
        self.assertEqual(sorted(shares), ["bind", "kresd", "pdns", "unbound"])
        self.assertTrue(all(0 <= x <= 1 for x in shares.values()))
        self.assertEqual(fleet.family_share(s, range(6), 5, 20), {f: 1.0 for f in shares})
        self.assertNotIn("family_hosts", fleet.run(st, "default", [(0, 0.5)], 5)[-1], "only when asked")

    def test_the_document_is_written_from_the_results(self):
        results = {"fleet": fleet.fleet_sizes(sizes=(3, 6), policies=("default",), n_resolvers=24, seconds=12,
                                               warmup=4),
                   "herds": fleet.herds(n_hosts=6, counts=(12,), policies=("default",), seconds=12, warmup=4),
                   "outage": fleet.regional_outage(policies=("default",), per_region=2, n_resolvers=24,
                                                   kill_at=6, return_at=12, seconds=18),
                   "ns": fleet.ns_limits(n_hosts=24, layouts=(24, 6), binds=("bind",), alone=("bind",),
                                         alone_layouts=(24,), n_resolvers=24, seconds=12, warmup=4),
                   "elapsed_s": 1}
        text = fleet.doc(results)
        for heading in ("## Fleet size", "## Herd size", "## Regional outage",
                        "## How big a fleet one service name can serve"):
            self.assertIn(heading, text)
        self.assertIn("| 24 × 1 |", text.replace("| all four | BIND 9.18 ", "|"))
        self.assertIn("BIND 9.18 20", text, "BIND 9.18 sees 20 of 24 hosts under 24 NS names")
        self.assertIn("| 6 × 4 |", text.replace("| all four | BIND 9.18 ", "|"))


if __name__ == "__main__":
    unittest.main()
