//! The status page for people: one self-contained HTML document (no
//! script, no external assets) that reloads itself every five seconds and
//! shows, per service, its state and why, the current load, delay and drop,
//! each source's last reading and its age, a chart of the last ten minutes,
//! the counters and the last state changes. Every text that comes from
//! outside the page's own code is escaped.

use super::chart;
use super::history::{Cause, Change, HISTORY_SECONDS};
use super::policy::{Silence, PPM};
use super::shared::{DropReason, ServiceSlot, Source, NOT_CONFIGURED, QTYPES, RCODES};
use super::state::{Reading, State};
use super::status::Report;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// Seconds between reloads of the page.
pub const REFRESH_S: u32 = 5;

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#212121;max-width:1100px}\
h1{font-size:1.4em}h2{font-size:1.2em;margin-bottom:.3em}h3{font-size:1em;margin:.8em 0 .3em}\
section.service{border:1px solid #ccc;border-radius:6px;padding:.2em 1em 1em;margin:1em 0}\
.state{color:#fff;border-radius:4px;padding:.1em .5em;font-size:.9em}\
table{border-collapse:collapse;margin-right:1.5em}td,th{padding:.15em .6em;text-align:left;\
border-bottom:1px solid #eee;font-size:.9em}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.row{display:flex;flex-wrap:wrap;align-items:flex-start}.meta,.reason{color:#555}\
.key{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em;vertical-align:middle}";

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    // Days to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let s = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// How long ago `then_ms` was, for people: "0.3 s", "42 s", "5 min", "3 h", "2 d".
pub fn ago(now_ms: u64, then_ms: u64) -> String {
    let ms = now_ms.saturating_sub(then_ms);
    match ms {
        0..=9_999 => format!("{:.1} s", ms as f64 / 1000.0),
        10_000..=89_999 => format!("{} s", ms / 1000),
        90_000..=5_399_999 => format!("{} min", ms / 60_000),
        5_400_000..=172_799_999 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

fn source_label(source: Source) -> &'static str {
    match source {
        Source::Upstream => "upstream",
        Source::Probe => "health probe",
        Source::File => "load file",
        Source::Host => "host pressure",
    }
}

fn reading_text(reading: Reading) -> String {
    match reading {
        Reading::Load(l) => format!("load {l:.3}"),
        Reading::Down => "down".to_string(),
        Reading::Drain => "drain".to_string(),
        Reading::Starting => "not passed yet".to_string(),
    }
}

/// The reason for a state, in words.
pub fn cause_text(cause: &Cause) -> String {
    match (cause.source, cause.reading) {
        (Some(source), Some(reading)) => format!("{}: {}", source_label(source), reading_text(reading)),
        _ => "no load source".to_string(),
    }
}

fn readings(slot: &ServiceSlot) -> Vec<(Source, Reading)> {
    Source::ALL
        .iter()
        .filter_map(|&source| match slot.readings[source as usize].load(Relaxed) {
            NOT_CONFIGURED => None,
            v => Reading::from_i32(v).map(|r| (source, r)),
        })
        .collect()
}

fn state_badge(state: State) -> String {
    format!(
        "<span class=\"state state-{0}\" style=\"background:{1}\">{0}</span>",
        state.name(),
        chart::state_colour(state)
    )
}

/// The whole page for `services` as of `now_ms` (Unix time).
pub fn html(services: &[Report], now_ms: u64) -> String {
    let mut out = String::with_capacity(16_384 + services.len() * 24_576);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_S}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>DNS services</title><style>{STYLE}</style></head><body>\
         <h1>DNS services</h1><p class=\"meta\">As of <time>{} UTC</time>; the page reloads every \
         {REFRESH_S} s. Also as <a href=\"?format=json\">JSON</a> and \
         <a href=\"?format=prometheus\">Prometheus text</a>.</p>",
        utc(now_ms)
    );
    if services.is_empty() {
        out.push_str("<p>No <code>dns_service</code> is configured.</p>");
    }
    for report in services {
        service(&mut out, report, now_ms);
    }
    out.push_str("</body></html>\n");
    out
}

fn service(out: &mut String, report: &Report, now_ms: u64) {
    let slot = report.slot;
    let name = esc(&String::from_utf8_lossy(&slot.name()));
    let state = State::from_u32(slot.state.load(Relaxed));
    let readings = readings(slot);
    let changes = slot.changes.newest_first();
    let _ = write!(
        out,
        "<section class=\"service\" id=\"service-{name}\"><h2>{name} {}</h2><p class=\"reason\">\
         Because of <span class=\"cause\">{}</span>",
        state_badge(state),
        esc(&cause_text(&Cause::of(state, &readings)))
    );
    if let Some(last) = changes.first().filter(|c| c.to == state) {
        let _ = write!(out, ", since {} UTC ({} ago)", utc(last.at_ms), ago(now_ms, last.at_ms));
    }
    out.push_str(".</p>");

    let silence = match report.policy.silence {
        Silence::Refuse => "REFUSED",
        Silence::Drop => "no response",
    };
    let drop_ppm = slot.drop_ppm.load(Relaxed);
    // A silent service answers nothing: its queries are refused or dropped
    // as `dns_silence` says, which the row below tells.
    let drop = if drop_ppm >= PPM {
        "none answered".to_string()
    } else {
        format!("{:.1}%", f64::from(drop_ppm) / 1e4)
    };
    let _ = write!(
        out,
        "<div class=\"row\"><table class=\"now\"><tr><th>load</th><td class=\"n load\">{:.3}</td></tr>\
         <tr><th>delay</th><td class=\"n delay\">{:.1} ms</td></tr>\
         <tr><th>drop</th><td class=\"n drop\">{drop}</td></tr>\
         <tr><th>no answer means</th><td>{silence}</td></tr></table>",
        f64::from(slot.load_milli.load(Relaxed)) / 1000.0,
        f64::from(slot.delay_us.load(Relaxed)) / 1000.0,
    );
    out.push_str("<table class=\"sources\"><tr><th>source</th><th>last reading</th><th>age</th></tr>");
    if readings.is_empty() {
        out.push_str("<tr><td colspan=\"3\">no load source configured</td></tr>");
    }
    for (source, reading) in &readings {
        let at = slot.reading_at_ms[*source as usize].load(Relaxed);
        let age = if at == 0 { "never".to_string() } else { ago(now_ms, at) };
        let _ = write!(
            out,
            "<tr class=\"source-{}\"><td>{}</td><td>{}</td><td class=\"n\">{age}</td></tr>",
            source.name(),
            source_label(*source),
            reading_text(*reading)
        );
    }
    out.push_str("</table></div>");

    let now_s = now_ms / 1000;
    let span = HISTORY_SECONDS as u64;
    out.push_str("<h3>Last 10 minutes</h3>");
    out.push_str(&chart::svg(&slot.history.last(now_s, span), now_s, span));
    let _ = write!(
        out,
        "<p class=\"legend\"><span class=\"key\" style=\"background:{}\"></span>load",
        chart::LOAD_COLOUR
    );
    for (label, colour, _) in chart::SERIES {
        let _ = write!(
            out,
            "<span class=\"key\" style=\"background:{colour}\"></span>{label} per second"
        );
    }
    out.push_str(". The band behind the load is the state.</p>");

    counters(out, slot);
    changes_table(out, &changes, now_ms);
    out.push_str("</section>");
}

fn counters(out: &mut String, slot: &ServiceSlot) {
    let c = &slot.counters;
    let row = |out: &mut String, label: &str, v: u64| {
        let _ = write!(out, "<tr><th>{label}</th><td class=\"n\">{v}</td></tr>");
    };
    out.push_str("<h3>Counters</h3><div class=\"row\"><table class=\"counters\">");
    row(out, "queries over UDP", c.queries_udp.load(Relaxed));
    row(out, "queries over TCP", c.queries_tcp.load(Relaxed));
    row(out, "answered", c.answered.load(Relaxed));
    row(out, "delayed", c.delayed.load(Relaxed));
    row(out, "refused by policy", c.refused_by_policy.load(Relaxed));
    row(out, "truncated", c.truncated.load(Relaxed));
    row(out, "slipped", c.slipped.load(Relaxed));
    row(out, "send failed", c.send_failed.load(Relaxed));
    out.push_str("</table><table class=\"dropped\">");
    for reason in DropReason::ALL {
        row(
            out,
            &format!("dropped: {}", reason.name()),
            c.dropped[reason as usize].load(Relaxed),
        );
    }
    out.push_str("</table><table class=\"rcodes\">");
    for (i, (_, rcode)) in RCODES.iter().enumerate() {
        row(out, &format!("responses {rcode}"), c.rcode[i].load(Relaxed));
    }
    out.push_str("</table><table class=\"qtypes\">");
    for (i, (_, qtype)) in QTYPES.iter().enumerate() {
        row(out, &format!("queries {qtype}"), c.qtype[i].load(Relaxed));
    }
    out.push_str("</table></div>");
}

fn changes_table(out: &mut String, changes: &[Change], now_ms: u64) {
    out.push_str("<h3>State changes</h3>");
    if changes.is_empty() {
        out.push_str("<p>None since the service started.</p>");
        return;
    }
    out.push_str(
        "<table class=\"changes\"><tr><th>time (UTC)</th><th>ago</th><th>change</th>\
         <th>because of</th><th>load</th></tr>",
    );
    for change in changes {
        let from = change.from.map_or("start", State::name);
        let _ = write!(
            out,
            "<tr class=\"change\"><td>{}</td><td class=\"n\">{}</td>\
             <td><span class=\"from\">{from}</span> \u{2192} <span class=\"to\">{}</span></td>\
             <td>{}</td><td class=\"n\">{:.3}</td></tr>",
            utc(change.at_ms),
            ago(now_ms, change.at_ms),
            change.to.name(),
            esc(&cause_text(&change.cause)),
            change.load
        );
    }
    out.push_str("</table>");
}

#[cfg(test)]
mod tests {
    use super::super::history::{Second, Served};
    use super::super::policy::Policy;
    use super::super::shared::Table;
    use super::*;

    const NOW_MS: u64 = 1_795_000_000_000;

    #[test]
    fn times_and_ages_read_well() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_000_000_999), "2026-11-18 11:06:40");
        assert_eq!(ago(10_000, 9_700), "0.3 s");
        assert_eq!(ago(100_000, 58_000), "42 s");
        assert_eq!(ago(1_000_000, 700_000), "5 min");
        assert_eq!(ago(20_000_000, 0), "5 h");
        assert_eq!(ago(0, 5), "0.0 s");
    }

    #[test]
    fn everything_from_outside_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [0; 16], [0; 16]) };
        let i = table.assign(&[b"<script>x</script>.example"]).unwrap()[0];
        let policy = Policy::default();
        let report = Report {
            slot: &table.slots[i],
            policy: &policy,
            smoothing_ms: 0,
            addresses: None,
        };
        let page = html(&[report], NOW_MS);
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;.example"));
    }

    #[test]
    fn the_page_shows_state_reason_sources_history_and_changes() {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [0; 16], [0; 16]) };
        let i = table.assign(&[b"www.example.com"]).unwrap()[0];
        let slot = &table.slots[i];
        for r in &slot.readings {
            r.store(NOT_CONFIGURED, Relaxed);
        }
        slot.state.store(State::Draining as u32, Relaxed);
        slot.load_milli.store(300, Relaxed);
        slot.readings[Source::File as usize].store(Reading::Drain.to_i32(), Relaxed);
        slot.reading_at_ms[Source::File as usize].store(NOW_MS - 200, Relaxed);
        slot.readings[Source::Upstream as usize].store(Reading::Load(0.3).to_i32(), Relaxed);
        slot.counters.answered.fetch_add(41, Relaxed);
        slot.counters.dropped(DropReason::Silent);
        slot.counters.response(2, false);
        for s in 0..5 {
            slot.history.record(&Second {
                at_s: NOW_MS / 1000 - 4 + s,
                state: if s < 3 { State::Ready } else { State::Draining },
                load: 0.3,
                served: Served {
                    answered: 10,
                    ..Served::default()
                },
            });
        }
        let drain = Cause {
            source: Some(Source::File),
            reading: Some(Reading::Drain),
        };
        let first = Change {
            at_ms: NOW_MS - 60_000,
            from: None,
            to: State::Ready,
            load: 0.0,
            cause: Cause::NONE,
        };
        slot.changes.post(&first);
        slot.changes.post(&Change {
            at_ms: NOW_MS - 2_000,
            from: Some(State::Ready),
            to: State::Draining,
            load: 0.3,
            cause: drain,
        });
        let policy = Policy::default();
        let page = html(
            &[Report {
                slot,
                policy: &policy,
                smoothing_ms: 2000,
                addresses: None,
            }],
            NOW_MS,
        );
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("<link"));
        assert!(page.contains("id=\"service-www.example.com\""));
        assert!(page.contains(">draining</span></h2>"));
        assert!(page.contains("Because of <span class=\"cause\">load file: drain</span>, since "));
        assert!(page.contains("<tr class=\"source-file\"><td>load file</td><td>drain</td><td class=\"n\">0.2 s</td>"));
        assert!(page.contains("<td>upstream</td><td>load 0.300</td><td class=\"n\">never</td>"));
        assert!(page.contains("<th>answered</th><td class=\"n\">41</td>"));
        assert!(page.contains("<th>dropped: silent</th><td class=\"n\">1</td>"));
        assert!(page.contains("<th>responses SERVFAIL</th><td class=\"n\">1</td>"));
        assert!(page.contains("<th>responses other</th><td class=\"n\">0</td>"));
        slot.drop_ppm.store(PPM, Relaxed);
        let silent = html(
            &[Report {
                slot,
                policy: &policy,
                smoothing_ms: 0,
                addresses: None,
            }],
            NOW_MS,
        );
        assert!(silent.contains("<td class=\"n drop\">none answered</td>"));
        assert!(silent.contains("<th>no answer means</th><td>REFUSED</td>"));
        assert!(page.contains("<svg class=\"chart\""));
        assert_eq!(page.matches("<tr class=\"change\">").count(), 2);
        assert!(page.contains("<span class=\"from\">ready</span> \u{2192} <span class=\"to\">draining</span>"));
        assert!(page.contains("<span class=\"from\">start</span> \u{2192} <span class=\"to\">ready</span>"));
        assert!(page.contains("<td>load file: drain</td>"));
        let newest = page.find("<span class=\"to\">draining").unwrap();
        assert!(
            newest < page.find("<span class=\"to\">ready").unwrap(),
            "newest change first"
        );
    }

    #[test]
    fn no_services_still_makes_a_page() {
        let page = html(&[], NOW_MS);
        assert!(page.contains("No <code>dns_service</code> is configured."));
        assert!(page.ends_with("</body></html>\n"));
    }
}
