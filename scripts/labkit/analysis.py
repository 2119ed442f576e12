"""From raw records to the figures results.json keeps: each host's share of
the answers, failures and latency percentiles, time bins, the failover
figures, and the counters a host's status endpoint reports.
"""

import statistics

from .topology import HOSTS


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def summarize(recs, n_hosts=None):
    """Answers per host (n_hosts of them, the lab's three by default),
    failures by kind and latency of the answered queries; for queries that
    asked for validation (records with ad) also ad: the answers with
    addresses that had AD=1."""
    ok = [r for r in recs if r["status"] == "ok"]
    share = [0] * (n_hosts or len(HOSTS))
    for r in ok:
        if r["host"] is not None:
            share[r["host"]] += 1
    lat = [r["lat"] for r in ok]
    validated = {"ad": sum(bool(r["ad"]) for r in ok)} if any("ad" in r for r in recs) else {}
    return dict(validated, **{
        "sent": len(recs), "ok": len(ok), "hosts": share,
        "servfail": sum(r["status"] == "servfail" for r in recs),
        "timeout": sum(r["status"] in ("timeout", "error") for r in recs),
        "other": sum(r["status"] in ("other", "nodata") for r in recs),
        "lat_med_ms": round(1000 * statistics.median(lat), 1) if lat else None,
        "lat_p90_ms": round(1000 * pct(lat, 0.9), 1) if lat else None,
        "lat_max_ms": round(1000 * max(lat), 1) if lat else None,
    })


def bins(recs, t0, width, dur, tag=None, n_hosts=None):
    """summarize() per `width` seconds of send time, from t0 for dur seconds."""
    out = []
    nb = int(dur // width + (1 if dur % width else 0))
    for b in range(nb):
        lo, hi = t0 + b * width, t0 + (b + 1) * width
        sel = [r for r in recs if lo <= r["sent"] < hi and (tag is None or r["tag"] == tag)]
        s = summarize(sel, n_hosts)
        s["start"] = b * width
        out.append(s)
    return out


def failover_summary(recs, t0, kill_at, dur):
    """Unique names (tag u) and cached names (tag c) before and after host 1
    was killed at t0 + kill_at."""
    uniq = [r for r in recs if r["tag"] == "u"]
    cached = [r for r in recs if r["tag"] == "c"]
    tk = t0 + kill_at
    before = summarize([r for r in uniq if r["sent"] < tk])
    after = [r for r in uniq if r["sent"] >= tk]
    after_s = summarize(after)
    failed = [r for r in after if r["status"] != "ok"]
    last_fail = max((r["sent"] - tk for r in failed), default=None)
    slow = [r for r in after if r["status"] == "ok" and r["lat"] > 0.5]
    c_after = [r for r in cached if r["sent"] >= tk and r["status"] == "ok"]
    last_h1_cached = max((r["sent"] - tk for r in c_after if r["host"] == 0), default=None)
    last_h1_uniq = max((r["sent"] - tk for r in after if r["status"] == "ok" and r["host"] == 0),
                       default=None)
    c_before = [r for r in cached if r["sent"] < tk and r["status"] == "ok"]
    return {
        "before": before, "after": after_s,
        "failed_after": len(failed), "last_failure_s": round(last_fail, 2) if last_fail is not None else None,
        "slow_after": len(slow),
        "cached_h1_share_before": round(100.0 * sum(r["host"] == 0 for r in c_before) /
                                        max(1, len(c_before)), 1),
        "cached_h1_last_s": round(last_h1_cached, 2) if last_h1_cached is not None else None,
        "cached_failed": sum(r["status"] != "ok" for r in cached if r["sent"] >= tk),
        "unique_h1_last_s": round(last_h1_uniq, 2) if last_h1_uniq is not None else None,
        "bins": bins(uniq, t0, 1.0, dur),
        "cached_bins": bins(cached, t0, 1.0, dur),
    }


def counters(st):
    """The query counters of one status object, or None."""
    if not st:
        return None
    q = st["queries"]["udp"] + st["queries"]["tcp"]
    dropped = sum(st["dropped"].values())
    return {"queries": q, "answered": st["answered"], "delayed": st["delayed"],
            "dropped": dropped, "refused": st["refused_by_policy"]}


def counter_delta(a, b):
    if not a or not b:
        return None
    return {k: b[k] - a[k] for k in a}
