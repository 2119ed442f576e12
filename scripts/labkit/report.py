"""The report: docs/lab.md (tables, the computed summary and findings, the
set-up and the module's defaults as the run read them) and the picture
docs/lab-share.svg, both written from results.json alone; docs/lab-dnssec.md
from the signed chain's own results (write_dnssec).
"""

import json
import os
import textwrap

from . import addrmove, dnssec
from .dnswire import CLIENT_TIMEOUT
from .experiments import EXPERIMENTS

# what a host does, under each dns_silence, when it must not answer
SILENCE_MEANING = {"drop": "sends nothing", "refuse": "answers REFUSED at once"}


def module_defaults(results):
    """The module's default policy as the run read it from a host's status
    endpoint, or None: unknown (the endpoint did not report it)."""
    return results.get("module_defaults")


def high_mark(results):
    return (module_defaults(results) or {}).get("high")


def host_silence(results):
    """The dns_silence the hosts had unless an experiment set another; runs
    that did not record it always used drop."""
    return results.get("host_silence", "drop")


def paragraph(text):
    """text refilled to the width of the fixed paragraphs, for those with
    values filled in."""
    return textwrap.fill(" ".join(text.split()), width=74, break_long_words=False,
                         break_on_hyphens=False) + "\n"


def share(s, i):
    if not s or not s["ok"]:
        return "—"
    return "%.1f%%" % (100.0 * s["hosts"][i] / s["ok"])


def share_range(s, i):
    """Pooled share, and the range over repetitions when there were several."""
    text = share(s, i)
    reps = (s or {}).get("reps") or []
    if len(reps) > 1:
        vals = [100.0 * h[i] / sum(h) for h in reps if sum(h)]
        if vals:
            text += " (%.0f–%.0f)" % (min(vals), max(vals))
    return text


def share_val(s, i):
    if not s or not s["ok"]:
        return None
    return 100.0 * s["hosts"][i] / s["ok"]


def fails(s):
    if not s:
        return "—"
    return "%d / %d" % (s["servfail"] + s["other"], s["timeout"])


def ms(v):
    return "—" if v is None else ("%.0f" % v if v >= 10 else "%.1f" % v)


def curve_at(load, policy, silence=None):
    """What the policy does at `load`, interpolated between the curve's
    points as the module does; "unknown" without a policy."""
    if policy is None:
        return "unknown"
    if load >= policy["high"]:
        return "REFUSED" if silence == "refuse" else "no answer"
    pts = policy["curve"]
    above = next((k for k, p in enumerate(pts) if p["load"] > load), None)
    if above == 0:
        return "0 ms"

    def values(p):
        return p["delay_ms"], p["drop"], p.get("refuse", 0.0)

    if above is None:
        delay, drop, refuse = values(pts[-1])
    else:
        a, b = pts[above - 1], pts[above]
        f = (load - a["load"]) / (b["load"] - a["load"])
        delay, drop, refuse = (x + f * (y - x) for x, y in zip(values(a), values(b)))
    return "%g ms" % round(delay, 1) + (", drop %d%%" % round(100 * drop) if drop else "") + \
        (", REFUSED %d%%" % round(100 * refuse) if refuse else "")


def percent(fraction):
    return "%g%%" % round(100 * fraction, 1)


def sweep_row_label(row, results):
    """The load, and the silence when it is not the hosts' usual one."""
    silence = row["silence"]
    return "%.2f" % row["load"] + ("" if silence == host_silence(results) else " " + silence)


def module_defaults_section(results):
    policy = module_defaults(results)
    out = ["### Module defaults\n"]
    if policy is None:
        out.append("""Unknown: the status endpoint of this run's module did not report its
shedding policy (`policy` in `/status?format=json`), so the module's default
curve, high mark and `dns_silence` are not stated here, and the policy
columns below say "unknown".
""")
        return "\n".join(out)
    out.append("""The policy of a host whose configuration sets neither `dns_shed` nor
`dns_silence`, as its status endpoint reports it (`policy` in
`/status?format=json`). The lab's hosts set no `dns_shed`, so they shed
with this curve (linear between points; below the first point the host
answers at once):
""")
    rows = [["%.2f" % p["load"], "%g ms" % p["delay_ms"], percent(p["drop"]),
             percent(p.get("refuse", 0.0))] for p in policy["curve"]]
    out.append(table(["load", "delay", "drop", "REFUSED"], rows) + "\n")
    out.append(paragraph("""At and above the high mark, %g, and while it is down, draining or
starting, a host gives no answers; the default `dns_silence` is `%s`: it
%s instead. The lab's hosts set `dns_silence` in their configuration;
each experiment below says which. Load smoothing (`dns_load_smoothing`):
%s ms.
""" % (policy["high"], policy["silence"], SILENCE_MEANING.get(policy["silence"], "?"),
       policy.get("smoothing_ms", "?"))))
    return "\n".join(out)


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_report(results, out_dir):
    ex = results["experiments"]
    res_names = list(results["resolvers"])
    label = {n: results["resolvers"][n]["label"] for n in res_names}
    mode = results["mode"]
    md = []
    md.append("# Resolver lab\n")
    md.append(paragraph("""Real recursive resolvers in front of real nginx hosts running the module:
what share of the clients each host gets when its load (read by the module
from `dns_load_file`) makes it answer later, drop queries or go silent. This
file is written by `scripts/lab` from the measured data; run it again to
regenerate it (`scripts/lab --quick` takes a few minutes, `scripts/lab`
longer). The numbers below come from a **%s** run%s that took %s s.
""" % (mode, " (debug build of the module)" if results.get("build") == "debug" else "",
       results.get("elapsed", "?"))))
    md.append("""## Set-up

- **Hosts**: three nginx instances with the module, one configuration
  template ([`scripts/lab.d/host.conf`](../scripts/lab.d/host.conf)) on
  127.0.0.11, .12 and .13 port 53 (UDP and TCP): `dns_service
  www.example.com`, `dns_nameservers ns1-www.example.com ns2-www.example.com
  ns3-www.example.com`, `dns_address auto`, `dns_wildcard on`, `dns_ttl 10s`,
  `dns_silence %s` (unless an experiment says otherwise), `dns_load_file`
  per host, and the status endpoint on 127.0.0.1:800x; no `dns_shed`, so
  the module's default curve applies. Each host's load is set only by
  writing its load file.
- **Parent zone and root**: one NSD on 127.0.0.2 serves a private root
  (`.`), `com.` and `example.com.`; `example.com` delegates `www` with three
  NS records and glue (`ns1-www.example.com → 127.0.0.11` …), exactly the
  records a user adds to a real parent zone.
- **Resolvers**: each iterates from the private root (root hints →
  `ns.lab. 127.0.0.2`; no stub or forward zones), runs in the foreground
  with its own configuration in a temporary directory, on its own address,
  and is started afresh for every setting so that what it learned about the
  hosts does not carry over (except in the failover and drain runs, which
  are about time). DNSSEC validation is off (the private root is unsigned).
- **Driver**: for each setting, %s unique names
  (`<unique>.www.example.com`, never cached, answered by the wildcard)
  through every resolver at %s queries/s, all resolvers at the same time;
  it counts whose address comes back, the client-visible latency and
  failures (SERVFAIL, or no answer within %g s). Shares are of the answered
  queries; fair share is 33.3%%.
- Everything runs in a private network namespace (loopback only).
%s""" % (host_silence(results), ex.get("baseline", {}).get("count", "?"),
       ex.get("baseline", {}).get("rate", "?"), CLIENT_TIMEOUT,
       "- Each setting is run %d times, each time with fresh resolvers; tables give\n"
       "  the pooled share and, in brackets, the range over the runs.\n" % results.get("reps", 1)
       if results.get("reps", 1) > 1 else ""))
    md.append("### Resolvers\n")
    rows = []
    cfg = {
        "unbound": "`root-hints`, `do-not-query-localhost: no`, `module-config: \"iterator\"`, one thread",
        "bind": "`zone \".\" { type hint; }`, `dnssec-validation no`, `recursion yes`, `-n 1`",
        "pdns": "`hint-file`, `dont-query=` (empty: allow loopback), `dnssec=off`, `threads=1`",
        "kresd": "`hints.root{}`, `trust_anchors.remove('.')`, `policy.FLAGS({'ALLOW_LOCAL'})` (kresd skips loopback name servers otherwise)",
    }
    for n in res_names:
        rows.append([label[n], "`%s`" % results["resolvers"][n]["addr"], "works", cfg.get(n, "")])
    for n, why in results.get("skipped", {}).items():
        rows.append([n, "—", "skipped", why])
    md.append(table(["resolver", "address", "status", "configuration"], rows) + "\n")
    vers = results.get("versions", {})
    if vers:
        md.append("Versions: " + "; ".join("%s %s" % (k, v) for k, v in vers.items()) + ".\n")
    md.append(module_defaults_section(results))

    md.append(summary(results))
    if "baseline" in ex:
        b = ex["baseline"]
        md.append("## 1. Baseline: equal load\n")
        md.append("All hosts at load 0. Failures: SERVFAIL or other error / no answer.\n")
        rows = []
        for n in res_names:
            s = b["res"].get(n)
            rows.append([label[n], share_range(s, 0), share_range(s, 1), share_range(s, 2), fails(s),
                         ms(s and s["lat_med_ms"]), ms(s and s["lat_p90_ms"])])
        md.append(table(["resolver", "host1", "host2", "host3", "failed", "median ms", "p90 ms"],
                        rows) + "\n")

    if "sweep" in ex:
        sw = ex["sweep"]
        usual = host_silence(results)
        high = high_mark(results)
        others = sorted({row["silence"] for row in sw["rows"]} - {usual})
        md.append("## 2. Host 1 under load (default curve)\n")
        md.append(paragraph("""Host 1's load file is set to each value, hosts 2 and 3 stay at 0. The
policy column is the module's default `dns_shed` curve at that load; at
and above %s the host does not answer: it %s (`dns_silence %s`, set in
the hosts' configuration)%s.
""" % ("%g (the high mark)" % high if high is not None else "the high mark",
       SILENCE_MEANING.get(usual, "?"), usual,
       "".join("; in the row marked `%s` it %s (`dns_silence %s`)" %
               (v, SILENCE_MEANING.get(v, "?"), v) for v in others))))
        md.append("Host 1's share of the answers:\n")
        rows = []
        base = ex.get("baseline")
        if base:
            rows.append(["0 (baseline)", curve_at(0.0, module_defaults(results))] +
                        [share_range(base["res"].get(n), 0) for n in res_names])
        for row in sw["rows"]:
            pol = curve_at(row["load"], module_defaults(results), row["silence"])
            rows.append([sweep_row_label(row, results), pol] +
                        [share_range(row["res"].get(n), 0) for n in res_names])
        md.append(table(["host1 load", "policy"] + [label[n] for n in res_names], rows) + "\n")
        for n in res_names:
            md.append("### %s\n" % label[n])
            rows = []
            for row in sw["rows"]:
                s = row["res"].get(n)
                rows.append([sweep_row_label(row, results), share(s, 0), share(s, 1), share(s, 2), fails(s),
                             ms(s and s["lat_med_ms"]), ms(s and s["lat_p90_ms"]),
                             ms(s and s["lat_max_ms"])])
            md.append(table(["host1 load", "host1", "host2", "host3", "failed", "median ms",
                             "p90 ms", "max ms"], rows) + "\n")
        md.append("What host 1 itself saw (all resolvers together, from its status endpoint):\n")
        rows = []
        for row in sw["rows"]:
            c = row["server"][0] if row.get("server") else None
            if c:
                rows.append([sweep_row_label(row, results), row.get("state") or "—", c["queries"], c["answered"],
                             c["delayed"], c["dropped"], c["refused"]])
        md.append(table(["host1 load", "state", "queries", "answered at once", "delayed",
                         "dropped", "refused"], rows) + "\n")

    if "failover" in ex:
        f = ex["failover"]
        md.append("## 3. Failover: host 1's nginx killed\n")
        md.append("""Fresh resolvers; hosts 2 and 3 at load %g (2 ms late), so that the
resolvers which follow the fastest server prefer host 1. Each resolver gets
unique names at %d/s and, at %d/s in all, %d fixed names in turn
(`c<k>.www.example.com`, cached for the 10 s TTL: what clients that hold an
address see; their first queries are spread over one TTL so that the cache entries expire
evenly). Host 1's nginx (master and worker) is killed with SIGKILL %g s
into the %g s run; its port is then closed, so the kernel answers with ICMP
port unreachable.
""" % (f.get("other_load", 0), f["unique_rate"], f["cached_rate"], f["cached_names"],
       f["kill_at"], f["duration"]))
        rows = []
        for n in res_names:
            s = f["res"].get(n)
            if not s:
                continue
            rows.append([label[n], share(s["before"], 0), s["failed_after"],
                         "—" if s["last_failure_s"] is None else "%.1f s" % s["last_failure_s"],
                         ms(s["after"]["lat_p90_ms"]), s["slow_after"],
                         "%.0f%%" % s["cached_h1_share_before"],
                         "—" if s["cached_h1_last_s"] is None else "%.1f s" % s["cached_h1_last_s"],
                         s["cached_failed"]])
        md.append(table(["resolver", "host1 share before", "failed unique after kill",
                         "last failure after kill", "p90 ms after kill", "answers > 500 ms",
                         "cached names on host1 before", "last host1 address served after kill",
                         "cached names failed"], rows) + "\n")
        md.append("Host 1's share of the cached names' answers around the kill (2 s bins; "
                  "time 0 is the kill):\n")
        rows = []
        k0 = int(f["kill_at"])
        for start_s in range(max(0, k0 - 4), int(f["duration"]) - 1, 2):
            cells = []
            for n in res_names:
                bl = f["res"].get(n, {}).get("cached_bins") or []
                sel = [b for b in bl if start_s <= b["start"] < start_s + 2]
                okc = sum(b["ok"] for b in sel)
                h1 = sum(b["hosts"][0] for b in sel)
                cells.append("%.0f%%" % (100.0 * h1 / okc) if okc else "—")
            rows.append(["%+d s" % (start_s - k0)] + cells)
        md.append(table(["time"] + [label[n] for n in res_names], rows) + "\n")

    if "drain" in ex:
        d = ex["drain"]
        md.append("## 4. Drain and return\n")
        runs = {r["silence"]: r for r in d["runs"]}
        order = [r["silence"] for r in d["runs"]]
        default = (module_defaults(results) or {}).get("silence")
        md.append(paragraph("""Fresh resolvers, unique names at %d/s for %g s. Host 1's load file says
`drain` from %g s and `up` from %g s. The run is done once per silence,
set in host 1's configuration: %s; the module's default is %s. Host 1's
share per 5 s bin (%s):
""" % (d["rate"], d["duration"], d["drain_at"], d["up_at"],
       " and ".join("`dns_silence %s` (the drained host %s)" % (v, SILENCE_MEANING.get(v, "?"))
                    for v in order),
       "`%s`" % default if default else "unknown for this run", " / ".join(order))))
        nb = max((len(v) for r in d["runs"] for v in r["res"].values()), default=0)
        rows = []
        for b in range(nb):
            start_s = b * d["bin"]
            phase = "drained" if d["drain_at"] <= start_s < d["up_at"] else \
                ("back up" if start_s >= d["up_at"] else "normal")
            cells = []
            for n in res_names:
                vals = []
                for v in order:
                    bl = runs[v]["res"].get(n) or []
                    vals.append(share(bl[b], 0) if b < len(bl) else "—")
                cells.append(" / ".join(vals))
            rows.append(["%d–%d s" % (start_s, start_s + d["bin"]), phase] + cells)
        md.append(table(["time", "phase"] + [label[n] + " (" + " / ".join(order) + ")"
                                             for n in res_names], rows) + "\n")
        md.append("Client side per phase: failed resolutions (SERVFAIL / no answer), p90 and "
                  "maximum latency in ms:\n")
        rows = []
        for v in order:
            ph_names = [p["phase"] for p in next(iter(runs[v]["phases"].values()))]
            for k, ph in enumerate(ph_names):
                cells = []
                for n in res_names:
                    p = (runs[v]["phases"].get(n) or [None] * (k + 1))[k]
                    cells.append("—" if not p else "%s · %s / %s" % (
                        fails(p), ms(p["lat_p90_ms"]), ms(p["lat_max_ms"])))
                rows.append([v, ph] + cells)
        md.append(table(["silence", "phase"] + [label[n] for n in res_names], rows) + "\n")

    if "gating" in ex:
        g = ex["gating"]
        md.append("## 5. Startup gating\n")
        silence = g.get("silence", host_silence(results))
        md.append(paragraph("""Host 3 has `dns_load_probe tcp://127.0.0.1:%d interval=1s rise=2` and
nothing listens on that port: the service stays `starting` and does not
answer (it %s: `dns_silence %s` in its configuration). Then a listener
opens the port; the host turns `ready` after %s s and the resolvers (fresh
again) use it.
""" % (g["app_port"], SILENCE_MEANING.get(silence, "?"), silence,
       "%.1f" % g["phases"][1]["ready_after"])))
        rows = []
        for ph in g["phases"]:
            for n in res_names:
                s = ph["res"].get(n)
                rows.append([ph["phase"], ph["state"], label[n], share(s, 0), share(s, 1),
                             share(s, 2), fails(s), ms(s and s["lat_p90_ms"])])
        md.append(table(["phase", "host3 state", "resolver", "host1", "host2", "host3", "failed",
                         "p90 ms"], rows) + "\n")

    if "distance" in ex:
        dd = ex["distance"]
        md.append("## 6. Distance against load\n")
        md.append("""A delaying relay (`scripts/lab.d/relay.py`, UDP and TCP) listens on each
host's glue address and forwards to its nginx on 127.0.1.1x; it holds every
reply back so that host 1 is %d ms, host 2 %d ms and host 3 %d ms away
(round trip). Host 1 (the nearest) gets load; the others stay at 0. Shares
of host 1 / host 2 / host 3:
""" % tuple(dd["rtt_ms"]))
        rows = []
        for row in dd["rows"]:
            rows.append(["%.2f" % row["load"], curve_at(row["load"], module_defaults(results))] +
                        ["%s / %s / %s" % (share(row["res"].get(n), 0), share(row["res"].get(n), 1),
                                           share(row["res"].get(n), 2)) for n in res_names])
        md.append(table(["host1 load", "policy"] + [label[n] for n in res_names], rows) + "\n")
        rows = []
        for row in dd["rows"]:
            rows.append(["%.2f" % row["load"]] +
                        ["%s / %s" % (fails(row["res"].get(n)), ms(row["res"].get(n, {}).get("lat_p90_ms")))
                         for n in res_names])
        md.append("Failed (SERVFAIL / no answer) and p90 latency (ms):\n")
        md.append(table(["host1 load"] + [label[n] for n in res_names], rows) + "\n")

    md.append("""## Notes on the method

- **One resolver instance is one client population.** BIND 9, PowerDNS
  Recursor and Knot Resolver send each query to the name server they measured
  fastest (with a little exploration), so a single instance gives one host
  almost all of its queries; on loopback the three hosts are equally near
  (round trips of a few hundredths of a millisecond) and which one wins in
  the baseline is chance. Unbound picks at random among the servers within
  its 400 ms band and spreads evenly. A fractional share for a host comes
  from many resolvers, each nearest to a different host: experiment 6 shows
  that a load-driven delay works as extra distance.
- **Silence costs client latency.** A resolver learns that a host is
  silent only when its queries to it time out, and the clients wait for
  that (the resolvers' retry timeouts show as the ~0.4 s, ~0.8 s and
  ~1.5 s latencies in the tables). In the sweep the resolvers are new, so
  the `1.00` rows include that learning; in the drain runs the resolvers
  already use the host. A fast REFUSED (`dns_silence refuse`) moves every
  resolver at once without that wait: compare the `refuse` rows.
- **Coming back.** Resolvers remember a server that timed out (Unbound
  keeps it in its infrastructure cache for minutes; BIND and PowerDNS
  Recursor keep a high smoothed round-trip time that decays slowly), so a
  drained or silent host can stay unused for a long time after it answers
  again. A host that answered REFUSED is remembered as answering, not as
  slow: compare the drop and refuse columns after `up` in experiment 4.
- **Killed nginx.** On loopback a closed port answers with ICMP port
  unreachable, which resolvers take as an immediate failure; a host that
  loses power or network is silent instead, like a drained host.
- **Load changes** are written to the load file atomically (rename); the
  module reads it four times a second and the lab waits one second before
  starting the resolvers.
- **Relays** (experiment 6) add their delay to every reply (UDP and TCP);
  the query path is not delayed. The answer then carries the address nginx
  listens on behind the relay (`dns_address auto`), which the driver maps
  back to the host.
""")
    md.append("## Picture\n")
    md.append("![Host 1's share against its load, per resolver](lab-share.svg)\n")
    md.append("""## Running it

    scripts/lab --install   # Debian packages: nsd unbound bind9 pdns-recursor knot-resolver
    scripts/lab --quick     # a few minutes
    scripts/lab             # full mode

Options: `--resolvers unbound,bind,pdns,kresd`, `--only
%s`, `--out DIR` (default
`docs/`), `--no-build`, `--no-netns` (use the host's loopback: port 53 on
127.0.0.2, .11–.13, .21–.24 must be free), `--report-only` (rewrite this
file and the picture from `target/lab/results.json`). `t/lab.t` runs the
quick mode when `DNS_LAB=1` is set.
""" % ",".join(EXPERIMENTS))
    os.makedirs(out_dir, exist_ok=True)
    text = "\n".join(md)
    closed = os.path.join(out_dir, "closed-loop.md")
    if os.path.exists(closed):  # the closed loop's section, from its own run
        with open(closed) as f:
            text = splice_closed(text, f.read())
    lab_md = os.path.join(out_dir, "lab.md")
    if os.path.exists(lab_md):  # the address move's paragraph, from its own run
        with open(lab_md) as f:
            block = move_block(f.read())
        if block:
            text = splice_move(text, block)
    with open(lab_md, "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "lab-share.svg"), "w") as f:
        f.write(svg(results))
    return "\n".join(md)


def write_dnssec(results, out_dir):
    """out_dir/lab-dnssec.md from the signed chain's results; returns it."""
    text = dnssec.report(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "lab-dnssec.md"), "w") as f:
        f.write(text)
    return text


def summary(results):
    """The headline numbers, computed from the data."""
    ex = results["experiments"]
    names = list(results["resolvers"])
    label = {n: results["resolvers"][n]["label"] for n in names}
    out = ["## Summary (computed from this run)\n"]
    if "sweep" in ex:
        out.append(findings(results))
        rows = {r["silence"]: r for r in ex["sweep"]["rows"] if r["load"] >= 1.0}
        if "drop" in rows and "refuse" in rows:
            out.append("Silence at the high mark, client latency median / p90 with `dns_silence "
                       "drop` against `refuse` (fresh resolvers, so this includes learning that "
                       "host 1 is silent):\n")
            for n in names:
                a, b = rows["drop"]["res"].get(n), rows["refuse"]["res"].get(n)
                if a and b:
                    out.append("- %s: drop %s / %s ms, refuse %s / %s ms." % (
                        label[n], ms(a["lat_med_ms"]), ms(a["lat_p90_ms"]), ms(b["lat_med_ms"]),
                        ms(b["lat_p90_ms"])))
            out.append("")
    if "distance" in ex:
        dd = ex["distance"]
        out.append("Distance (host 1 at %d ms, host 2 at %d ms, host 3 at %d ms): host 1's share "
                   "by its load:\n" % tuple(dd["rtt_ms"]))
        for n in names:
            pts = [(r["load"], share_val(r["res"].get(n), 0)) for r in dd["rows"]]
            pts = [(l, v) for l, v in pts if v is not None]
            lost = next((l for l, v in pts if v < 10.0), None)
            desc = ", ".join("%.0f%% at %.2f" % (v, l) for l, v in pts)
            out.append("- %s: %s%s." % (label[n], desc,
                                         "" if lost is None else "; under 10%% from %.2f" % lost))
        out.append("")
    if "drain" in ex:
        d = ex["drain"]
        out.append("Drain and return: host 1's share in the last 5 s bin while drained, and in "
                   "the last bin of the run (%g s after `up`):\n" % (d["duration"] - d["up_at"]))
        for run in d["runs"]:
            for n in names:
                bl = run["res"].get(n)
                if not bl:
                    continue
                drained = [b for b in bl if d["drain_at"] <= b["start"] < d["up_at"]]
                back = next((b["start"] - d["up_at"] for b in bl
                             if b["start"] >= d["up_at"] and share_val(b, 0)
                             and share_val(b, 0) >= 10.0), None)
                out.append("- %s, `dns_silence %s`: %s while drained, %s at the end%s." % (
                    label[n], run["silence"], share(drained[-1], 0) if drained else "—",
                    share(bl[-1], 0),
                    "" if back is None else "; back over 10%% within %g s of `up`" % (back + d["bin"])))
        out.append("")
    if "failover" in ex:
        f = ex["failover"]
        out.append("Failover (host 1's nginx killed, TTL 10 s): failed client resolutions of new "
                   "names after the kill, and the last time a cached host 1 address was "
                   "served:\n")
        for n in names:
            s = f["res"].get(n)
            if s:
                out.append("- %s: %d failed, last host 1 address %s after the kill." % (
                    label[n], s["failed_after"],
                    "never" if s["cached_h1_last_s"] is None else "%.1f s" % s["cached_h1_last_s"]))
        out.append("")
    return "\n".join(out) + "\n"


def findings(results):
    """Plain statements computed from the sweep: where each resolver leaves host 1."""
    ex = results["experiments"]
    sw = ex["sweep"]
    high = high_mark(results)
    out = ["Where each resolver leaves host 1 (share under 10%, fair share 33%):\n"]
    for n, info in results["resolvers"].items():
        pts = [(row["load"], share_val(row["res"].get(n), 0)) for row in sw["rows"]
               if row["silence"] == host_silence(results)]
        pts = [(l, v) for l, v in pts if v is not None]
        leave = next((l for l, v in pts if v < 10.0), None)
        desc = ", ".join("%.1f%% at %.2f" % (v, l) for l, v in pts)
        if leave is None:
            out.append("- **%s**: never under 10%% (%s)." % (info["label"], desc))
        elif high is not None and leave >= high:
            out.append("- **%s**: only at the high mark, where the host is silent; below it the "
                       "curve does not move it (%s)." % (info["label"], desc))
        else:
            out.append("- **%s**: from load %.2f (%s)." % (info["label"], leave, desc))
    return "\n".join(out) + "\n"


COLORS = {"unbound": "#1f77b4", "bind": "#d62728", "pdns": "#2ca02c", "kresd": "#9467bd"}


def svg(results):
    ex = results["experiments"]
    high = high_mark(results)
    panels = []
    if "sweep" in ex:
        series = {}
        for n in results["resolvers"]:
            pts = []
            if "baseline" in ex:
                pts.append((0.0, share_val(ex["baseline"]["res"].get(n), 0)))
            for row in ex["sweep"]["rows"]:
                if row["silence"] == host_silence(results):
                    pts.append((row["load"], share_val(row["res"].get(n), 0)))
            series[n] = [(x, y) for x, y in pts if y is not None]
        panels.append(("Host 1 share vs its load (3 equal hosts)", series, 33.3))
    if "distance" in ex:
        series = {}
        for n in results["resolvers"]:
            series[n] = [(row["load"], share_val(row["res"].get(n), 0)) for row in ex["distance"]["rows"]]
            series[n] = [(x, y) for x, y in series[n] if y is not None]
        panels.append(("Near host (%d ms) vs %d / %d ms hosts" % tuple(ex["distance"]["rtt_ms"]),
                       series, None))
    W, H, pad = 460, 320, 56
    width = W * max(1, len(panels))
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, H + 50),
           '<rect width="100%" height="100%" fill="white"/>']
    for k, (title, series, fair) in enumerate(panels):
        ox = k * W
        x0, y0, x1, y1 = ox + pad, H - pad + 10, ox + W - 20, 30

        def X(v):
            return x0 + v * (x1 - x0)

        def Y(v):
            return y0 - v / 100.0 * (y0 - y1)

        out.append('<text x="%d" y="18" font-weight="bold">%s</text>' % (ox + pad, title))
        for g in range(0, 101, 20):
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>' % (x0, Y(g), x1, Y(g)))
            out.append('<text x="%.1f" y="%.1f" text-anchor="end">%d%%</text>' % (x0 - 5, Y(g) + 4, g))
        out.append('<text transform="translate(%.1f,%.1f) rotate(-90)" text-anchor="middle">share of answers</text>' % (ox + 14, (y0 + y1) / 2))
        for g in [0, 0.2, 0.4, 0.6, 0.8, 1.0]:
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>' % (X(g), y0, X(g), y1))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>' % (X(g), y0 + 16, g))
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle">load of host 1</text>' % ((x0 + x1) / 2, y0 + 32))
        if high is not None:
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="3,3"/>' % (X(high), y0, X(high), y1))
            out.append('<text x="%.1f" y="%.1f" fill="#666" text-anchor="end">high mark</text>' % (X(high) - 3, y1 + 10))
        if fair:
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="6,4"/>' % (x0, Y(fair), x1, Y(fair)))
            out.append('<text x="%.1f" y="%.1f" fill="#666">fair share</text>' % (x0 + 4, Y(fair) - 4))
        for n, pts in series.items():
            c = COLORS.get(n, "black")
            if pts:
                out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' %
                           (c, " ".join("%.1f,%.1f" % (X(x), Y(y)) for x, y in pts)))
                for x, y in pts:
                    out.append('<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (X(x), Y(y), c))
    lx = 60
    for n in results["resolvers"]:
        c = COLORS.get(n, "black")
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>' % (lx, H + 32, lx + 20, H + 32, c))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 26, H + 36, results["resolvers"][n]["label"]))
        lx += 40 + 8 * len(results["resolvers"][n]["label"])
    out.append("</svg>")
    return "\n".join(out) + "\n"




# ---------------------------------------------------------------- the closed loop

CLOSED_BEGIN = "<!-- closed-loop section: written by scripts/lab --only closed-loop -->"
CLOSED_END = "<!-- end of the closed-loop section -->"
HOST_COLORS = ["#1f77b4", "#d62728", "#2ca02c"]


def curve_text(policy):
    """A policy as dns_shed would write it."""
    points = []
    for p in policy["curve"]:
        text = "%g:%s" % (p["load"], "%gms" % p["delay_ms"] if p["delay_ms"] else "0")
        if p["drop"]:
            text += ":%g" % p["drop"]
        if p.get("refuse"):
            text += ":refuse=%g" % p["refuse"]
        points.append(text)
    text = "dns_shed %s high=%g" % (" ".join(points), policy["high"])
    if "hold_ms" in policy:
        text += " hold=%gs" % (policy["hold_ms"] / 1000.0)
    return text


def policy_description(name, lines, defaults):
    if lines is None:
        return "NSD answers every name below `www` with all three addresses (TTL as the module's), " \
               "rotating their order (`round-robin: yes`); no delegation, no module in the DNS path"
    if not lines.strip():
        return "the module with only `dns_load_file` (for the drain): no load source, so it never " \
               "sheds and each resolver's nearest host wins"
    if "dns_shed" not in lines:
        if defaults is None:
            return "`dns_load_upstream app;` and the module's defaults (unknown: the status endpoint " \
                   "did not report them)"
        return "`dns_load_upstream app;` and the module's defaults, as the status endpoint reports " \
               "them: `%s`, `dns_silence %s`, `dns_load_smoothing %gms`" % (
                   curve_text(defaults), defaults["silence"], defaults.get("smoothing_ms", 0))
    return "`%s`" % " ".join(lines.split())


def closed_windows(cl):
    """{(scenario, policy): window figures of the first repeat} in run
    order, the order of scenarios and policies, and {(scenario, policy):
    [figures of every repeat]}."""
    figures, names, policies, repeats = {}, [], [], {}
    for run in cl["runs"]:
        for w in run["windows"]:
            repeats.setdefault((w["name"], run["policy"]), []).append(dict(w, run=run["run"]))
            if run.get("repeat", 0) == 0:
                figures[(w["name"], run["policy"])] = dict(w, run=run["run"])
            if w["name"] not in names:
                names.append(w["name"])
        if run["policy"] not in policies:
            policies.append(run["policy"])
    from .closedloop import POLICIES
    known = list(POLICIES)
    policies.sort(key=lambda p: known.index(p) if p in known else len(known))
    return figures, names, policies, repeats


def loads_text(values):
    return " / ".join("%.2f" % v for v in values)


def closed_svg(run_group, cl):
    """Each host's load (5 s mean of the per-second readings) over time, one
    panel per policy, for one run of the driver."""
    W, PH, pad = 720, 150, 50
    H = 40 + PH * len(run_group) + 30
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12">' % (W, H), '<rect width="100%" height="100%" fill="white"/>']
    dur = max(r["duration"] for r in run_group)
    out.append('<text x="%d" y="18" font-weight="bold">Closed loop, run "%s": each host\'s load '
               '(fraction of its slots, 5 s mean) and the offered load (grey)</text>' % (pad, run_group[0]["run"]))
    cap = cl["capacity"]
    for k, run in enumerate(run_group):
        y1 = 30 + k * PH + 12
        y0 = y1 + PH - 34
        x0, x1 = pad, W - 20

        def X(t):
            return x0 + t / dur * (x1 - x0)

        def Y(v):
            return y0 - min(1.05, max(0.0, v)) / 1.05 * (y0 - y1)

        out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (x0, y1 - 2, run["policy"]))
        for g in (0, 0.5, 0.9, 1.0):
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"%s/>' % (
                x0, Y(g), x1, Y(g), "#bbb" if g in (0.9, 1.0) else "#ddd",
                ' stroke-dasharray="4,3"' if g == 0.9 else ""))
            out.append('<text x="%d" y="%.1f" text-anchor="end">%g</text>' % (x0 - 4, Y(g) + 4, g))
        for t, what, host in run["events"]:
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="2,2"/>'
                       % (X(t), y0, X(t), y1))
            out.append('<text x="%.1f" y="%.1f" fill="#555">%s %d</text>' % (X(t) + 3, y1 + 10, what, host + 1))
        # offered load: the steps as a fraction of all slots
        steps = sorted(run["steps"])
        pts = []
        for i, (t, f) in enumerate(steps):
            t_next = steps[i + 1][0] if i + 1 < len(steps) else run["duration"]
            pts += [(t, f), (t_next, f)]
        out.append('<polyline fill="none" stroke="#999" stroke-width="1.5" points="%s"/>' %
                   " ".join("%.1f,%.1f" % (X(t), Y(f)) for t, f in pts))
        for h in range(len(cap)):
            series = [(s["t"], ((s["hosts"][h] or {}).get("load") or 0.0)) for s in run["samples"]]
            mean = []
            for i in range(len(series)):
                vals = [v for _, v in series[max(0, i - 4):i + 1]]
                mean.append((series[i][0], sum(vals) / len(vals)))
            if mean:
                out.append('<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>' % (
                    HOST_COLORS[h], " ".join("%.1f,%.1f" % (X(t), Y(v)) for t, v in mean)))
        if k == len(run_group) - 1:
            for t in range(0, int(dur) + 1, 30):
                out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%d s</text>' % (X(t), y0 + 14, t))
    lx = pad
    for h in range(len(cap)):
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>' %
                   (lx, H - 12, lx + 20, H - 12, HOST_COLORS[h]))
        out.append('<text x="%d" y="%d">host %d (%d slots)</text>' % (lx + 26, H - 8, h + 1, cap[h]))
        lx += 150
    out.append("</svg>")
    return "\n".join(out) + "\n"


def closed_section(results, pictures):
    from .closedloop import MEAN_WINDOW, SETTLE_BAND, SETTLE_WINDOW
    cl = results["experiments"]["closed-loop"]
    defaults = module_defaults(results)
    figures, names, policies, repeats = closed_windows(cl)
    cap = cl["capacity"]
    md = [CLOSED_BEGIN, "## 7. Closed loop\n"]
    md.append(paragraph("""The application's own load decides the answers, the answers send the
clients, the clients are the load. Written by `scripts/lab --only closed-loop%s` from a **%s** run
(%s build of the module).""" % (" --quick" if cl["mode"] == "quick" else "", cl["mode"],
                                results.get("build", "?"))))
    md.append("""- **Hosts**: three nginx hosts with the module
  ([`scripts/lab.d/closed-loop-host.conf`](../scripts/lab.d/closed-loop-host.conf)),
  each in front of its own application
  ([`scripts/lab.d/app.py`](../scripts/lab.d/app.py)) with %s request slots
  (`max_conns` of an `upstream` with a `zone`, which the module reads with
  `dns_load_upstream`; no load file but for draining). A request beyond the
  slots gets nginx's 502 at once. TTL %s; the answer is the host's address.
- **Clients**: sessions arrive at random (Poisson) at the offered rate; each
  resolves a unique name below `www.example.com` through one of the
  resolvers (spread evenly), connects to port 80 of the address it got
  (the next address if the connection is refused) and holds a request
  for %d–%d ms ([`scripts/lab.d/sessions.py`](../scripts/lab.d/sessions.py)).
  Offered load is given as the fraction of all %d slots it keeps busy
  (rate × mean hold). A session fails when its name does not resolve, no
  address accepts it, or the response is not 200.
- **Resolvers**: %d instances, three each of Unbound, BIND 9, PowerDNS
  Recursor and Knot Resolver, each querying from its own address; a relay
  on each host's glue address delays each resolver's replies by its own
  distance (round trip, ms) so that each family has one instance nearest
  to each host. Fresh resolvers for every run.
- **Readings**: every host's status endpoint once per second: the load
  (active requests / slots, unsmoothed: a second service on each host
  reads the same upstream with `dns_load_smoothing 0` and answers no one)
  and `www.example.com`'s state and shedding shape.
""" % (" / ".join(str(c) for c in cap), cl["ttl"], cl["hold_ms"][0], cl["hold_ms"][1], sum(cap),
       len(cl["resolvers"])))
    rows = []
    for k, r in enumerate(cl["resolvers"]):
        d = cl["distances"][k]
        rows.append([r["label"], "`%s`" % r["addr"]] + ["%g" % v for v in d] + ["host %d" % (d.index(min(d)) + 1)])
    md.append(table(["resolver", "address"] + ["host %d ms" % (h + 1) for h in range(len(cap))] + ["nearest"],
                    rows) + "\n")
    md.append("Policies (the lines of `www.example.com`'s server block besides the load file):\n")
    for p in policies:
        md.append("- **%s**: %s." % (p, policy_description(p, cl["policies"].get(p), defaults)))
    md.append("")
    md.append(paragraph("""Figures per scenario: **peak** is the highest one-second load of each host
in the window (1.00: every slot busy; beyond it clients get 502), **peak %d s**
the highest %d s mean; **floor** (windows without an event) the one-second peak
that chance alone gives: the window's sessions, with the same hold times, split
among the hosts in proportion to their slots, the largest reading of any host
(mean of 20 draws) — no policy can stay below it at that offered load;
**swing** the peak-to-peak range of each host's %d s mean load in steady state
(the whole window, or its second half after an event); **flips/min** the most
state changes (ready, shedding, ...) of any host per minute; **settle** the
seconds after the (last) event until every host's %d s mean load stays within
%.2f of its level over the window's last quarter (— : not within the run);
**failed** the failed sessions of all started in the window.""" % (
        SETTLE_WINDOW, SETTLE_WINDOW, MEAN_WINDOW, SETTLE_WINDOW, SETTLE_BAND)))
    md.append("Overview: failed sessions (share of all started) and the largest swing of a host, "
              "per scenario and policy:\n")
    rows = []
    for p in policies:
        row = [p]
        for name in names:
            w = figures.get((name, p))
            row.append("—" if w is None else "%.1f%% · %.2f" % (
                100.0 * w["failed_sessions"] / max(1, w["sessions"]), max(w["swing"])))
        rows.append(row)
    md.append(table(["policy"] + names, rows) + "\n")
    for name in names:
        present = [p for p in policies if (name, p) in figures]
        if not present:
            continue
        w0 = figures[(name, present[0])]
        steps = next(r["steps"] for r in cl["runs"] if r["run"] == w0["run"])
        events = next(r["events"] for r in cl["runs"] if r["run"] == w0["run"])
        offered = sorted({f for t, f in steps if t < w0["to"]})
        md.append("### %s\n" % name)
        floors = [figures[(name, p)].get("peak_floor") for p in present]
        floors = [f for f in floors if f is not None]
        md.append(paragraph("Window %g–%g s of run `%s`; offered load %s of all slots%s%s." % (
            w0["from"], w0["to"], w0["run"],
            "%.2f" % offered[-1] if len(offered) == 1 else "%.2f–%.2f" % (offered[0], offered[-1]),
            "".join("; %s host %d at %g s" % (what, h + 1, t) for t, what, h in events),
            "; floor of the one-second peak %.2f–%.2f" % (min(floors), max(floors))
            if floors and not events else "")))
        rows = []
        for p in present:
            w = figures[(name, p)]
            rows.append([p, loads_text(w["peak_load"]),
                         loads_text(w["peak_load_10s"]) if "peak_load_10s" in w else "—",
                         loads_text(w["mean_load"]), loads_text(w["swing"]),
                         "%g" % w["flips_per_min"], "—" if w["settle_s"] is None else "%g s" % w["settle_s"],
                         "%d / %d" % (w["failed_sessions"], w["sessions"]),
                         ", ".join("%s %d" % kv for kv in sorted(w["failures"].items())) or "—",
                         ms(w["conn_ms_median"]) + " / " + ms(w["conn_ms_p99"]),
                         ms(w["dns_ms_median"]) + " / " + ms(w["dns_ms_p99"])])
        md.append(table(["policy", "peak load", "peak %d s" % SETTLE_WINDOW, "mean load", "swing", "flips/min",
                         "settle", "failed",
                         "failures", "connect ms median / p99", "DNS ms median / p99"], rows) + "\n")
    # where each family sent its clients, in the first window
    if names:
        first = names[0]
        md.append("Where each family's clients went in `%s` (sessions per host 1 / 2 / 3):\n" % first)
        fams = []
        for r in cl["resolvers"]:
            if (r["family"], r["label"]) not in fams:
                fams.append((r["family"], r["label"]))
        rows = []
        for p in policies:
            w = figures.get((first, p))
            if w:
                rows.append([p] + [" / ".join(str(x) for x in w["families"].get(f, [0] * len(cap)))
                                   for f, _ in fams])
        md.append(table(["policy"] + [label for _, label in fams], rows) + "\n")
    md.append(closed_repeats(repeats, names, policies))
    md.append(closed_targets(figures, names, policies))
    md.append(closed_model(cl, defaults))
    for path, title in pictures:
        md.append("![%s](%s)\n" % (title, path))
    md.append(CLOSED_END)
    return "\n".join(md) + "\n"


def closed_repeats(repeats, names, policies):
    """The spread over repeated runs (different seeds) of one scenario and
    policy, where there are several."""
    rows = []
    for name in names:
        for p in policies:
            ws = repeats.get((name, p), [])
            if len(ws) < 2:
                continue
            failed = [100.0 * w["failed_sessions"] / max(1, w["sessions"]) for w in ws]
            swing = [max(w["swing"]) for w in ws]
            peak10 = [max(w.get("peak_load_10s") or [0]) for w in ws]
            flips = [w["flips_per_min"] for w in ws]
            settle = ["—" if w["settle_s"] is None else "%g s" % w["settle_s"] for w in ws]
            rows.append([name, p, len(ws), " / ".join("%.1f%%" % x for x in failed),
                         " / ".join("%.2f" % x for x in swing), " / ".join("%.2f" % x for x in peak10),
                         " / ".join("%g" % x for x in flips), " / ".join(settle)])
    if not rows:
        return ""
    return ("Repeated runs (other seeds; the tables above show the first): per run, the failed share, "
            "the largest swing, the largest 10 s peak, flips per minute and settling:\n\n" +
            table(["scenario", "policy", "runs", "failed", "swing", "peak 10 s", "flips/min", "settle"],
                  rows) + "\n")


def closed_targets(figures, names, policies):
    """The issue's targets, checked against this run's figures."""
    out = ["Targets (checked on this run):\n"]
    for p in policies:
        notes = []
        for name in names:
            w = figures.get((name, p))
            if not w:
                continue
            if name == "steady":
                over = [h + 1 for h, v in enumerate(w["peak_load"]) if v > 0.9]
                notes.append("steady one-second peak ≤ 0.9: %s" % (
                    "yes" if not over else "no (host %s; chance alone gives %.2f)" % (
                        ", ".join(map(str, over)), w.get("peak_floor") or 0)))
                if "peak_load_10s" in w:
                    over10 = [h + 1 for h, v in enumerate(w["peak_load_10s"]) if v > 0.9]
                    notes.append("steady 10 s peak ≤ 0.9: %s" % ("yes" if not over10 else "no (host %s)" %
                                                                  ", ".join(map(str, over10))))
                notes.append("≤ 1 state change per host per minute: %s (%g)" % (
                    "yes" if w["flips_per_min"] <= 1 else "no", w["flips_per_min"]))
            if name == "capacity-halves":
                notes.append("settles within 120 s: %s" % ("yes (%g s)" % w["settle_s"]
                                                           if w["settle_s"] is not None and w["settle_s"] <= 120
                                                           else "no"))
            if name == "drain":
                notes.append("no failed session on drain: %s (%d)" % (
                    "yes" if w["failed_sessions"] == 0 else "no", w["failed_sessions"]))
        rr = figures.get((names[0], "round-robin")) if names else None
        w = figures.get((names[0], p)) if names else None
        if rr and w and p != "round-robin":
            key = "peak_load_10s" if "peak_load_10s" in w and "peak_load_10s" in rr else "peak_load"
            notes.append("%s peak below round-robin's in `%s`: %s (%.2f against %.2f)" % (
                "10 s" if key == "peak_load_10s" else "one-second", names[0],
                "yes" if max(w[key]) < max(rr[key]) else "no", max(w[key]), max(rr[key])))
        if notes:
            out.append("- **%s**: %s." % (p, "; ".join(notes)))
    return "\n".join(out) + "\n"


def closed_model(cl, defaults):
    """The population model (popsim.py) run on the lab's own scenarios."""
    from .popsim import calibrate, populations
    rows = calibrate(cl, defaults)
    if not rows:
        return ""
    out = [paragraph("""The population model ([`scripts/labkit/popsim.py`](../scripts/labkit/popsim.py))
on the same capacities, distances, offered load and events: share of the
sessions per host (1 / 2 / 3) and mean load, lab against model, and the
largest gap in percentage points.""")]
    out.append(table(["scenario", "policy", "lab share", "model share", "lab mean load", "model mean load",
                      "gap (points)"],
                     [[r["name"], r["policy"], " / ".join("%.0f%%" % (100 * x) for x in r["lab_share"]),
                       " / ".join("%.0f%%" % (100 * x) for x in r["model_share"]), loads_text(r["lab_mean_load"]),
                       loads_text(r["model_mean_load"]), "%.1f" % r["gap_points"]] for r in rows]) + "\n")
    pop = populations(cl, defaults)
    out.append(paragraph("""The model where the lab cannot go: the same hosts and policies with
populations of 12, 48 and 240 resolvers (the four families in turn, each nearest
to one host), offered load %.2f, 120 s, two seeds: the largest swing of a host,
the failed share of the sessions and the peak load. A swing that does not shrink
with more resolvers is a herd moving together, not the coarseness of twelve
resolvers. Fleets of 3–40 hosts in several regions, thousands of resolvers, a
regional outage and delegations with more name servers than resolvers use:
[popsim.md](popsim.md).""" % pop[0]["offered"]) if pop else "")
    out.append(table(["resolvers", "policy", "swing", "failed", "peak"],
                     [[r["resolvers"], r["policy"], "%.2f" % r["swing"], "%.1f%%" % r["failed_pct"],
                       "%.2f" % r["peak"]] for r in pop]) + "\n")
    return "\n".join(out)


def write_closed_loop(results, out_dir):
    """closed-loop.json (the fixed contract), the pictures, the section
    closed-loop.md, and that section in out_dir/lab.md (replacing the one
    there, or appended)."""
    from .closedloop import contract
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "closed-loop.json"), "w") as f:
        json.dump(contract(results), f, indent=1)
    cl = results["experiments"]["closed-loop"]
    pictures = []
    groups = {}
    for run in cl["runs"]:
        groups.setdefault(run["run"], []).append(run)
    for name, group in groups.items():
        fname = "closed-loop-%s.svg" % name.replace("+", "-")
        with open(os.path.join(out_dir, fname), "w") as f:
            f.write(closed_svg(group, cl))
        pictures.append((fname, "closed loop, %s: each host's load over time per policy" % name))
    section = closed_section(results, pictures)
    with open(os.path.join(out_dir, "closed-loop.md"), "w") as f:
        f.write(section)
    rewrite_lab_md(out_dir, lambda text: splice_closed(text, section))
    return section


def rewrite_lab_md(out_dir, change):
    """out_dir/lab.md replaced by change(its text) ("" when there is none)."""
    lab_md = os.path.join(out_dir, "lab.md")
    text = ""
    if os.path.exists(lab_md):
        with open(lab_md) as f:
            text = f.read()
    with open(lab_md, "w") as f:
        f.write(change(text))


def splice_closed(text, section):
    """text with its closed-loop section replaced by section (appended when
    it has none)."""
    if CLOSED_BEGIN in text and CLOSED_END in text:
        head, rest = text.split(CLOSED_BEGIN, 1)
        tail = rest.split(CLOSED_END, 1)[1].lstrip("\n")
        return head + section + ("\n" + tail if tail else "")
    return text.rstrip("\n") + ("\n\n" if text else "") + section


# ---------------------------------------------------------------- the address move

MOVE_BEGIN = "<!-- address-move paragraph: written by scripts/lab --only address-move -->"
MOVE_END = "<!-- end of the address-move paragraph -->"


def move_block(text):
    """The address move's paragraph in text (markers included), or None."""
    if MOVE_BEGIN in text and MOVE_END in text:
        return MOVE_BEGIN + text.split(MOVE_BEGIN, 1)[1].split(MOVE_END, 1)[0] + MOVE_END
    return None


def splice_move(text, block):
    """text with its address-move paragraph replaced by block; without one,
    block goes before "## Running it" (or at the end)."""
    old = move_block(text)
    if old:
        return text.replace(old, block)
    anchor = "## Running it\n"
    if anchor in text:
        return text.replace(anchor, block + "\n\n" + anchor, 1)
    return text.rstrip("\n") + ("\n\n" if text else "") + block + "\n"


def write_address_move(results, out_dir):
    """out_dir/lab-address-move.md, and a paragraph linking it in
    out_dir/lab.md (replacing the one there; lab.md is otherwise left as
    it is)."""
    os.makedirs(out_dir, exist_ok=True)
    text = addrmove.report(results)
    with open(os.path.join(out_dir, "lab-address-move.md"), "w") as f:
        f.write(text)
    block = "%s\n## Address move\n\n%s\nThe figures per resolver: [lab-address-move.md](lab-address-move.md).\n%s" % (
        MOVE_BEGIN, paragraph(addrmove.summary_line(results)), MOVE_END)
    rewrite_lab_md(out_dir, lambda text: splice_move(text, block))


# ---------------------------------------------------------------- several addresses per NS name

def ns_addresses_report(results):
    """docs/lab-ns-addresses.md from the experiment's data."""
    from . import nsaddr
    d = results["experiments"]["ns-addresses"]
    labels = {n: results["resolvers"][n]["label"] for n in results["resolvers"]}
    versions = results.get("versions", {})
    md = ["# Several addresses per NS name\n"]
    md.append(paragraph("""Resolvers look at a limited number of name servers per delegation (the
limits are below, with where they are in each resolver's source), so a fleet of
more hosts than that can only be reached if resolvers use several addresses per
NS name. This file is written by `scripts/lab --only ns-addresses` from the
measured data (a **%s** run%s); run it again to regenerate it.""" % (
        results.get("mode", "?"),
        " with the debug build of the module" if results.get("build") == "debug" else "")))
    md.append("## Set-up\n")
    deleg = "".join("\n  - `%s` → %s" % (ns["name"], ", ".join(
        "host %d (%s)" % (d["hosts"].index(a) + 1, a) for a in ns["addresses"])) for ns in d["ns"])
    md.append("""- **Hosts**: %d nginx instances with the module, from the lab's host template
  ([`scripts/lab.d/host.conf`](../scripts/lab.d/host.conf)), each on its own
  loopback address with its own `dns_load_file`, `dns_address auto` (each
  answers with its own address), `dns_wildcard on`, `dns_ttl 10s`,
  `dns_silence %s` (a drained host, or one above the high mark, answers
  REFUSED at once); the default shedding curve.
- **Delegation**: the parent (NSD) delegates `www.example.com` to %d NS names,
  each with %d A records as glue:%s
- **Resolvers**: %s; each started afresh for every phase (empty cache and
  server statistics), iterating from the lab's private root.
- **Driver**: in each phase, unique names (`<unique>.www.example.com`, never
  cached) through every resolver at %s queries/s for %g s, all resolvers at
  once; it counts which host's address came back. The first %g s of a phase
  are also reported apart (exploration). The hosts' status counters give the
  queries that reached each host (all resolvers together).
- Software: %s.
""" % (len(d["hosts"]), d["silence"], len(d["ns"]), len(d["ns"][0]["addresses"]), deleg,
       join_labels(labels), d["rate"], d["duration"], d["explore_s"],
       ", ".join("%s %s" % kv for kv in versions.items()) or "versions unknown"))
    md.append("## What the resolvers' source limits\n")
    md.append(table(["resolver", "limit per delegation", "source"],
                    [[r, lim, src] for r, lim, src in nsaddr.LIMITS]) + "\n")
    md.append(paragraph("""So the "about 13 name servers" holds for PowerDNS Recursor (13 NS
names, all their addresses), newer BIND 9 (13 servers, names and addresses
counted together) and Knot Resolver (13 NS names, plus 8 extra addresses per
zone cut); BIND 9.18 follows up to 20 NS names and Unbound 1.17 sets no cap
on the names or addresses of a delegation with glue. Several addresses per
name therefore reach more hosts than 13 in Unbound, BIND 9.18 and PowerDNS
Recursor, up to 21 addresses in Knot Resolver, and at most 13 in BIND 9.21.20
and later."""))
    md.append("## Conclusions (computed from this run)\n")
    md.append(paragraph(" ".join(nsaddr.conclusions(d, labels))))
    for p in d["phases"]:
        md.append("## Phase %s: %s\n" % (p["phase"], p["what"]))
        states = {}
        for st in p["states"]:
            states[st] = states.get(st, 0) + 1
        numeric = sorted(set(float(v) for v in p["loads"] if v not in ("0", "drain")))
        md.append(paragraph("Load files: %s%s; the hosts' states: %s." % (
            ", ".join("host %d %s" % (k + 1, v) for k, v in enumerate(p["loads"]) if v != "0")
            or "all 0",
            "".join(" (the module's default curve at %g: %s)" % (x, curve_at(x, module_defaults(results)))
                    for x in numeric),
            ", ".join("%d %s" % (c, st) for st, c in sorted(states.items(), key=lambda x: x[1])))))
        header = ["resolver"] + ["h%d" % (k + 1) for k in range(len(d["hosts"]))] + \
            [ns["name"].split(".")[0] for ns in d["ns"]] + \
            ["hosts used (≥%g%% after %g s)" % (100 * nsaddr.STEADY_MIN_SHARE, d["explore_s"]),
             "failed", "median / p90 ms"]
        rows = []
        for n in labels:
            r = p["res"].get(n)
            if r is None:
                continue
            s = r["all"]
            sh = nsaddr.shares(s)
            cells = [pct1(x) for x in sh] if sh else ["—"] * len(d["hosts"])
            cells += [pct1(x) for x in nsaddr.name_shares(sh)] if sh else ["—"] * len(d["ns"])
            rows.append([labels[n]] + cells + [
                "%d (%d)" % (nsaddr.used(s), nsaddr.used(r["steady"], nsaddr.STEADY_MIN_SHARE)),
                "%d / %d" % (s["sent"] - s["ok"], s["sent"]),
                "%s / %s" % (ms(s["lat_med_ms"]), ms(s["lat_p90_ms"]))])
        server = p.get("server") or []
        if server and all(x is not None for x in server):
            rows.append(["queries reaching the host"] + [str(x["queries"]) for x in server] +
                        [str(sum(server[k]["queries"] for k in range(i * 3, i * 3 + 3)))
                         for i in range(len(d["ns"]))] + ["", "", ""])
            if any(x["refused"] for x in server):
                rows.append(["of them REFUSED"] + [str(x["refused"]) for x in server] +
                            [""] * len(d["ns"]) + ["", "", ""])
        md.append("Share of each resolver's answered queries per host (h1-h9) and per NS name:\n")
        md.append(table(header, rows) + "\n")
        if p["phase"] == "A":
            md.append("When each host first answered (seconds after the phase began):\n")
            md.append(table(["resolver"] + ["h%d" % (k + 1) for k in range(len(d["hosts"]))],
                            [[labels[n]] + ["—" if t is None else "%.1f" % t
                                            for t in p["res"][n]["first_use_s"]]
                             for n in labels if n in p["res"]]) + "\n")
    return "\n".join(md)


def pct1(f):
    return "%.1f%%" % (100 * f)


def join_labels(labels):
    return ", ".join(labels.values()) or "none"


def write_ns_addresses(results, out_dir):
    """out_dir/lab-ns-addresses.md; returns its text."""
    text = ns_addresses_report(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "lab-ns-addresses.md"), "w") as f:
        f.write(text)
    return text
