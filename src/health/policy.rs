//! The shedding policy: smoothed load → how long to delay an answer, how
//! likely to refuse it and how likely to drop it, and the per-query
//! decision drawn from that.

use thiserror::Error;

/// One point of the load curve: at `load`, queries are refused at once
/// with probability `refuse`, dropped with probability `drop`, and the rest
/// answered `delay_ms` late. Between points the values are interpolated
/// linearly. `refuse + drop` is at most 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub load: f64,
    pub delay_ms: u32,
    pub drop: f64,
    pub refuse: f64,
}

/// What a host does when it must not answer (down, draining, starting, or
/// load at or above the high mark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Silence {
    /// No response at all: the resolver times out and asks another host.
    Drop,
    /// A fast REFUSED: the resolver moves on at once.
    Refuse,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Sorted by load, strictly increasing.
    pub curve: Vec<CurvePoint>,
    /// At or above this load the host is silent.
    pub high: f64,
    pub silence: Silence,
    /// How long the load must stay below where shedding stops before the
    /// state returns to ready. The curve follows the load at once; this
    /// only keeps a load that hovers at the threshold from flapping the
    /// state (and the log lines, history and alerts that follow it).
    pub hold_ms: u64,
}

/// The current shedding parameters, as published to every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    pub delay_us: u32,
    /// Drop probability in parts per million; 1_000_000 = silent.
    pub drop_ppm: u32,
    /// Probability of a fast REFUSED, in parts per million.
    pub refuse_ppm: u32,
}

pub const PPM: u32 = 1_000_000;

impl Shape {
    pub const SILENT: Shape = Shape {
        delay_us: 0,
        drop_ppm: PPM,
        refuse_ppm: 0,
    };

    pub fn is_silent(&self) -> bool {
        self.drop_ppm >= PPM
    }
}

/// What to do with one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Answer,
    Delay { ms: u32 },
    Drop,
    Refuse,
}

#[derive(Debug, Error, PartialEq)]
pub enum PolicyError {
    #[error(
        "invalid curve point \"{0}\" (expected LOAD:DELAY[:DROP][:drop=P][:refuse=P], e.g. 0.8:50ms:0.1 or 0.9:20ms:refuse=0.3)"
    )]
    Point(String),
    #[error("curve point \"{0}\": drop and refuse together exceed 1")]
    Sum(String),
    #[error("curve loads must increase from point to point")]
    Order,
    #[error("the high mark {0} must be above every curve point and at most 1")]
    High(f64),
}

impl Default for Policy {
    /// The default curve, chosen from the closed-loop lab (docs/lab.md §7):
    /// delays from load 0.6 act as virtual distance over the spread of
    /// real distance gaps (2–50 ms), which moves BIND, PowerDNS Recursor
    /// and Knot Resolver a resolver at a time; from 0.7 a growing share of
    /// queries is refused at once, which moves Unbound (deaf to delays
    /// under ~125 ms) and Knot Resolver in proportion and costs clients no
    /// time, where silent drops cost them a resolver timeout. The top of
    /// the curve refuses nearly everything before the host falls silent.
    fn default() -> Policy {
        Policy {
            curve: vec![
                point(0.6, 2, 0.0, 0.0),
                point(0.7, 10, 0.0, 0.0),
                point(0.8, 50, 0.0, 0.3),
                point(0.9, 100, 0.0, 0.6),
                point(0.95, 200, 0.0, 0.9),
            ],
            high: 0.98,
            silence: Silence::Refuse,
            hold_ms: DEFAULT_HOLD_MS,
        }
    }
}

/// Default of `hold=`: a state change at most about once a minute when
/// the load hovers at the threshold.
pub const DEFAULT_HOLD_MS: u64 = 30_000;

/// A curve point, in the order the directive writes one.
pub fn point(load: f64, delay_ms: u32, drop: f64, refuse: f64) -> CurvePoint {
    CurvePoint {
        load,
        delay_ms,
        drop,
        refuse,
    }
}

impl Policy {
    /// Parses `LOAD:DELAY[:DROP][:drop=P][:refuse=P]` points (DELAY like
    /// `50ms`, `1s`, `0`): the old positional form `LOAD:DELAY:DROP` still
    /// works, and the named fields say which probability is which.
    pub fn parse_curve<'a>(points: impl IntoIterator<Item = &'a str>) -> Result<Vec<CurvePoint>, PolicyError> {
        let mut curve: Vec<CurvePoint> = Vec::new();
        for text in points {
            let bad = || PolicyError::Point(text.to_string());
            let mut parts = text.split(':');
            let load = parse_fraction(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let delay_ms = parse_ms(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let (mut drop, mut refuse) = (None, None);
            for (i, field) in parts.enumerate() {
                let (slot, value) = match field.split_once('=') {
                    Some(("drop", v)) => (&mut drop, v),
                    Some(("refuse", v)) => (&mut refuse, v),
                    // The old syntax: a bare third field is the drop probability.
                    None if i == 0 => (&mut drop, field),
                    _ => return Err(bad()),
                };
                if slot.is_some() {
                    return Err(bad());
                }
                *slot = Some(parse_fraction(value).ok_or_else(bad)?);
            }
            let (drop, refuse) = (drop.unwrap_or(0.0), refuse.unwrap_or(0.0));
            if drop + refuse > 1.0 + 1e-9 {
                return Err(PolicyError::Sum(text.to_string()));
            }
            if curve.last().is_some_and(|last| last.load >= load) {
                return Err(PolicyError::Order);
            }
            curve.push(point(load, delay_ms, drop, refuse));
        }
        if curve.is_empty() {
            return Err(PolicyError::Point(String::new()));
        }
        Ok(curve)
    }

    pub fn validate(&self) -> Result<(), PolicyError> {
        let last = self.curve.last().map_or(0.0, |p| p.load);
        if !(self.high > last && self.high <= 1.0) {
            return Err(PolicyError::High(self.high));
        }
        Ok(())
    }

    /// The load at which shedding starts: the point before the first point
    /// with an effect (the effect grows from there), or that point itself
    /// when it is the first (below the first point nothing happens).
    pub fn shedding_starts_at(&self) -> f64 {
        let mut previous = self.curve.first().map_or(self.high, |p| p.load);
        for p in &self.curve {
            if p.delay_ms > 0 || p.drop > 0.0 || p.refuse > 0.0 {
                return previous;
            }
            previous = p.load;
        }
        self.high
    }

    /// Delay, drop and refuse probabilities at `load`.
    pub fn shape(&self, load: f64) -> Shape {
        if load >= self.high {
            return Shape::SILENT;
        }
        let values = |p: &CurvePoint| [f64::from(p.delay_ms), p.drop, p.refuse];
        let [delay_ms, drop, refuse] = match self.curve.iter().position(|p| p.load > load) {
            Some(0) => [0.0; 3],
            None => values(&self.curve[self.curve.len() - 1]),
            Some(i) => {
                let (a, b) = (&self.curve[i - 1], &self.curve[i]);
                let t = (load - a.load) / (b.load - a.load);
                let (va, vb) = (values(a), values(b));
                [0, 1, 2].map(|k| va[k] + (vb[k] - va[k]) * t)
            }
        };
        let ppm = |p: f64| (p * f64::from(PPM)).round() as u32;
        Shape {
            delay_us: (delay_ms * 1000.0).round() as u32,
            drop_ppm: ppm(drop),
            refuse_ppm: ppm(refuse),
        }
    }
}

/// Decides one query from the published shape; `random` is uniform in u32.
///
/// One draw splits the queries into disjoint parts, so the curve's
/// probabilities are exactly the fractions that get each outcome: the
/// first `refuse` of the draws are refused, the next `drop` dropped, the
/// rest answered after the delay. A refusal is sent at once, never after
/// the delay: it is the actuator that moves a resolver without costing its
/// client time (a late REFUSED would cost the wait and move it no better),
/// and a drop costs the client a resolver timeout whatever comes first.
pub fn decide(shape: Shape, silence: Silence, random: u32) -> Action {
    if shape.is_silent() {
        return match silence {
            Silence::Drop => Action::Drop,
            Silence::Refuse => Action::Refuse,
        };
    }
    let draw = random % PPM;
    if draw < shape.refuse_ppm {
        return Action::Refuse;
    }
    if draw < shape.refuse_ppm.saturating_add(shape.drop_ppm) {
        return Action::Drop;
    }
    match shape.delay_us / 1000 {
        0 if shape.delay_us == 0 => Action::Answer,
        ms => Action::Delay { ms: ms.max(1) },
    }
}

fn parse_fraction(text: &str) -> Option<f64> {
    let value: f64 = text.parse().ok()?;
    (value.is_finite() && (0.0..=1.0).contains(&value)).then_some(value)
}

/// `50ms`, `2s`, `0` → milliseconds (at most 10 s: longer delays only make
/// resolvers retry).
pub fn parse_ms(text: &str) -> Option<u32> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else {
        (text, 1)
    };
    let n: u32 = number.parse().ok()?;
    n.checked_mul(scale).filter(|ms| *ms <= 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(delay_us: u32, drop_ppm: u32, refuse_ppm: u32) -> Shape {
        Shape {
            delay_us,
            drop_ppm,
            refuse_ppm,
        }
    }

    #[test]
    fn default_curve_shape() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.shape(0.0), Shape::default());
        assert_eq!(p.shape(0.59), Shape::default());
        assert_eq!(p.shape(0.6), shape(2000, 0, 0));
        assert_eq!(p.shape(0.65), shape(6000, 0, 0));
        // Refusals from 0.7, never drops.
        assert_eq!(p.shape(0.75), shape(30_000, 0, 150_000));
        assert_eq!(p.shape(0.9), shape(100_000, 0, 600_000));
        assert_eq!(p.shape(0.97), shape(200_000, 0, 900_000));
        assert!(p.shape(0.98).is_silent());
        assert!(p.shape(1.0).is_silent());
        assert_eq!(p.shedding_starts_at(), 0.6);
        assert_eq!(p.hold_ms, 30_000);
    }

    #[test]
    fn parse_points() {
        let curve = Policy::parse_curve(["0.5:0", "0.8:50ms:0.1", "0.9:1s:0.5"]).unwrap();
        assert_eq!(curve[1], point(0.8, 50, 0.1, 0.0));
        assert_eq!(curve[2].delay_ms, 1000);
        assert_eq!(Policy::parse_curve(["0.8:0", "0.5:0"]), Err(PolicyError::Order));
        assert!(Policy::parse_curve(["1.5:0"]).is_err());
        assert!(Policy::parse_curve(["0.5"]).is_err());
        assert!(Policy::parse_curve(["0.5:abc"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:2"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:0.1:x"]).is_err());
        let p = Policy {
            curve,
            high: 0.85,
            silence: Silence::Drop,
            hold_ms: DEFAULT_HOLD_MS,
        };
        assert_eq!(p.validate(), Err(PolicyError::High(0.85)));
    }

    #[test]
    fn parse_refuse_points() {
        let curve = Policy::parse_curve([
            "0.6:0:refuse=0.1",
            "0.7:10ms:0.2:refuse=0.3",
            "0.8:20ms:refuse=0.4:drop=0.1",
            "0.9:0:drop=0.5",
        ])
        .unwrap();
        assert_eq!(
            curve,
            [
                point(0.6, 0, 0.0, 0.1),
                point(0.7, 10, 0.2, 0.3),
                point(0.8, 20, 0.1, 0.4),
                point(0.9, 0, 0.5, 0.0)
            ]
        );
        // Only the third field may be a bare drop; each name once; known names.
        assert!(Policy::parse_curve(["0.5:0:refuse=0.1:0.2"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:0.1:drop=0.2"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:refuse=0.1:refuse=0.2"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:silence=0.1"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:refuse=1.5"]).is_err());
        assert!(Policy::parse_curve(["0.5:0:refuse="]).is_err());
        assert_eq!(
            Policy::parse_curve(["0.5:0:0.6:refuse=0.5"]),
            Err(PolicyError::Sum("0.5:0:0.6:refuse=0.5".into()))
        );
        assert!(Policy::parse_curve(["0.5:0:0.5:refuse=0.5"]).is_ok());
        // A curve that only refuses sheds from the point before its first refusal.
        let p = Policy {
            curve: Policy::parse_curve(["0.7:0", "0.8:0:refuse=0.5"]).unwrap(),
            high: 0.95,
            silence: Silence::Refuse,
            hold_ms: DEFAULT_HOLD_MS,
        };
        assert_eq!(p.shedding_starts_at(), 0.7);
        // A curve whose first point already delays sheds from that point,
        // not from load 0 (below it the host answers at once).
        let p = Policy {
            curve: Policy::parse_curve(["0.6:2ms", "0.8:20ms"]).unwrap(),
            high: 0.95,
            silence: Silence::Refuse,
            hold_ms: DEFAULT_HOLD_MS,
        };
        assert_eq!(p.shedding_starts_at(), 0.6);
        assert_eq!(p.shape(0.59), Shape::default());
    }

    #[test]
    fn refuse_probability_is_interpolated() {
        let p = Policy {
            curve: Policy::parse_curve(["0.5:0", "0.7:10ms:refuse=0.4", "0.9:30ms:0.2:refuse=0.8"]).unwrap(),
            high: 0.98,
            silence: Silence::Refuse,
            hold_ms: DEFAULT_HOLD_MS,
        };
        assert_eq!(p.shape(0.4), Shape::default());
        assert_eq!(p.shape(0.6), shape(5000, 0, 200_000));
        assert_eq!(p.shape(0.8), shape(20_000, 100_000, 600_000));
        // Flat after the last point, silent at the high mark.
        assert_eq!(p.shape(0.95), shape(30_000, 200_000, 800_000));
        assert_eq!(p.shape(0.98), Shape::SILENT);
    }

    /// Fractions of 100,000 decisions, drawn from a xorshift sequence.
    fn tally(shape: Shape) -> (u32, u32, u32) {
        let (mut refused, mut dropped, mut delayed) = (0, 0, 0);
        let mut x = 0x1234_5678u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match decide(shape, Silence::Drop, x) {
                Action::Refuse => refused += 1,
                Action::Drop => dropped += 1,
                Action::Delay { ms } => {
                    assert_eq!(ms, shape.delay_us / 1000);
                    delayed += 1
                }
                Action::Answer => panic!("answered at once despite a delay"),
            }
        }
        (refused, dropped, delayed)
    }

    #[test]
    fn decisions_follow_the_shape() {
        assert_eq!(decide(Shape::default(), Silence::Drop, 5), Action::Answer);
        assert_eq!(decide(Shape::SILENT, Silence::Refuse, 5), Action::Refuse);
        assert_eq!(decide(Shape::SILENT, Silence::Drop, 5), Action::Drop);
        assert_eq!(decide(shape(500, 0, 0), Silence::Drop, 5), Action::Delay { ms: 1 });
        let (refused, dropped, _) = tally(shape(20_000, 250_000, 0));
        assert_eq!(refused, 0);
        assert!((24_000..26_000).contains(&dropped), "{dropped}");
    }

    #[test]
    fn refusals_and_drops_are_disjoint_parts_of_one_draw() {
        let (refused, dropped, delayed) = tally(shape(20_000, 250_000, 500_000));
        assert!((49_000..51_000).contains(&refused), "{refused}");
        assert!((24_000..26_000).contains(&dropped), "{dropped}");
        assert!((24_000..26_000).contains(&delayed), "{delayed}");
        // A refusal is fast whatever the delay; refusing everything is not silence.
        assert_eq!(decide(shape(400_000, 0, PPM), Silence::Drop, 7), Action::Refuse);
        assert!(!shape(0, 0, PPM).is_silent());
        assert_eq!(decide(shape(0, 0, 300_000), Silence::Drop, 299_999), Action::Refuse);
        assert_eq!(decide(shape(0, 0, 300_000), Silence::Drop, 300_000), Action::Answer);
    }
}
