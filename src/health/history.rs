//! What the status page shows of the past: a per-second history of each
//! service (state, load, and how its queries were served) over the last ten
//! minutes, and its last state changes with their causes.
//!
//! Both are fixed rings in the shared table, written by the service's
//! leader only and read by the status handler in any worker. An entry is a
//! few atomic words; its tag word is cleared before and set after the
//! others are written, so a reader that sees the same non-zero tag before
//! and after reading the rest has a whole entry (a sequence lock). Nothing
//! here allocates on the query path: queries only bump the counters.

use super::shared::{Counters, Source, NOT_CONFIGURED};
use super::state::{Reading, State};
use std::sync::atomic::{fence, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release};

/// Seconds of history kept per service.
pub const HISTORY_SECONDS: usize = 600;
/// State changes kept per service.
pub const CHANGES: usize = 16;

/// How queries were served: totals, or the part of one second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Served {
    pub answered: u64,
    pub delayed: u64,
    /// REFUSED sent because the service was silent.
    pub refused: u64,
    /// Every reason together (shed, silent, queue full, rate limited, ...).
    pub dropped: u64,
}

impl Served {
    pub fn of(c: &Counters) -> Served {
        Served {
            answered: c.answered.load(Relaxed),
            delayed: c.delayed.load(Relaxed),
            refused: c.refused_by_policy.load(Relaxed),
            dropped: c.dropped.iter().map(|d| d.load(Relaxed)).sum(),
        }
    }

    /// What happened since `earlier` (counters reset with their slot, so a
    /// total below `earlier` counts from zero).
    fn since(self, earlier: Served) -> Served {
        let d = |now: u64, then: u64| if now >= then { now - then } else { now };
        Served {
            answered: d(self.answered, earlier.answered),
            delayed: d(self.delayed, earlier.delayed),
            refused: d(self.refused, earlier.refused),
            dropped: d(self.dropped, earlier.dropped),
        }
    }
}

/// One second of a service's history.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Second {
    /// Unix time, in seconds.
    pub at_s: u64,
    pub state: State,
    pub load: f64,
    pub served: Served,
}

/// Two counts in one word, each saturating at `u32::MAX`.
fn pair(high: u64, low: u64) -> u64 {
    high.min(u32::MAX.into()) << 32 | low.min(u32::MAX.into())
}

fn unpair(word: u64) -> (u64, u64) {
    (word >> 32, word & 0xffff_ffff)
}

fn milli(load: f64) -> u64 {
    (load.clamp(0.0, 4.0) * 1000.0).round() as u64
}

/// A tag word that is zero while its entry is being written.
#[repr(C)]
struct Tagged<const N: usize> {
    tag: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> Tagged<N> {
    fn write(&self, tag: u64, words: [u64; N]) {
        debug_assert_ne!(tag, 0);
        self.tag.store(0, Relaxed);
        fence(Release);
        for (slot, word) in self.words.iter().zip(words) {
            slot.store(word, Relaxed);
        }
        self.tag.store(tag, Release);
    }

    /// The entry's tag and words, or `None` when it is empty or was being
    /// written while it was read.
    fn read(&self) -> Option<(u64, [u64; N])> {
        let tag = self.tag.load(Acquire);
        let words = std::array::from_fn(|i| self.words[i].load(Relaxed));
        fence(Acquire);
        (tag != 0 && self.tag.load(Relaxed) == tag).then_some((tag, words))
    }

    fn clear(&self) {
        self.tag.store(0, Relaxed);
        for word in &self.words {
            word.store(0, Relaxed);
        }
    }
}

/// The per-second ring: second `s` goes to entry `s % HISTORY_SECONDS`, so
/// a reader needs no head pointer and old seconds fall out by themselves.
/// Tag: the second (high 32 bits), the state and the load in thousandths.
#[repr(C)]
pub struct History {
    entries: [Tagged<2>; HISTORY_SECONDS],
}

impl History {
    /// Writes one second (the leader only).
    pub fn record(&self, s: &Second) {
        let tag = (s.at_s & 0xffff_ffff) << 32 | (s.state as u64) << 16 | milli(s.load);
        let served = s.served;
        self.entries[s.at_s as usize % HISTORY_SECONDS].write(
            tag,
            [
                pair(served.answered, served.delayed),
                pair(served.refused, served.dropped),
            ],
        );
    }

    /// The recorded seconds in the `seconds` up to `now_s`, oldest first.
    pub fn last(&self, now_s: u64, seconds: u64) -> Vec<Second> {
        let mut out: Vec<Second> = self
            .entries
            .iter()
            .filter_map(Tagged::read)
            .map(|(tag, [w0, w1])| {
                let (answered, delayed) = unpair(w0);
                let (refused, dropped) = unpair(w1);
                Second {
                    at_s: tag >> 32,
                    state: State::from_u32((tag >> 16 & 0xff) as u32),
                    load: (tag & 0xffff) as f64 / 1000.0,
                    served: Served {
                        answered,
                        delayed,
                        refused,
                        dropped,
                    },
                }
            })
            .filter(|s| s.at_s <= now_s && s.at_s + seconds > now_s)
            .collect();
        out.sort_by_key(|s| s.at_s);
        out
    }

    pub(super) fn clear(&self) {
        self.entries.iter().for_each(Tagged::clear);
    }
}

/// Leader bookkeeping for the history: the second last recorded and the
/// totals then, so that each entry holds one second's worth.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct HistoryCursor {
    last_s: u64,
    totals: Served,
}

impl HistoryCursor {
    /// Called on every evaluation; records an entry on the first one in
    /// each wall-clock second, with what was served since the previous one.
    pub fn tick(&mut self, history: &History, now_ms: u64, state: State, load: f64, totals: Served) {
        let now_s = now_ms / 1000;
        if now_s == self.last_s {
            return;
        }
        history.record(&Second {
            at_s: now_s,
            state,
            load,
            served: totals.since(self.totals),
        });
        self.last_s = now_s;
        self.totals = totals;
    }
}

/// Why a service is in its state: the source and reading that decided it
/// (`None` for a ready service without load sources).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cause {
    pub source: Option<Source>,
    pub reading: Option<Reading>,
}

impl Cause {
    pub const NONE: Cause = Cause {
        source: None,
        reading: None,
    };

    /// The source whose reading puts a service in `state`, as the
    /// evaluator combines them (see `Evaluator::update`): the one that
    /// drains, is down or is starting, else the highest load.
    pub fn of(state: State, readings: &[(Source, Reading)]) -> Cause {
        let first = |wanted: Reading| readings.iter().find(|(_, r)| *r == wanted);
        let decisive = match state {
            State::Draining => first(Reading::Drain),
            State::Down => first(Reading::Down),
            State::Starting => first(Reading::Starting),
            State::Ready | State::Shedding => readings
                .iter()
                .filter(|(_, r)| matches!(r, Reading::Load(_)))
                .max_by(|a, b| load_of(a.1).total_cmp(&load_of(b.1))),
        };
        decisive.map_or(Cause::NONE, |&(source, reading)| Cause {
            source: Some(source),
            reading: Some(reading),
        })
    }
}

fn load_of(r: Reading) -> f64 {
    match r {
        Reading::Load(l) => l,
        _ => 0.0,
    }
}

/// One state change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Unix time, in milliseconds.
    pub at_ms: u64,
    /// `None` for the first evaluation of the service.
    pub from: Option<State>,
    pub to: State,
    /// The load then.
    pub load: f64,
    pub cause: Cause,
}

const NO_STATE: u64 = 0xf;
const NO_SOURCE: u64 = 0xf;

impl Change {
    /// from (4 bits), to (4), source (4), load in thousandths (12), reading (32).
    fn pack(&self) -> u64 {
        let from = self.from.map_or(NO_STATE, |s| s as u64);
        let source = self.cause.source.map_or(NO_SOURCE, |s| s as u64);
        let reading = self.cause.reading.map_or(NOT_CONFIGURED, Reading::to_i32) as u32 as u64;
        from << 60 | (self.to as u64) << 56 | source << 52 | milli(self.load).min(0xfff) << 32 | reading
    }

    fn unpack(at_ms: u64, word: u64) -> Change {
        let from = word >> 60;
        let source = word >> 52 & 0xf;
        Change {
            at_ms,
            from: (from != NO_STATE).then(|| State::from_u32(from as u32)),
            to: State::from_u32((word >> 56 & 0xf) as u32),
            load: (word >> 32 & 0xfff) as f64 / 1000.0,
            cause: Cause {
                source: Source::ALL.get(source as usize).copied(),
                reading: Reading::from_i32(word as u32 as i32),
            },
        }
    }
}

/// The last `CHANGES` state changes: change number n goes to entry
/// n % CHANGES, tagged n + 1.
#[repr(C)]
pub struct Changes {
    posted: AtomicU64,
    entries: [Tagged<2>; CHANGES],
}

impl Changes {
    /// Adds a change (the leader only).
    pub fn post(&self, change: &Change) {
        let n = self.posted.load(Relaxed);
        self.entries[n as usize % CHANGES].write(n + 1, [change.at_ms, change.pack()]);
        self.posted.store(n + 1, Release);
    }

    /// The changes still held, newest first.
    pub fn newest_first(&self) -> Vec<Change> {
        let posted = self.posted.load(Acquire);
        (posted.saturating_sub(CHANGES as u64)..posted)
            .rev()
            .filter_map(|n| match self.entries[n as usize % CHANGES].read() {
                // Another tag: overwritten by a newer change meanwhile.
                Some((tag, [at_ms, word])) if tag == n + 1 => Some(Change::unpack(at_ms, word)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn clear(&self) {
        self.posted.store(0, Relaxed);
        self.entries.iter().for_each(Tagged::clear);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Zeroed memory, as the shared zone gives it.
    fn zeroed<T>() -> Box<T> {
        // SAFETY: History and Changes are atomics only; all-zero is valid.
        unsafe { Box::new_zeroed().assume_init() }
    }

    fn served(answered: u64) -> Served {
        Served {
            answered,
            delayed: 2,
            refused: 3,
            dropped: 4,
        }
    }

    #[test]
    fn the_history_keeps_the_last_ten_minutes_oldest_first() {
        let h: Box<History> = zeroed();
        let t0 = 1_800_000_000;
        for i in 0..700 {
            h.record(&Second {
                at_s: t0 + i,
                state: State::Ready,
                load: 0.25,
                served: served(i),
            });
        }
        let now = t0 + 699;
        let all = h.last(now, 600);
        assert_eq!(all.len(), 600);
        assert_eq!(all[0].at_s, now - 599);
        assert_eq!(all[599].at_s, now);
        assert_eq!(all[599].served, served(699));
        assert_eq!(all[0].load, 0.25);
        assert_eq!(h.last(now, 10).len(), 10);
        // Ten seconds later, with nothing recorded: only the older ones.
        assert_eq!(h.last(now + 10, 600).len(), 590);
        h.clear();
        assert!(h.last(now, 600).is_empty());
    }

    #[test]
    fn counts_saturate_rather_than_wrap() {
        let h: Box<History> = zeroed();
        let big = Served {
            answered: u64::MAX,
            delayed: 1 << 40,
            refused: 0,
            dropped: 7,
        };
        h.record(&Second {
            at_s: 100,
            state: State::Shedding,
            load: 0.9,
            served: big,
        });
        let s = h.last(100, 1)[0];
        assert_eq!(s.state, State::Shedding);
        assert_eq!(s.served.answered, u64::from(u32::MAX));
        assert_eq!(s.served.delayed, u64::from(u32::MAX));
        assert_eq!((s.served.refused, s.served.dropped), (0, 7));
    }

    #[test]
    fn a_half_written_entry_is_skipped() {
        let h: Box<History> = zeroed();
        h.record(&Second {
            at_s: 5,
            state: State::Ready,
            load: 0.0,
            served: served(1),
        });
        // The writer has cleared the tag and not yet set it.
        h.entries[5].tag.store(0, Relaxed);
        assert!(h.last(5, 600).is_empty());
    }

    #[test]
    fn the_cursor_records_each_second_once_with_its_own_counts() {
        let h: Box<History> = zeroed();
        let mut cursor = HistoryCursor::default();
        let total = |n| Served {
            answered: n,
            ..Served::default()
        };
        cursor.tick(&h, 10_000, State::Ready, 0.1, total(5));
        cursor.tick(&h, 10_250, State::Ready, 0.1, total(7));
        cursor.tick(&h, 10_500, State::Ready, 0.1, total(9));
        cursor.tick(&h, 11_000, State::Draining, 0.2, total(20));
        let seconds = h.last(11, 600);
        assert_eq!(seconds.len(), 2);
        assert_eq!(seconds[0].served.answered, 5);
        assert_eq!((seconds[1].state, seconds[1].served.answered), (State::Draining, 15));
        // Counters reset with a reused slot: counted from zero.
        cursor.tick(&h, 12_000, State::Ready, 0.0, total(3));
        assert_eq!(h.last(12, 1)[0].served.answered, 3);
    }

    #[test]
    fn the_cause_is_the_source_that_decided() {
        let readings = [
            (Source::Upstream, Reading::Load(0.3)),
            (Source::Probe, Reading::Load(0.7)),
            (Source::File, Reading::Drain),
        ];
        let cause = Cause::of(State::Draining, &readings);
        assert_eq!(cause.source, Some(Source::File));
        assert_eq!(cause.reading, Some(Reading::Drain));
        let cause = Cause::of(State::Shedding, &readings);
        assert_eq!(cause.source, Some(Source::Probe));
        assert_eq!(cause.reading, Some(Reading::Load(0.7)));
        let down = [(Source::Upstream, Reading::Load(0.3)), (Source::Probe, Reading::Down)];
        assert_eq!(Cause::of(State::Down, &down).source, Some(Source::Probe));
        assert_eq!(Cause::of(State::Ready, &[]), Cause::NONE);
    }

    #[test]
    fn changes_come_back_newest_first_and_old_ones_fall_out() {
        let c: Box<Changes> = zeroed();
        assert!(c.newest_first().is_empty());
        let change = |i: u64| Change {
            at_ms: 1_800_000_000_000 + i,
            from: if i == 0 { None } else { Some(State::Ready) },
            to: if i.is_multiple_of(2) {
                State::Draining
            } else {
                State::Shedding
            },
            load: 0.875,
            cause: Cause {
                source: Some(Source::File),
                reading: Some(if i.is_multiple_of(2) {
                    Reading::Drain
                } else {
                    Reading::Load(0.875)
                }),
            },
        };
        c.post(&change(0));
        assert_eq!(c.newest_first(), [change(0)]);
        for i in 1..20 {
            c.post(&change(i));
        }
        let held = c.newest_first();
        assert_eq!(held.len(), CHANGES);
        assert_eq!(held[0], change(19));
        assert_eq!(held[CHANGES - 1], change(20 - CHANGES as u64));
        let none = Change {
            cause: Cause::NONE,
            ..change(3)
        };
        c.post(&none);
        assert_eq!(c.newest_first()[0], none);
        c.clear();
        assert!(c.newest_first().is_empty());
    }
}
