//! The status page's chart: one inline SVG per service with two panels over
//! the last ten minutes: the load (with the state as a coloured band
//! behind it), and the queries answered, delayed, refused and dropped per
//! second. Seconds missing from the history (no leader, nginx stopped)
//! leave gaps rather than lines drawn across them.

use super::history::{Second, Served};
use super::state::State;
use std::fmt::Write;

const WIDTH: f64 = 720.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 8.0;
const LOAD_TOP: f64 = 8.0;
const LOAD_HEIGHT: f64 = 60.0;
const RATE_TOP: f64 = 84.0;
const RATE_HEIGHT: f64 = 90.0;
const HEIGHT: f64 = 196.0;

/// The colour of each state (the page's legend uses the same).
pub fn state_colour(state: State) -> &'static str {
    match state {
        State::Ready => "#2e7d32",
        State::Shedding => "#ef6c00",
        State::Down => "#c62828",
        State::Draining => "#6a1b9a",
        State::Starting => "#757575",
    }
}

/// A series of the lower panel: name, colour, and the count it plots.
pub type Series = (&'static str, &'static str, fn(&Served) -> u64);
pub const SERIES: [Series; 4] = [
    ("answered", "#2e7d32", |s| s.answered),
    ("delayed", "#ef6c00", |s| s.delayed),
    ("refused", "#6a1b9a", |s| s.refused),
    ("dropped", "#c62828", |s| s.dropped),
];
pub const LOAD_COLOUR: &str = "#1565c0";

/// The smallest 1, 2 or 5 times a power of ten that is at least `v` (and 1).
fn nice_ceiling(v: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step.saturating_mul(m) >= v {
                return step.saturating_mul(m);
            }
        }
        step = step.saturating_mul(10);
    }
}

/// Renders `seconds` (oldest first, from `History::last`) over the `span_s`
/// seconds up to `now_s`.
pub fn svg(seconds: &[Second], now_s: u64, span_s: u64) -> String {
    let plot = WIDTH - LEFT - RIGHT;
    let start = now_s.saturating_sub(span_s) as f64;
    let x = |at_s: u64| LEFT + ((at_s as f64 - start) / span_s as f64).clamp(0.0, 1.0) * plot;
    let load_y = |l: f64| LOAD_TOP + LOAD_HEIGHT * (1.0 - l.clamp(0.0, 1.0));
    let peak = seconds
        .iter()
        .flat_map(|s| SERIES.iter().map(move |(_, _, f)| f(&s.served)))
        .max()
        .unwrap_or(0);
    let top = nice_ceiling(peak);
    let rate_y = |v: u64| RATE_TOP + RATE_HEIGHT * (1.0 - v as f64 / top as f64);

    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>load and queries per second over the last {} minutes</title>",
        span_s / 60
    );
    // Frames, grid and labels.
    for (y, h) in [(LOAD_TOP, LOAD_HEIGHT), (RATE_TOP, RATE_HEIGHT)] {
        let _ = write!(
            out,
            "<rect x=\"{LEFT}\" y=\"{y}\" width=\"{plot}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#bbb\"/>"
        );
    }
    let labels = [
        (LOAD_TOP + 4.0, "load 1".to_string()),
        (LOAD_TOP + LOAD_HEIGHT, "0".to_string()),
        (RATE_TOP + 4.0, format!("{top}/s")),
        (RATE_TOP + RATE_HEIGHT, "0".to_string()),
    ];
    for (y, text) in labels {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\">{text}</text>",
            LEFT - 4.0
        );
    }
    for (i, label) in ["\u{2212}10 min", "\u{2212}5 min", "now"].iter().enumerate() {
        let at = LEFT + plot * i as f64 / 2.0;
        let anchor = ["start", "middle", "end"][i];
        let _ = write!(
            out,
            "<text x=\"{at}\" y=\"{}\" text-anchor=\"{anchor}\">{label}</text>",
            HEIGHT - 6.0
        );
    }
    if seconds.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#757575\">no history yet</text></svg>",
            LEFT + plot / 2.0,
            LOAD_TOP + LOAD_HEIGHT / 2.0
        );
        return out;
    }
    // The state as bands behind the load: one rectangle per run of seconds
    // in one state (second s covers the time from s - 1 to s).
    let mut run_start = 0;
    for i in 1..=seconds.len() {
        let ends = i == seconds.len()
            || seconds[i].state != seconds[run_start].state
            || seconds[i].at_s != seconds[i - 1].at_s + 1;
        if ends {
            let (first, last) = (&seconds[run_start], &seconds[i - 1]);
            let x0 = x(first.at_s.saturating_sub(1));
            let _ = write!(
                out,
                "<rect class=\"band\" x=\"{x0:.1}\" y=\"{LOAD_TOP}\" width=\"{:.1}\" height=\"{LOAD_HEIGHT}\" \
                 fill=\"{}\" fill-opacity=\"0.18\"><title>{}</title></rect>",
                (x(last.at_s) - x0).max(0.5),
                state_colour(first.state),
                first.state.name()
            );
            run_start = i;
        }
    }
    path(&mut out, seconds, LOAD_COLOUR, |s| (x(s.at_s), load_y(s.load)));
    for (_, colour, count) in SERIES {
        path(&mut out, seconds, colour, |s| (x(s.at_s), rate_y(count(&s.served))));
    }
    out.push_str("</svg>");
    out
}

/// One line through `seconds`, lifted where a second is missing.
fn path(out: &mut String, seconds: &[Second], colour: &str, point: impl Fn(&Second) -> (f64, f64)) {
    let _ = write!(out, "<path fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" d=\"");
    for (i, s) in seconds.iter().enumerate() {
        let (px, py) = point(s);
        let joined = i > 0 && seconds[i - 1].at_s + 1 == s.at_s;
        let _ = write!(out, "{}{px:.1} {py:.1}", if joined { " L" } else { " M" });
    }
    out.push_str("\"/>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(at_s: u64, state: State, answered: u64) -> Second {
        Second {
            at_s,
            state,
            load: 0.5,
            served: Served {
                answered,
                ..Served::default()
            },
        }
    }

    #[test]
    fn ceilings_are_round() {
        let got: Vec<u64> = [0, 1, 2, 3, 7, 10, 11, 499, 501].map(nice_ceiling).to_vec();
        assert_eq!(got, [1, 1, 2, 5, 10, 10, 20, 500, 1000]);
    }

    #[test]
    fn bands_follow_the_state_and_gaps_lift_the_pen() {
        let now = 1_000_000;
        let seconds = [
            second(now - 4, State::Ready, 10),
            second(now - 3, State::Ready, 30),
            second(now - 2, State::Draining, 0),
            // now - 1 missing
            second(now, State::Draining, 0),
        ];
        let svg = svg(&seconds, now, 600);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("class=\"band\"").count(), 3);
        assert_eq!(svg.matches("<title>draining</title>").count(), 2);
        // The rate axis tops at the next round figure above the peak.
        assert!(svg.contains(">50/s</text>"));
        // Five lines, each restarting after the gap.
        assert_eq!(svg.matches("<path").count(), 5);
        assert_eq!(svg.matches(" M").count(), 10);
    }

    #[test]
    fn an_empty_history_says_so() {
        assert!(svg(&[], 1000, 600).contains("no history yet"));
    }
}
