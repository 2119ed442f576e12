//! The status report: Prometheus text exposition and JSON, rendered from the
//! shared table (the HTML page is in `html`), and the choice between them.

use super::policy::{Policy, Silence};
use super::shared::{DropReason, ServiceSlot, Source, NOT_CONFIGURED, QTYPES, RCODES};
use super::state::{Reading, State};
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// The formats of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Prometheus,
    Json,
    Html,
}

impl Format {
    /// `?format=` decides when it names a format; otherwise HTML when the
    /// `Accept` header prefers it to plain text (a browser), else
    /// Prometheus text (scrapers and curl send `*/*` or ask for text).
    pub fn choose(arg: Option<&[u8]>, accept: Option<&[u8]>) -> Format {
        match arg {
            Some(b"json") => Format::Json,
            Some(b"html") => Format::Html,
            Some(b"prometheus" | b"text") => Format::Prometheus,
            _ if accept.is_some_and(prefers_html) => Format::Html,
            _ => Format::Prometheus,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::Json => "application/json",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}

/// Whether an `Accept` header (RFC 9110 §12.5.1) rates HTML above zero and
/// at least as high as plain text. Wildcards match both, so they do not
/// decide.
fn prefers_html(accept: &[u8]) -> bool {
    let (mut html, mut text) = (0.0f64, 0.0f64);
    for range in String::from_utf8_lossy(accept).split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .map(|p| p.trim().to_ascii_lowercase())
            .find_map(|p| p.strip_prefix("q=").and_then(|v| v.trim().parse::<f64>().ok()))
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(q),
            "text/plain" | "application/openmetrics-text" => text = text.max(q),
            _ => {}
        }
    }
    html > 0.0 && html >= text
}

fn name(slot: &ServiceSlot) -> String {
    String::from_utf8_lossy(&slot.name()).replace(['"', '\\'], "")
}

fn reading_of(slot: &ServiceSlot, source: Source) -> Option<Reading> {
    match slot.readings[source as usize].load(Relaxed) {
        NOT_CONFIGURED => None,
        v => Reading::from_i32(v),
    }
}

fn reading_label(r: Reading) -> &'static str {
    match r {
        Reading::Load(_) => "ok",
        Reading::Down => "down",
        Reading::Drain => "drain",
        Reading::Starting => "starting",
    }
}

/// Prometheus text format (version 0.0.4).
pub fn prometheus(slots: &[&ServiceSlot]) -> String {
    let mut out = String::with_capacity(4096);
    let family = |out: &mut String, metric: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
    };
    family(
        &mut out,
        "dns_service_state",
        "gauge",
        "1 for the service's current state.",
    );
    for s in slots {
        let current = State::from_u32(s.state.load(Relaxed));
        for state in State::ALL {
            let _ = writeln!(
                out,
                "dns_service_state{{service=\"{}\",state=\"{}\"}} {}",
                name(s),
                state.name(),
                u8::from(state == current)
            );
        }
    }
    family(&mut out, "dns_service_load", "gauge", "Smoothed load, 0 to 1.");
    for s in slots {
        let _ = writeln!(
            out,
            "dns_service_load{{service=\"{}\"}} {:.3}",
            name(s),
            f64::from(s.load_milli.load(Relaxed)) / 1000.0
        );
    }
    family(
        &mut out,
        "dns_service_delay_seconds",
        "gauge",
        "Current delay of answers.",
    );
    for s in slots {
        let _ = writeln!(
            out,
            "dns_service_delay_seconds{{service=\"{}\"}} {:.6}",
            name(s),
            f64::from(s.delay_us.load(Relaxed)) / 1e6
        );
    }
    family(
        &mut out,
        "dns_service_drop_ratio",
        "gauge",
        "Current probability of dropping an answer.",
    );
    for s in slots {
        let _ = writeln!(
            out,
            "dns_service_drop_ratio{{service=\"{}\"}} {:.6}",
            name(s),
            f64::from(s.drop_ppm.load(Relaxed)) / 1e6
        );
    }
    family(
        &mut out,
        "dns_service_refuse_ratio",
        "gauge",
        "Current probability of refusing a query (REFUSED at once).",
    );
    for s in slots {
        let _ = writeln!(
            out,
            "dns_service_refuse_ratio{{service=\"{}\"}} {:.6}",
            name(s),
            f64::from(s.refuse_ppm.load(Relaxed)) / 1e6
        );
    }
    family(
        &mut out,
        "dns_service_source_load",
        "gauge",
        "Last load reading of each configured source (when it reports one).",
    );
    for s in slots {
        for source in Source::ALL {
            if let Some(Reading::Load(l)) = reading_of(s, source) {
                let _ = writeln!(
                    out,
                    "dns_service_source_load{{service=\"{}\",source=\"{}\"}} {:.3}",
                    name(s),
                    source.name(),
                    l
                );
            }
        }
    }
    family(
        &mut out,
        "dns_service_source_status",
        "gauge",
        "1 for each configured source's current status.",
    );
    for s in slots {
        for source in Source::ALL {
            if let Some(r) = reading_of(s, source) {
                let _ = writeln!(
                    out,
                    "dns_service_source_status{{service=\"{}\",source=\"{}\",status=\"{}\"}} 1",
                    name(s),
                    source.name(),
                    reading_label(r)
                );
            }
        }
    }
    family(
        &mut out,
        "dns_service_queries_total",
        "counter",
        "Queries received, by transport.",
    );
    for s in slots {
        let c = &s.counters;
        let _ = writeln!(
            out,
            "dns_service_queries_total{{service=\"{}\",transport=\"udp\"}} {}",
            name(s),
            c.queries_udp.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_queries_total{{service=\"{}\",transport=\"tcp\"}} {}",
            name(s),
            c.queries_tcp.load(Relaxed)
        );
    }
    family(
        &mut out,
        "dns_service_queries_by_type_total",
        "counter",
        "Queries received, by query type.",
    );
    for s in slots {
        for (i, (_, t)) in QTYPES.iter().enumerate() {
            let _ = writeln!(
                out,
                "dns_service_queries_by_type_total{{service=\"{}\",qtype=\"{t}\"}} {}",
                name(s),
                s.counters.qtype[i].load(Relaxed)
            );
        }
    }
    family(
        &mut out,
        "dns_service_responses_total",
        "counter",
        "Responses sent, by response code.",
    );
    for s in slots {
        for (i, (_, r)) in RCODES.iter().enumerate() {
            let _ = writeln!(
                out,
                "dns_service_responses_total{{service=\"{}\",rcode=\"{r}\"}} {}",
                name(s),
                s.counters.rcode[i].load(Relaxed)
            );
        }
    }
    family(
        &mut out,
        "dns_service_answered_total",
        "counter",
        "Responses sent without delay.",
    );
    family(
        &mut out,
        "dns_service_delayed_total",
        "counter",
        "Responses sent after a shedding delay.",
    );
    family(
        &mut out,
        "dns_service_truncated_total",
        "counter",
        "UDP responses sent truncated (TC=1).",
    );
    family(
        &mut out,
        "dns_service_refused_by_policy_total",
        "counter",
        "REFUSED sent because the service was silent.",
    );
    family(
        &mut out,
        "dns_service_slipped_total",
        "counter",
        "Truncated replies sent instead of rate-limited responses.",
    );
    family(
        &mut out,
        "dns_service_send_failed_total",
        "counter",
        "Responses the kernel refused to send (unreachable client, full socket buffer).",
    );
    for s in slots {
        let c = &s.counters;
        let _ = writeln!(
            out,
            "dns_service_answered_total{{service=\"{}\"}} {}",
            name(s),
            c.answered.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_delayed_total{{service=\"{}\"}} {}",
            name(s),
            c.delayed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_truncated_total{{service=\"{}\"}} {}",
            name(s),
            c.truncated.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_refused_by_policy_total{{service=\"{}\"}} {}",
            name(s),
            c.refused_by_policy.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_slipped_total{{service=\"{}\"}} {}",
            name(s),
            c.slipped.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "dns_service_send_failed_total{{service=\"{}\"}} {}",
            name(s),
            c.send_failed.load(Relaxed)
        );
    }
    family(
        &mut out,
        "dns_service_dropped_total",
        "counter",
        "Queries left unanswered, by reason.",
    );
    for s in slots {
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "dns_service_dropped_total{{service=\"{}\",reason=\"{}\"}} {}",
                name(s),
                reason.name(),
                s.counters.dropped[reason as usize].load(Relaxed)
            );
        }
    }
    out
}

/// The same figures as one JSON document.
/// One service as the JSON report shows it: its shared slot and the
/// policy its configuration gives it.
pub struct Report<'a> {
    pub slot: &'a ServiceSlot,
    pub policy: &'a Policy,
    pub smoothing_ms: u64,
    /// The `"addresses"` object (a JSON text), for a service whose
    /// addresses can change while running.
    pub addresses: Option<String>,
}

/// The effective shedding policy, so that tools (the resolver lab, an
/// operator) read the module's real defaults instead of copying them.
fn write_policy(out: &mut String, policy: &Policy, smoothing_ms: u64) {
    out.push_str("\"policy\":{\"curve\":[");
    for (i, p) in policy.curve.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"load\":{},\"delay_ms\":{},\"drop\":{},\"refuse\":{}}}",
            if i > 0 { "," } else { "" },
            p.load,
            p.delay_ms,
            p.drop,
            p.refuse
        );
    }
    let silence = match policy.silence {
        Silence::Drop => "drop",
        Silence::Refuse => "refuse",
    };
    let _ = write!(
        out,
        "],\"high\":{},\"hold_ms\":{},\"silence\":\"{silence}\",\"smoothing_ms\":{smoothing_ms}}},",
        policy.high, policy.hold_ms
    );
}

/// JSON: `{"services":[{"name":..., "state":..., "policy":{...}, ...}]}`.
pub fn json(services: &[Report]) -> String {
    let mut out = String::from("{\"services\":[");
    for (n, report) in services.iter().enumerate() {
        let s = report.slot;
        let c = &s.counters;
        if n > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":\"{}\",\"state\":\"{}\",\"load\":{:.3},\"delay_ms\":{:.3},\"drop_ratio\":{:.6},\"refuse_ratio\":{:.6},\"sources\":{{",
            name(s),
            State::from_u32(s.state.load(Relaxed)).name(),
            f64::from(s.load_milli.load(Relaxed)) / 1000.0,
            f64::from(s.delay_us.load(Relaxed)) / 1000.0,
            f64::from(s.drop_ppm.load(Relaxed)) / 1e6,
            f64::from(s.refuse_ppm.load(Relaxed)) / 1e6
        );
        let mut first = true;
        for source in Source::ALL {
            let Some(r) = reading_of(s, source) else { continue };
            if !first {
                out.push(',');
            }
            first = false;
            let _ = write!(out, "\"{}\":{{\"status\":\"{}\"", source.name(), reading_label(r));
            if let Reading::Load(l) = r {
                let _ = write!(out, ",\"load\":{l:.3}");
            }
            out.push('}');
        }
        out.push_str("},");
        write_policy(&mut out, report.policy, report.smoothing_ms);
        if let Some(addresses) = &report.addresses {
            let _ = write!(out, "\"addresses\":{addresses},");
        }
        let _ = write!(
            out,
            "\"queries\":{{\"udp\":{},\"tcp\":{},\"by_type\":{{",
            c.queries_udp.load(Relaxed),
            c.queries_tcp.load(Relaxed)
        );
        for (i, (_, t)) in QTYPES.iter().enumerate() {
            let _ = write!(
                out,
                "{}\"{t}\":{}",
                if i > 0 { "," } else { "" },
                c.qtype[i].load(Relaxed)
            );
        }
        out.push_str("}},\"responses\":{");
        for (i, (_, r)) in RCODES.iter().enumerate() {
            let _ = write!(
                out,
                "{}\"{r}\":{}",
                if i > 0 { "," } else { "" },
                c.rcode[i].load(Relaxed)
            );
        }
        let _ = write!(
            out,
            "}},\"answered\":{},\"delayed\":{},\"truncated\":{},\"refused_by_policy\":{},\"slipped\":{},\"send_failed\":{},\"dropped\":{{",
            c.answered.load(Relaxed),
            c.delayed.load(Relaxed),
            c.truncated.load(Relaxed),
            c.refused_by_policy.load(Relaxed),
            c.slipped.load(Relaxed),
            c.send_failed.load(Relaxed)
        );
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            let _ = write!(
                out,
                "{}\"{}\":{}",
                if i > 0 { "," } else { "" },
                reason.name(),
                c.dropped[*reason as usize].load(Relaxed)
            );
        }
        out.push_str("}}");
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::shared::Table;
    use super::*;

    #[test]
    fn the_format_follows_the_argument_then_the_accept_header() {
        let choose =
            |arg: Option<&str>, accept: Option<&str>| Format::choose(arg.map(str::as_bytes), accept.map(str::as_bytes));
        let firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
        assert_eq!(choose(None, None), Format::Prometheus);
        assert_eq!(choose(None, Some("*/*")), Format::Prometheus);
        assert_eq!(choose(None, Some(firefox)), Format::Html);
        assert_eq!(choose(None, Some("application/xhtml+xml")), Format::Html);
        assert_eq!(choose(None, Some(prometheus)), Format::Prometheus);
        assert_eq!(choose(None, Some("text/plain, text/html;q=0.5")), Format::Prometheus);
        assert_eq!(
            choose(None, Some("TEXT/HTML;level=1;q=0.9, text/plain;q=0.8")),
            Format::Html
        );
        assert_eq!(choose(None, Some("text/html;q=0")), Format::Prometheus);
        assert_eq!(choose(Some("json"), Some(firefox)), Format::Json);
        assert_eq!(choose(Some("prometheus"), Some(firefox)), Format::Prometheus);
        assert_eq!(choose(Some("html"), None), Format::Html);
        assert_eq!(choose(Some("nonsense"), Some(firefox)), Format::Html);
        assert_eq!(Format::Html.content_type(), "text/html; charset=utf-8");
    }

    #[test]
    fn renders_both_formats() {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [0; 16], [0; 16]) };
        let idx = table.assign(&[b"www.example.com"]).unwrap()[0];
        let slot = &table.slots[idx];
        slot.state.store(State::Shedding as u32, Relaxed);
        slot.load_milli.store(850, Relaxed);
        slot.refuse_ppm.store(300_000, Relaxed);
        for (i, r) in slot.readings.iter().enumerate() {
            r.store(
                if i == Source::File as usize {
                    850
                } else {
                    NOT_CONFIGURED
                },
                Relaxed,
            );
        }
        slot.counters.query(false, Some(1));
        slot.counters.query(true, Some(99));
        slot.counters.response(3, false);
        slot.counters.response(2, false);
        slot.counters.response(2, false);
        slot.counters.dropped(DropReason::Shed);
        let text = prometheus(&[slot]);
        assert!(text.contains("dns_service_state{service=\"www.example.com\",state=\"shedding\"} 1"));
        assert!(text.contains("dns_service_load{service=\"www.example.com\"} 0.850"));
        assert!(text.contains("dns_service_source_load{service=\"www.example.com\",source=\"file\"} 0.850"));
        assert!(!text.contains("source=\"probe\""));
        assert!(text.contains("dns_service_queries_total{service=\"www.example.com\",transport=\"tcp\"} 1"));
        assert!(text.contains("qtype=\"other\"} 1"));
        assert!(text.contains("rcode=\"NXDOMAIN\"} 1"));
        assert!(text.contains("dns_service_responses_total{service=\"www.example.com\",rcode=\"SERVFAIL\"} 2"));
        assert!(text.contains("dns_service_responses_total{service=\"www.example.com\",rcode=\"other\"} 0"));
        assert!(text.contains("reason=\"shed\"} 1"));
        assert!(text.contains("dns_service_refuse_ratio{service=\"www.example.com\"} 0.300000"));
        let policy = Policy::default();
        let report = Report {
            slot,
            policy: &policy,
            smoothing_ms: 2000,
            addresses: None,
        };
        let doc: serde_json::Value = serde_json::from_str(&json(&[report])).expect("valid JSON");
        let service = &doc["services"][0];
        assert_eq!(service["name"], "www.example.com");
        assert_eq!(service["state"], "shedding");
        assert_eq!(service["sources"]["file"]["load"], 0.85);
        assert!(service["sources"].get("probe").is_none());
        assert_eq!(service["queries"]["by_type"]["A"], 1);
        assert_eq!(service["responses"]["NXDOMAIN"], 1);
        assert_eq!(service["responses"]["SERVFAIL"], 2);
        assert_eq!(service["responses"]["other"], 0);
        assert_eq!(service["dropped"]["shed"], 1);
        assert_eq!(service["refuse_ratio"], 0.3);
        let reported = &service["policy"];
        assert_eq!(reported["silence"], "refuse");
        assert_eq!(reported["high"], policy.high);
        assert_eq!(reported["smoothing_ms"], 2000);
        assert_eq!(reported["hold_ms"], policy.hold_ms);
        let curve = reported["curve"].as_array().expect("curve");
        assert_eq!(curve.len(), policy.curve.len());
        for (point, expected) in curve.iter().zip(&policy.curve) {
            assert_eq!(point["load"], expected.load);
            assert_eq!(point["delay_ms"], expected.delay_ms);
            assert_eq!(point["drop"], expected.drop);
            assert_eq!(point["refuse"], expected.refuse);
        }
    }
}
