"""The checks of scripts/check-delegation. Each check adds rows (result,
check, server, detail) to a Report; any ERROR makes the run fail.

What the parent says (its NS set for the service, the glue, the DS) is
compared with what every host says (its own address with AA, its NS set,
its SOA serial, EDNS, TCP, cookies, DNSKEY and signatures).
"""

import os
import time

from . import dnssec
from .wire import TYPES, DnsError, norm, query

OK, WARN, ERROR = "ok", "WARN", "ERROR"


class Report:
    def __init__(self):
        self.rows = []

    def add(self, result, check, server, detail):
        self.rows.append((result, check, server, detail))

    @property
    def errors(self):
        return sum(1 for r in self.rows if r[0] == ERROR)

    @property
    def warnings(self):
        return sum(1 for r in self.rows if r[0] == WARN)

    def table(self):
        head = ("RESULT", "CHECK", "SERVER", "DETAIL")
        widths = [max(len(r[i]) for r in self.rows + [head]) for i in range(3)]
        lines = []
        for row in [head] + self.rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(row[:3], widths)) + "  " + row[3])
        return "\n".join(line.rstrip() for line in lines)


def names(items):
    return " ".join(sorted(items)) or "(none)"


class Checker:
    """One run: `service` (the delegated name), `parents` (addresses of the
    parent zone's servers, or none for a pre-flight check of the hosts),
    `hosts` ({NS name: [addresses]} the operator expects, or None to take
    them from the parent), `port` for every server asked."""

    def __init__(self, service, parents, hosts, port=53, timeout=2.0, now=None):
        self.service = norm(service)
        self.parents, self.expected = parents, hosts
        self.port, self.timeout = port, timeout
        self.now = int(time.time()) if now is None else now
        self.report = Report()
        self.delegation = None  # {NS name: [glue addresses]} from the parent
        self.ds = []  # DS records from the parent

    def ask(self, addr, qtype, tcp=False, name=None, **opts):
        return query(addr, self.port, name or self.service, qtype, tcp=tcp, timeout=self.timeout, **opts)

    def run(self):
        if self.parents:
            self.check_parent()
        hosts = self.hosts_to_check()
        answers = {}
        for ns_name in sorted(hosts):
            for addr in hosts[ns_name]:
                answers[(ns_name, addr)] = self.check_host(ns_name, addr)
        self.check_agreement(answers)
        return self.report

    # ------------------------------------------------------------ the parent

    def check_parent(self):
        seen = []
        for parent in self.parents:
            for tcp in (False, True):
                where = "parent %s %s" % (parent, "tcp" if tcp else "udp")
                try:
                    r = self.ask(parent, "NS", tcp=tcp)
                except DnsError as e:
                    self.report.add(ERROR, "parent answers", where, str(e))
                    continue
                referral = r.records(r.authority, TYPES["NS"], self.service)
                if r.rcode != 0 or not referral:
                    own = r.aa and r.records(r.answer, TYPES["NS"], self.service)
                    why = ("the parent serves %s itself, it does not delegate it" % self.service if own
                           else "%s, no NS records for %s in the authority section" % (r.rcode_name, self.service))
                    self.report.add(ERROR, "delegation", where, why)
                    continue
                ns_set = {rr.data for rr in referral}
                glue = {n: sorted(rr.data for rr in r.additional if rr.name == n and rr.type in (1, 28))
                        for n in ns_set}
                seen.append((where, glue))
                self.report.add(OK, "delegation", where, "NS " + names(ns_set))
        if not seen:
            return
        self.delegation = seen[0][1]
        for where, glue in seen[1:]:
            if glue != self.delegation:
                self.report.add(ERROR, "parents agree", where, "NS and glue differ from %s" % seen[0][0])
        first = seen[0][0]
        for ns_name, addrs in sorted(self.delegation.items()):
            in_zone = ns_name.endswith("." + self.parent_zone_guess())
            if addrs:
                self.report.add(OK, "glue", first, "%s %s" % (ns_name, " ".join(addrs)))
            elif in_zone:
                self.report.add(ERROR, "glue", first, "%s has no glue address" % ns_name)
            else:
                self.report.add(WARN, "glue", first, "%s has no glue (outside the parent zone?)" % ns_name)
        self.check_expected_hosts(first)
        self.check_ds()

    def parent_zone_guess(self):
        return self.service.split(".", 1)[1] if "." in self.service.rstrip(".") else "."

    def check_expected_hosts(self, where):
        if self.expected is None:
            return
        want, have = set(self.expected), set(self.delegation)
        if want != have:
            detail = []
            if want - have:
                detail.append("missing in the parent: " + names(want - have))
            if have - want:
                detail.append("not a given host: " + names(have - want))
            self.report.add(ERROR, "NS set = hosts", where, "; ".join(detail))
        else:
            self.report.add(OK, "NS set = hosts", where, "%d hosts" % len(want))
        for ns_name in sorted(want & have):
            glue, addrs = sorted(self.delegation[ns_name]), sorted(self.expected[ns_name])
            if glue and glue != addrs:
                self.report.add(ERROR, "glue = host", where, "%s: glue %s, host listens on %s"
                                % (ns_name, " ".join(glue), " ".join(addrs)))

    def check_ds(self):
        parent = self.parents[0]
        where = "parent %s udp" % parent
        try:
            r = self.ask(parent, "DS")
        except DnsError as e:
            self.report.add(ERROR, "DS", where, str(e))
            return
        self.ds = r.records(r.answer, TYPES["DS"], self.service)
        if self.ds:
            self.report.add(OK, "DS", where, ", ".join(
                "%d alg %d digest %d" % (d.data["tag"], d.data["alg"], d.data["digest_type"]) for d in self.ds))
        else:
            self.report.add(OK, "DS", where, "none: the delegation is not signed")

    # ------------------------------------------------------------ the hosts

    def hosts_to_check(self):
        if self.expected is not None:
            return self.expected
        hosts = {}
        for ns_name, glue in (self.delegation or {}).items():
            hosts[ns_name] = glue
            if not glue:
                self.report.add(WARN, "host address", ns_name, "no glue: not checked (give it with --host)")
        return hosts

    def check_host(self, ns_name, addr):
        """Checks one host; returns what the agreement checks need."""
        where = "%s %s" % (ns_name.rstrip("."), addr)
        qtype = "AAAA" if ":" in addr else "A"
        client_cookie = os.urandom(8)
        seen = {}
        try:
            r = self.ask(addr, qtype, cookie=client_cookie)
        except DnsError as e:
            self.report.add(ERROR, "answers", where, str(e))
            return seen
        own = [rr.data for rr in r.records(r.answer, TYPES[qtype], self.service)]
        if r.rcode != 0 or not r.aa or addr not in own:
            # The module refuses while its service is draining, down or starting.
            hint = " (draining, down or starting?)" if r.rcode_name == "REFUSED" else ""
            self.report.add(ERROR, "answers", where, "%s%s, %s %s%s" % (
                r.rcode_name, "" if r.aa else " without AA", qtype, " ".join(own) or "(none)", hint))
        else:
            self.report.add(OK, "answers", where, "AA, %s %s" % (qtype, " ".join(own)))
        self.check_edns(where, addr, qtype, r)
        self.check_cookie(where, addr, qtype, r, client_cookie)
        self.check_tcp(where, addr, qtype, own)
        seen["ns"] = self.check_ns(where, addr)
        seen["serial"] = self.check_soa(where, addr)
        self.check_dnssec(where, addr, qtype)
        return seen

    def check_edns(self, where, addr, qtype, r):
        if not r.opt or r.opt["version"] != 0:
            self.report.add(ERROR, "EDNS", where, "no OPT record in the response to an EDNS query")
            return
        try:
            bad = self.ask(addr, qtype, version=1)
        except DnsError as e:
            self.report.add(ERROR, "EDNS", where, "EDNS version 1: %s" % e)
            return
        if bad.rcode_name != "BADVERS" or not bad.opt:
            self.report.add(ERROR, "EDNS", where, "EDNS version 1 got %s, not BADVERS" % bad.rcode_name)
        else:
            self.report.add(OK, "EDNS", where, "OPT, UDP size %d; version 1 gets BADVERS" % r.opt["udp_size"])

    def check_cookie(self, where, addr, qtype, r, client_cookie):
        cookie = r.cookie()
        if not cookie or cookie[:8] != client_cookie or not 16 <= len(cookie) <= 40:
            self.report.add(ERROR, "cookie", where, "no DNS cookie returned (RFC 7873)")
            return
        try:
            again = self.ask(addr, qtype, cookie=cookie)
        except DnsError as e:
            self.report.add(ERROR, "cookie", where, "with its server cookie: %s" % e)
            return
        if again.rcode != 0 or not again.cookie():
            self.report.add(ERROR, "cookie", where, "its own server cookie got %s" % again.rcode_name)
        else:
            self.report.add(OK, "cookie", where, "server cookie of %d bytes, accepted back" % (len(cookie) - 8))

    def check_tcp(self, where, addr, qtype, own_udp):
        try:
            r = self.ask(addr, qtype, tcp=True)
        except DnsError as e:
            self.report.add(ERROR, "TCP", where, str(e))
            return
        own = [rr.data for rr in r.records(r.answer, TYPES[qtype], self.service)]
        if r.rcode != 0 or not r.aa or sorted(own) != sorted(own_udp):
            self.report.add(ERROR, "TCP", where, "%s, %s %s (UDP: %s)" % (
                r.rcode_name, qtype, " ".join(own) or "(none)", " ".join(own_udp) or "(none)"))
        else:
            self.report.add(OK, "TCP", where, "same answer as over UDP")

    def check_ns(self, where, addr):
        try:
            r = self.ask(addr, "NS")
        except DnsError as e:
            self.report.add(ERROR, "NS set", where, str(e))
            return None
        served = {rr.data for rr in r.records(r.answer, TYPES["NS"], self.service)}
        want = set(self.delegation or {}) or set(self.expected or {})
        source = "the parent's" if self.delegation else "the given hosts'"
        if not r.aa or not served:
            self.report.add(ERROR, "NS set", where, "%s, no authoritative NS set" % r.rcode_name)
        elif served != want:
            detail = []
            if want - served:
                detail.append("missing " + names(want - served))
            if served - want:
                detail.append("extra " + names(served - want))
            self.report.add(ERROR, "NS set", where, "differs from %s: %s" % (source, "; ".join(detail)))
        else:
            self.report.add(OK, "NS set", where, "same as %s (%d)" % (source, len(served)))
        return frozenset(served)

    def check_soa(self, where, addr):
        try:
            r = self.ask(addr, "SOA")
        except DnsError as e:
            self.report.add(ERROR, "SOA", where, str(e))
            return None
        soa = r.records(r.answer, TYPES["SOA"], self.service)
        if not r.aa or len(soa) != 1:
            self.report.add(ERROR, "SOA", where, "%s, no authoritative SOA" % r.rcode_name)
            return None
        self.report.add(OK, "SOA", where, "serial %d" % soa[0].data["serial"])
        return soa[0].data["serial"]

    def check_agreement(self, answers):
        serials = {k: v["serial"] for k, v in answers.items() if v.get("serial") is not None}
        if len(set(serials.values())) > 1:
            by = ", ".join("%s %d" % (k[1], s) for k, s in sorted(serials.items()))
            self.report.add(ERROR, "SOA serials agree", "all hosts", by)
        elif serials:
            self.report.add(OK, "SOA serials agree", "all hosts", "serial %d" % next(iter(serials.values())))
        sets = {v["ns"] for v in answers.values() if v.get("ns")}
        if len(sets) > 1:
            self.report.add(ERROR, "NS sets agree", "all hosts", "%d different NS sets" % len(sets))
        elif sets:
            self.report.add(OK, "NS sets agree", "all hosts", "%d hosts serve one NS set" % len(answers))

    # ------------------------------------------------------------ DNSSEC

    def check_dnssec(self, where, addr, qtype):
        try:
            r = self.ask(addr, "DNSKEY", do=True)
            if r.tc:
                r = self.ask(addr, "DNSKEY", do=True, tcp=True)
        except DnsError as e:
            self.report.add(ERROR, "DNSKEY", where, str(e))
            return
        keys = r.records(r.answer, TYPES["DNSKEY"], self.service)
        if not keys:
            if self.ds:
                self.report.add(ERROR, "DS = DNSKEY", where, "the parent has a DS but the host has no DNSKEY: "
                                "validating resolvers fail")
            return
        if self.parents and not self.ds:
            self.report.add(WARN, "DS = DNSKEY", where, "signed, but the parent has no DS (not secure)")
        elif self.ds:
            matched = [d for d in self.ds for k in keys if self.ds_matches(d, k)]
            if matched:
                self.report.add(OK, "DS = DNSKEY", where, "DS %d matches a DNSKEY" % matched[0].data["tag"])
            else:
                self.report.add(ERROR, "DS = DNSKEY", where, "no DNSKEY matches the parent's DS (%s)" % ", ".join(
                    str(d.data["tag"]) for d in self.ds))
        self.check_signatures(where, addr, qtype, r, keys)

    def ds_matches(self, ds, key):
        d = ds.data
        return (d["tag"] == dnssec.key_tag(key.rdata) and d["alg"] == key.data["alg"]
                and dnssec.ds_digest(self.service, key.rdata, d["digest_type"]) == d["digest"])

    def check_signatures(self, where, addr, qtype, dnskey_reply, keys):
        problems, checked, unknown, until = [], 0, set(), None
        for rtype in ("DNSKEY", "SOA", "NS", qtype):
            try:
                r = dnskey_reply if rtype == "DNSKEY" else self.ask(addr, rtype, do=True)
                if r.tc:
                    r = self.ask(addr, rtype, do=True, tcp=True)
            except DnsError as e:
                problems.append("%s: %s" % (rtype, e))
                continue
            rrset = r.records(r.answer, TYPES[rtype], self.service)
            sigs = [s for s in r.records(r.answer, TYPES["RRSIG"], self.service)
                    if s.data["covered"] == TYPES[rtype]]
            if not rrset:
                continue
            if not sigs:
                problems.append("%s has no RRSIG" % rtype)
                continue
            valid = False
            for sig in sigs:
                d = sig.data
                if not d["inception"] <= self.now <= d["expiration"]:
                    problems.append("%s RRSIG %d outside its validity period (%s to %s)" % (
                        rtype, d["tag"], stamp(d["inception"]), stamp(d["expiration"])))
                    continue
                for key in keys:
                    if dnssec.key_tag(key.rdata) != d["tag"]:
                        continue
                    ok = dnssec.verify(sig, rrset, key)
                    if ok is None:
                        unknown.add(d["alg"])
                    elif ok:
                        valid = True
                        until = min(until or d["expiration"], d["expiration"])
            checked += 1
            if not valid and not unknown:
                problems.append("%s: no valid signature" % rtype)
        if problems:
            self.report.add(ERROR, "signatures", where, "; ".join(problems))
        elif unknown:
            self.report.add(WARN, "signatures", where, "algorithm %s not checked" % names(map(str, unknown)))
        else:
            self.report.add(OK, "signatures", where, "%d RRsets validate, until %s" % (checked, stamp(until)))


def stamp(t):
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else "?"
