//! The shedding policy: smoothed load → how long to delay an answer and how
//! likely to drop it, and the per-query decision drawn from that.

use thiserror::Error;

/// One point of the load curve: at `load`, answers wait `delay_ms` and are
/// dropped with probability `drop`. Between points the values are
/// interpolated linearly.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurvePoint {
    pub load: f64,
    pub delay_ms: u32,
    pub drop: f64,
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
}

/// The current shedding parameters, as published to every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Shape {
    pub delay_us: u32,
    /// Drop probability in parts per million; 1_000_000 = silent.
    pub drop_ppm: u32,
}

pub const PPM: u32 = 1_000_000;

impl Shape {
    pub const SILENT: Shape = Shape {
        delay_us: 0,
        drop_ppm: PPM,
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
    #[error("invalid curve point \"{0}\" (expected LOAD:DELAY or LOAD:DELAY:DROP, e.g. 0.8:50ms:0.1)")]
    Point(String),
    #[error("curve loads must increase from point to point")]
    Order,
    #[error("the high mark {0} must be above every curve point and at most 1")]
    High(f64),
}

impl Default for Policy {
    /// The default curve, chosen from how resolvers pick servers: a few
    /// milliseconds of delay already move BIND, PowerDNS Recursor and Knot
    /// Resolver away (each resolver prefers the host that looks nearest, so
    /// a delay acts as distance), while Unbound ignores delays under about
    /// 150 ms and drop rates under about 50%, so the top of the curve uses
    /// long delays and heavy drops before the host falls silent.
    fn default() -> Policy {
        Policy {
            curve: vec![
                CurvePoint {
                    load: 0.5,
                    delay_ms: 0,
                    drop: 0.0,
                },
                CurvePoint {
                    load: 0.6,
                    delay_ms: 2,
                    drop: 0.0,
                },
                CurvePoint {
                    load: 0.7,
                    delay_ms: 10,
                    drop: 0.0,
                },
                CurvePoint {
                    load: 0.8,
                    delay_ms: 50,
                    drop: 0.0,
                },
                CurvePoint {
                    load: 0.9,
                    delay_ms: 200,
                    drop: 0.25,
                },
                CurvePoint {
                    load: 0.95,
                    delay_ms: 400,
                    drop: 0.75,
                },
            ],
            high: 0.98,
            silence: Silence::Refuse,
        }
    }
}

impl Policy {
    /// Parses `LOAD:DELAY[:DROP]` points (DELAY like `50ms`, `1s`, `0`).
    pub fn parse_curve<'a>(points: impl IntoIterator<Item = &'a str>) -> Result<Vec<CurvePoint>, PolicyError> {
        let mut curve: Vec<CurvePoint> = Vec::new();
        for text in points {
            let bad = || PolicyError::Point(text.to_string());
            let mut parts = text.split(':');
            let load = parse_fraction(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let delay_ms = parse_ms(parts.next().ok_or_else(bad)?).ok_or_else(bad)?;
            let drop = match parts.next() {
                Some(d) => parse_fraction(d).ok_or_else(bad)?,
                None => 0.0,
            };
            if parts.next().is_some() {
                return Err(bad());
            }
            if curve.last().is_some_and(|last| last.load >= load) {
                return Err(PolicyError::Order);
            }
            curve.push(CurvePoint { load, delay_ms, drop });
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

    /// The load at which shedding starts (first point with an effect).
    pub fn shedding_starts_at(&self) -> f64 {
        let mut previous = 0.0;
        for p in &self.curve {
            if p.delay_ms > 0 || p.drop > 0.0 {
                return previous;
            }
            previous = p.load;
        }
        self.high
    }

    /// Delay and drop probability at `load`.
    pub fn shape(&self, load: f64) -> Shape {
        if load >= self.high {
            return Shape::SILENT;
        }
        let (delay_ms, drop) = match self.curve.iter().position(|p| p.load > load) {
            Some(0) => (0.0, 0.0),
            None => {
                let p = self.curve[self.curve.len() - 1];
                (f64::from(p.delay_ms), p.drop)
            }
            Some(i) => {
                let (a, b) = (self.curve[i - 1], self.curve[i]);
                let t = (load - a.load) / (b.load - a.load);
                let lerp = |x: f64, y: f64| x + (y - x) * t;
                (lerp(f64::from(a.delay_ms), f64::from(b.delay_ms)), lerp(a.drop, b.drop))
            }
        };
        Shape {
            delay_us: (delay_ms * 1000.0).round() as u32,
            drop_ppm: (drop * f64::from(PPM)).round() as u32,
        }
    }
}

/// Decides one query from the published shape; `random` is uniform in u32.
pub fn decide(shape: Shape, silence: Silence, random: u32) -> Action {
    if shape.is_silent() {
        return match silence {
            Silence::Drop => Action::Drop,
            Silence::Refuse => Action::Refuse,
        };
    }
    if shape.drop_ppm > 0 && random % PPM < shape.drop_ppm {
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

    #[test]
    fn default_curve_shape() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.shape(0.0), Shape::default());
        assert_eq!(p.shape(0.5), Shape::default());
        assert_eq!(
            p.shape(0.65),
            Shape {
                delay_us: 6000,
                drop_ppm: 0
            }
        );
        assert_eq!(
            p.shape(0.9),
            Shape {
                delay_us: 200_000,
                drop_ppm: 250_000
            }
        );
        assert_eq!(
            p.shape(0.97),
            Shape {
                delay_us: 400_000,
                drop_ppm: 750_000
            }
        );
        assert!(p.shape(0.98).is_silent());
        assert!(p.shape(1.0).is_silent());
        assert_eq!(p.shedding_starts_at(), 0.5);
    }

    #[test]
    fn parse_points() {
        let curve = Policy::parse_curve(["0.5:0", "0.8:50ms:0.1", "0.9:1s:0.5"]).unwrap();
        assert_eq!(
            curve[1],
            CurvePoint {
                load: 0.8,
                delay_ms: 50,
                drop: 0.1
            }
        );
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
        };
        assert_eq!(p.validate(), Err(PolicyError::High(0.85)));
    }

    #[test]
    fn decisions_follow_the_shape() {
        assert_eq!(decide(Shape::default(), Silence::Drop, 5), Action::Answer);
        assert_eq!(decide(Shape::SILENT, Silence::Refuse, 5), Action::Refuse);
        assert_eq!(decide(Shape::SILENT, Silence::Drop, 5), Action::Drop);
        assert_eq!(
            decide(
                Shape {
                    delay_us: 500,
                    drop_ppm: 0
                },
                Silence::Drop,
                5
            ),
            Action::Delay { ms: 1 }
        );
        let shape = Shape {
            delay_us: 20_000,
            drop_ppm: 250_000,
        };
        let mut dropped = 0;
        let mut x = 0x1234_5678u32;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            match decide(shape, Silence::Drop, x) {
                Action::Drop => dropped += 1,
                Action::Delay { ms } => assert_eq!(ms, 20),
                other => panic!("{other:?}"),
            }
        }
        assert!((24_000..26_000).contains(&dropped), "{dropped}");
    }
}
