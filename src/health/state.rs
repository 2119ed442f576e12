//! Service states, combination of load and health readings (the worst one
//! wins), smoothing and hysteresis. Pure and clock-free: the caller passes
//! the time in milliseconds.

use super::policy::{Policy, Shape};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum State {
    /// Not yet ready: no answers until the application's first good probe.
    Starting = 0,
    Ready = 1,
    Shedding = 2,
    Down = 3,
    Draining = 4,
}

impl State {
    pub fn from_u32(v: u32) -> State {
        match v {
            1 => State::Ready,
            2 => State::Shedding,
            3 => State::Down,
            4 => State::Draining,
            _ => State::Starting,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Ready => "ready",
            State::Shedding => "shedding",
            State::Down => "down",
            State::Draining => "draining",
        }
    }

    pub const ALL: [State; 5] = [
        State::Starting,
        State::Ready,
        State::Shedding,
        State::Down,
        State::Draining,
    ];
}

/// One source's opinion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reading {
    /// Load figure from 0.0 (idle) to 1.0 (full).
    Load(f64),
    /// The application cannot serve.
    Down,
    /// An operator asked the host to take no new clients.
    Drain,
    /// Not known yet (a probe that has not passed once).
    Starting,
}

impl Reading {
    /// Encoding for shared memory: load in thousandths, or a negative code.
    pub fn to_i32(self) -> i32 {
        match self {
            Reading::Load(l) => (l.clamp(0.0, 1.0) * 1000.0).round() as i32,
            Reading::Down => -2,
            Reading::Drain => -3,
            Reading::Starting => -4,
        }
    }

    pub fn from_i32(v: i32) -> Option<Reading> {
        match v {
            0..=1000 => Some(Reading::Load(f64::from(v) / 1000.0)),
            -2 => Some(Reading::Down),
            -3 => Some(Reading::Drain),
            -4 => Some(Reading::Starting),
            _ => None,
        }
    }
}

/// Leader-owned evaluation state, kept in shared memory between ticks (and
/// across reloads), so it is plain data.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Evaluator {
    pub smoothed: f64,
    pub last_ms: u64,
    pub state: u32,
    /// Set while load is at or above the high mark (silent), with hysteresis.
    pub overloaded: u32,
    pub initialized: u32,
    /// Since when (ms) the load of a shedding host has been below where
    /// shedding stops; 0: it has not.
    pub calm_since_ms: u64,
}

/// Hysteresis margin on load thresholds: leave a state only when the load
/// has fallen this far below the threshold that entered it.
pub const LOAD_MARGIN: f64 = 0.05;

impl Default for Evaluator {
    fn default() -> Self {
        Evaluator {
            smoothed: 0.0,
            last_ms: 0,
            state: State::Starting as u32,
            overloaded: 0,
            initialized: 0,
            calm_since_ms: 0,
        }
    }
}

/// The outcome of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub state: State,
    pub load: f64,
    pub shape: Shape,
}

impl Evaluator {
    /// Folds the readings of all sources (worst wins) into a state and the
    /// shedding shape. Readings marked `sampled` (instantaneous measurements
    /// such as upstream connections or host pressure) are smoothed with time
    /// constant `window_ms` (0: none); the others are figures the
    /// application or an operator states, and apply at once.
    pub fn update(&mut self, now_ms: u64, readings: &[(Reading, bool)], window_ms: u64, policy: &Policy) -> Verdict {
        let (mut sampled, mut stated): (f64, f64) = (0.0, 0.0);
        let (mut down, mut drain, mut starting) = (false, false, false);
        for &(r, is_sampled) in readings {
            match r {
                Reading::Load(l) if is_sampled => sampled = sampled.max(l.clamp(0.0, 1.0)),
                Reading::Load(l) => stated = stated.max(l.clamp(0.0, 1.0)),
                Reading::Down => down = true,
                Reading::Drain => drain = true,
                Reading::Starting => starting = true,
            }
        }

        // Exponential smoothing of the sampled load.
        if self.initialized == 0 || window_ms == 0 {
            self.smoothed = sampled;
        } else {
            let dt = now_ms.saturating_sub(self.last_ms) as f64;
            let alpha = 1.0 - (-dt / window_ms as f64).exp();
            self.smoothed += alpha * (sampled - self.smoothed);
        }
        self.initialized = 1;
        self.last_ms = now_ms;
        let smoothed = self.smoothed.max(stated);

        let start = policy.shedding_starts_at();
        let was = State::from_u32(self.state);
        if smoothed >= policy.high {
            self.overloaded = 1;
        } else if smoothed < policy.high - LOAD_MARGIN {
            self.overloaded = 0;
        }
        // Shedding starts at once; it ends when the load has stayed below
        // the threshold (less the margin) for the policy's hold time.
        let shedding = if was != State::Shedding {
            smoothed >= start
        } else if smoothed >= start - LOAD_MARGIN {
            self.calm_since_ms = 0;
            true
        } else {
            if self.calm_since_ms == 0 {
                self.calm_since_ms = now_ms.max(1);
            }
            now_ms.saturating_sub(self.calm_since_ms) < policy.hold_ms
        };
        if !shedding {
            self.calm_since_ms = 0;
        }

        let state = if drain {
            State::Draining
        } else if down {
            State::Down
        } else if starting {
            State::Starting
        } else if shedding || self.overloaded == 1 {
            State::Shedding
        } else {
            State::Ready
        };
        self.state = state as u32;

        let shape = match state {
            State::Ready => Shape::default(),
            State::Shedding if self.overloaded == 1 => Shape::SILENT,
            State::Shedding => policy.shape(smoothed),
            State::Starting | State::Down | State::Draining => Shape::SILENT,
        };
        Verdict {
            state,
            load: smoothed,
            shape,
        }
    }
}

/// Active probe hysteresis: `rise` good results in a row bring a down
/// application up, `fall` bad ones take it down. At start the first good
/// result opens the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ProbeTracker {
    /// 0 = never passed (starting), 1 = up, 2 = down.
    pub status: u32,
    pub ok_streak: u32,
    pub fail_streak: u32,
    /// Last load reported by the application, in thousandths (-1: none).
    pub load_milli: i32,
}

impl ProbeTracker {
    pub fn record(&mut self, ok: bool, load: Option<f64>, rise: u32, fall: u32) {
        if ok {
            self.ok_streak = self.ok_streak.saturating_add(1);
            self.fail_streak = 0;
            self.load_milli = load.map_or(-1, |l| (l.clamp(0.0, 1.0) * 1000.0).round() as i32);
            if self.status == 0 || (self.status == 2 && self.ok_streak >= rise) {
                self.status = 1;
            }
        } else {
            self.fail_streak = self.fail_streak.saturating_add(1);
            self.ok_streak = 0;
            if self.status == 1 && self.fail_streak >= fall {
                self.status = 2;
            }
        }
    }

    pub fn reading(&self) -> Reading {
        match self.status {
            0 => Reading::Starting,
            2 => Reading::Down,
            _ if self.load_milli >= 0 => Reading::Load(f64::from(self.load_milli) / 1000.0),
            _ => Reading::Load(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_reading_wins() {
        let policy = Policy::default();
        let mut e = Evaluator::default();
        let v = e.update(
            0,
            &[(Reading::Load(0.1), true), (Reading::Load(0.3), false)],
            0,
            &policy,
        );
        assert_eq!((v.state, v.load), (State::Ready, 0.3));
        assert_eq!(
            e.update(1, &[(Reading::Load(0.1), true), (Reading::Down, false)], 0, &policy)
                .state,
            State::Down
        );
        assert_eq!(
            e.update(2, &[(Reading::Down, false), (Reading::Drain, false)], 0, &policy)
                .state,
            State::Draining
        );
        assert_eq!(
            e.update(
                3,
                &[(Reading::Starting, false), (Reading::Load(0.0), false)],
                0,
                &policy
            )
            .state,
            State::Starting
        );
        let v = e.update(4, &[(Reading::Load(0.9), true)], 0, &policy);
        assert_eq!(v.state, State::Shedding);
        assert_eq!(v.shape, policy.shape(0.9));
        assert!(e.update(5, &[(Reading::Load(1.0), true)], 0, &policy).shape.is_silent());
        assert!(e.update(6, &[], 0, &policy).shape == Shape::default());
    }

    #[test]
    fn smoothing_follows_a_step_gradually() {
        let policy = Policy::default();
        let mut e = Evaluator::default();
        e.update(0, &[(Reading::Load(0.0), true)], 1000, &policy);
        let v = e.update(1000, &[(Reading::Load(1.0), true)], 1000, &policy);
        assert!((v.load - 0.632).abs() < 0.01, "{}", v.load);
        let v = e.update(5000, &[(Reading::Load(1.0), true)], 1000, &policy);
        assert!(v.load > 0.98);
        // A stated figure applies at once, whatever the smoothed load.
        let v = e.update(
            5250,
            &[(Reading::Load(0.0), true), (Reading::Load(0.6), false)],
            1000,
            &policy,
        );
        assert!(v.load >= 0.6, "{}", v.load);
        let v = e.update(
            30000,
            &[(Reading::Load(0.0), true), (Reading::Load(0.6), false)],
            1000,
            &policy,
        );
        assert_eq!(v.load, 0.6);
    }

    #[test]
    fn hysteresis_on_thresholds() {
        let policy = Policy::default(); // shedding from 0.6, hold 30 s
        let mut e = Evaluator::default();
        let at = |e: &mut Evaluator, ms: u64, load: f64| e.update(ms, &[(Reading::Load(load), true)], 0, &policy);
        assert_eq!(at(&mut e, 0, 0.59).state, State::Ready);
        assert_eq!(at(&mut e, 1, 0.62).state, State::Shedding);
        // Back just under the start: still shedding (within the margin).
        assert_eq!(at(&mut e, 2, 0.57).state, State::Shedding);
        // Below the margin: the curve has no effect at once, but the state
        // waits out the hold time, and a load back at the threshold
        // restarts it.
        let v = at(&mut e, 1_000, 0.5);
        assert_eq!((v.state, v.shape), (State::Shedding, Shape::default()));
        assert_eq!(at(&mut e, 20_000, 0.5).state, State::Shedding);
        assert_eq!(at(&mut e, 20_500, 0.58).state, State::Shedding);
        assert_eq!(at(&mut e, 21_000, 0.5).state, State::Shedding);
        assert_eq!(at(&mut e, 50_999, 0.5).state, State::Shedding);
        assert_eq!(at(&mut e, 51_000, 0.5).state, State::Ready);
        // Ready starts at once again at the threshold.
        assert_eq!(at(&mut e, 51_001, 0.6).state, State::Shedding);
        // Silent above the high mark until the load is well below it.
        assert!(at(&mut e, 60_000, 0.99).shape.is_silent());
        assert!(at(&mut e, 60_001, 0.95).shape.is_silent());
        assert!(!at(&mut e, 60_002, 0.92).shape.is_silent());
    }

    #[test]
    fn no_hold_leaves_at_once() {
        let policy = Policy {
            hold_ms: 0,
            ..Policy::default()
        };
        let mut e = Evaluator::default();
        assert_eq!(
            e.update(0, &[(Reading::Load(0.7), true)], 0, &policy).state,
            State::Shedding
        );
        assert_eq!(
            e.update(1, &[(Reading::Load(0.5), true)], 0, &policy).state,
            State::Ready
        );
    }

    #[test]
    fn probe_rise_and_fall() {
        let mut p = ProbeTracker::default();
        assert_eq!(p.reading(), Reading::Starting);
        p.record(false, None, 3, 3);
        assert_eq!(p.reading(), Reading::Starting, "failures at start keep it starting");
        p.record(true, Some(0.25), 3, 3);
        assert_eq!(p.reading(), Reading::Load(0.25), "first good probe opens the gate");
        // Flapping good/bad never reaches 3 failures in a row.
        for i in 0..10 {
            p.record(i % 3 != 0, None, 3, 3);
            assert!(matches!(p.reading(), Reading::Load(_)));
        }
        for _ in 0..3 {
            p.record(false, None, 3, 3);
        }
        assert_eq!(p.reading(), Reading::Down);
        p.record(true, None, 3, 3);
        p.record(true, None, 3, 3);
        assert_eq!(p.reading(), Reading::Down, "needs 3 good in a row");
        p.record(true, None, 3, 3);
        assert_eq!(p.reading(), Reading::Load(0.0));
    }

    #[test]
    fn reading_encoding_round_trips() {
        for r in [
            Reading::Load(0.0),
            Reading::Load(0.5),
            Reading::Load(1.0),
            Reading::Down,
            Reading::Drain,
            Reading::Starting,
        ] {
            assert_eq!(Reading::from_i32(r.to_i32()), Some(r));
        }
        assert_eq!(Reading::from_i32(-1), None);
    }
}
