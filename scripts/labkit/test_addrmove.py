"""Tests of the address move's figures and report (cd scripts && python3 -m unittest labkit.test_addrmove)."""

import os
import tempfile
import unittest

from . import addrmove, report
from .addrmove import NEW_ADDR, OLD_ADDR, parse_access_log, resolver_figures, targets
from .topology import RESOLVER_ADDRS


def rec(sent, host, status="ok"):
    return {"sent": sent, "tag": "u", "lat": 0.01 if status == "ok" else None, "status": status, "host": host}


T_MOVE, T_GONE = 100.0, 160.0


class Figures(unittest.TestCase):
    def test_phases_answers_and_glue(self):
        recs = [rec(90, "h1-old"), rec(95, "h2"), rec(100.5, "h1-new"), rec(101, "h1-old"),
                rec(130, "h3", "servfail"), rec(150, None, "timeout"), rec(170, "h1-new"), rec(171, None, "nodata")]
        hits = [(90, OLD_ADDR), (101, OLD_ADDR), (118.5, OLD_ADDR), (119, NEW_ADDR), (170, NEW_ADDR),
                (175, NEW_ADDR)]
        f = resolver_figures(recs, hits, T_MOVE, T_GONE)
        self.assertEqual(f["sent"], 8)
        self.assertEqual(f["failed"], 3)
        self.assertEqual(f["phases"]["before"]["ok"], 2)
        self.assertEqual(f["phases"]["moving"]["servfail"], 1)
        self.assertEqual(f["phases"]["moving"]["timeout"], 1)
        self.assertEqual(f["phases"]["after"]["other"], 1)
        self.assertEqual(f["last_old_answer"], 1.0)
        self.assertEqual(f["first_new_answer"], 0.5)
        self.assertEqual(f["last_query_old"], 18.5)
        self.assertEqual(f["first_query_new"], 19.0)
        self.assertEqual(f["phases"]["moving"]["at_host1"], {"old": 2, "new": 1})
        self.assertEqual(f["phases"]["after"]["at_host1"], {"old": 0, "new": 2})

    def test_no_queries_at_host1(self):
        f = resolver_figures([rec(120, "h2")], [], T_MOVE, None)
        self.assertIsNone(f["first_query_new"])
        self.assertIsNone(f["last_old_answer"])
        self.assertEqual(f["phases"]["moving"]["sent"], 1)  # no removal: the run stays in the move

    def test_access_log(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "a.log")
            with open(path, "w") as fh:
                fh.write("1000.500 %s %s x.www.example.com A NOERROR\n" % (RESOLVER_ADDRS["bind"], NEW_ADDR))
                fh.write("1001.000 127.0.0.1 %s x.www.example.com A NOERROR\n" % OLD_ADDR)  # not a resolver
                fh.write("garbage\n")
            self.assertEqual(parse_access_log(path, 900.0), [(100.5, "bind", NEW_ADDR)])
            self.assertEqual(parse_access_log(os.path.join(d, "missing"), 0), [])


def results(failed=0, late=False, reached=True):
    res = {}
    for n in ("unbound", "bind"):
        f = resolver_figures([rec(101, "h1-new")] + [rec(102, None, "servfail")] * failed,
                             [(110 + (30 if late else 0), OLD_ADDR), (121, NEW_ADDR)] +
                             ([(170, NEW_ADDR)] if reached else []), T_MOVE, T_GONE)
        res[n] = f
    ex = {"glue_ttl": 20, "move_at": 10.0, "phase2_at": 60.0, "duration": 90.0, "rate": 40, "old": OLD_ADDR,
          "new": NEW_ADDR, "parent": "127.0.0.3", "glue_update": "dns_glue_update ...;",
          "update_policy": "grant k name n. A AAAA;", "res": res, "reload_at": 50.0, "gone_at": 50.2,
          "answer_changed": 0.3, "status_changed": 0.3, "parent_changed": 0.4,
          "module_log": ["glue update of ns1-www.example.com ...: done (127.0.0.31)"], "bind_log": [],
          "status": {"origin": "file", "current": [NEW_ADDR], "parent": {"in_step": True}}, "watch_period": 0.05,
          "events": []}
    return {"mode": "full", "build": "release", "versions": {"BIND": "9.18.0"},
            "resolvers": {"unbound": {"label": "Unbound"}, "bind": {"label": "BIND 9"}},
            "experiments": {"address-move": ex}}


class Targets(unittest.TestCase):
    def verdicts(self, r):
        ex = r["experiments"]["address-move"]
        return [ok for _, ok, _ in targets(ex, {})]

    def test_all_met(self):
        self.assertEqual(self.verdicts(results()), [True, True, True, True])

    def test_each_can_fail(self):
        self.assertEqual(self.verdicts(results(failed=1))[0], False)
        self.assertEqual(self.verdicts(results(late=True))[2], False)
        self.assertEqual(self.verdicts(results(reached=False))[3], False)
        r = results()
        r["experiments"]["address-move"]["parent_changed"] = None
        self.assertEqual(self.verdicts(r)[1], False)


class Report(unittest.TestCase):
    def test_page_and_paragraph(self):
        with tempfile.TemporaryDirectory() as d:
            lab_md = os.path.join(d, "lab.md")
            with open(lab_md, "w") as fh:
                fh.write("# Resolver lab\n\n## Running it\n\nrest\n")
            report.write_address_move(results(failed=2), d)
            with open(os.path.join(d, "lab-address-move.md")) as fh:
                page = fh.read()
            self.assertIn("| Unbound | 3 | 0 / 0 / 0 | 2 / 0 / 0 | 0 / 0 / 0 |", page)
            self.assertIn("**no**", page)
            with open(lab_md) as fh:
                text = fh.read()
            self.assertEqual(text.count(report.MOVE_BEGIN), 1)
            self.assertLess(text.index(report.MOVE_BEGIN), text.index("## Running it"))
            self.assertIn("4 failed resolutions through 2 resolvers", text)
            self.assertTrue(text.endswith("## Running it\n\nrest\n"))
            # a second run replaces the paragraph
            report.write_address_move(results(), d)
            with open(lab_md) as fh:
                text = fh.read()
            self.assertEqual(text.count(report.MOVE_BEGIN), 1)
            self.assertIn("0 failed resolutions", text)

    def test_when_the_first_glue_runs_out(self):
        r = results()
        r["experiments"]["address-move"]["resolvers_started"] = -11.0
        self.assertIn("| start + the glue TTL (the glue fetched first runs out shortly after) | 9.00 s |",
                      addrmove.report(r))
        r["experiments"]["address-move"]["first_www_query"] = -10.5
        self.assertIn("| that glue runs out (first query + the glue TTL) | 9.50 s |", addrmove.report(r))

    def test_open_loop_report_keeps_the_paragraph(self):
        block = report.MOVE_BEGIN + "\nmoved\n" + report.MOVE_END
        text = report.splice_move("# Resolver lab\n\n## Running it\n", block)
        self.assertEqual(report.move_block(text), block)
        self.assertEqual(report.splice_move(text, block), text)
        self.assertIsNone(report.move_block("# Resolver lab\n"))


if __name__ == "__main__":
    unittest.main()
