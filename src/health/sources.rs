//! Turning raw inputs into readings: the load file, an HTTP probe's
//! response, host pressure and an upstream's peers. No I/O here.

use super::state::Reading;

/// What the load file says.
pub fn parse_load_file(content: &[u8]) -> Option<Reading> {
    let text = std::str::from_utf8(content).ok()?.trim();
    match text.to_ascii_lowercase().as_str() {
        "drain" => Some(Reading::Drain),
        "down" => Some(Reading::Down),
        "up" => Some(Reading::Load(0.0)),
        other => {
            let value: f64 = other.parse().ok()?;
            (value.is_finite() && value >= 0.0).then(|| Reading::Load(value.min(1.0)))
        }
    }
}

/// Result of reading the load file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FileRead {
    Content(Option<Reading>),
    /// The file does not exist.
    Missing,
    /// The file exists but could not be read.
    Unreadable,
}

/// Load file state between reads: a bad read keeps the last good reading
/// for `grace_ms`, then counts as down. A missing file means "no opinion"
/// unless `missing_is_bad`.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[repr(C)]
pub struct FileTracker {
    /// Last good reading (encoded, see `Reading::to_i32`; 0 = load 0).
    pub last_good: i32,
    /// When the current run of bad reads began (0: reads are good).
    pub bad_since_ms: u64,
}

/// The condition a load file read is in, for logging its start and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileCondition {
    Good,
    Missing,
    Unreadable,
    Unparseable,
}

impl FileTracker {
    pub fn update(
        &mut self,
        read: FileRead,
        now_ms: u64,
        grace_ms: u64,
        missing_is_bad: bool,
    ) -> (Reading, FileCondition) {
        let condition = match read {
            FileRead::Content(Some(reading)) => {
                self.last_good = reading.to_i32();
                self.bad_since_ms = 0;
                return (reading, FileCondition::Good);
            }
            FileRead::Missing if !missing_is_bad => {
                self.last_good = 0;
                self.bad_since_ms = 0;
                return (Reading::Load(0.0), FileCondition::Missing);
            }
            FileRead::Missing => FileCondition::Missing,
            FileRead::Unreadable => FileCondition::Unreadable,
            FileRead::Content(None) => FileCondition::Unparseable,
        };
        if self.bad_since_ms == 0 {
            self.bad_since_ms = now_ms.max(1);
        }
        if now_ms.saturating_sub(self.bad_since_ms) >= grace_ms {
            (Reading::Down, condition)
        } else {
            (
                Reading::from_i32(self.last_good).unwrap_or(Reading::Load(0.0)),
                condition,
            )
        }
    }
}

/// Outcome of an HTTP probe response.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProbeVerdict {
    Healthy {
        load: Option<f64>,
    },
    /// A complete response that says unhealthy (non-2xx) or is garbage.
    Unhealthy,
    /// More bytes are needed to decide.
    Incomplete,
}

/// Where an HTTP probe finds the application's load figure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadIn {
    Nowhere,
    /// A response header (name compared case-insensitively).
    Header(String),
    /// The first token of the body.
    Body,
}

/// Judges an HTTP/1.x response read so far. `complete` says the peer
/// closed the connection (or the read limit was reached), so the body is
/// whole.
pub fn judge_http_response(response: &[u8], load_in: &LoadIn, complete: bool) -> ProbeVerdict {
    let Some(head_end) = find(response, b"\r\n\r\n") else {
        return if complete {
            ProbeVerdict::Unhealthy
        } else {
            ProbeVerdict::Incomplete
        };
    };
    let head = &response[..head_end];
    let Ok(head) = std::str::from_utf8(head) else {
        return ProbeVerdict::Unhealthy;
    };
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return ProbeVerdict::Unhealthy;
    };
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return ProbeVerdict::Unhealthy;
    }
    let Ok(code) = code.parse::<u16>() else {
        return ProbeVerdict::Unhealthy;
    };
    if !(200..300).contains(&code) {
        return ProbeVerdict::Unhealthy;
    }
    let load = match load_in {
        LoadIn::Nowhere => None,
        LoadIn::Header(name) => lines
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| parse_load(v.trim())),
        LoadIn::Body => {
            if !complete {
                return ProbeVerdict::Incomplete;
            }
            let body = &response[head_end + 4..];
            std::str::from_utf8(body)
                .ok()
                .and_then(|b| b.split_whitespace().next())
                .and_then(parse_load)
        }
    };
    if load_in != &LoadIn::Nowhere && load.is_none() {
        // A healthy status with a missing or garbled load figure: healthy,
        // load unknown (counts as 0); the status code decides health.
        return ProbeVerdict::Healthy { load: None };
    }
    ProbeVerdict::Healthy { load }
}

fn parse_load(text: &str) -> Option<f64> {
    let v: f64 = text.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| v.min(1.0))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// CPU pressure from `/proc/pressure/cpu`: the `some avg10` share, 0–1.
pub fn parse_psi(content: &str) -> Option<f64> {
    let line = content.lines().find(|l| l.starts_with("some "))?;
    let avg10 = line.split_whitespace().find_map(|f| f.strip_prefix("avg10="))?;
    let pct: f64 = avg10.parse().ok()?;
    Some((pct / 100.0).clamp(0.0, 1.0))
}

/// Load average per core from `/proc/loadavg` (1-minute figure), 0–1.
pub fn parse_loadavg(content: &str, cpus: usize) -> Option<f64> {
    let one: f64 = content.split_whitespace().next()?.parse().ok()?;
    Some((one / cpus.max(1) as f64).clamp(0.0, 1.0))
}

/// One upstream peer as the upstream module's shared state shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerState {
    pub conns: u64,
    /// `max_conns` of the peer (0: not set).
    pub max_conns: u64,
    pub down: bool,
    /// Failed out by `max_fails` within `fail_timeout`.
    pub failed: bool,
    pub backup: bool,
}

/// Load of an upstream: active connections over capacity across the usable
/// primary peers; as nginx does, the backup peers take over when no primary
/// is usable; down when no peer at all is usable. `capacity` is used for
/// peers without `max_conns`.
pub fn upstream_reading(peers: &[PeerState], capacity: Option<u64>) -> Reading {
    let usable_of = |backup: bool| -> Vec<&PeerState> {
        peers
            .iter()
            .filter(|p| p.backup == backup && !p.down && !p.failed)
            .collect()
    };
    let mut usable = usable_of(false);
    if usable.is_empty() {
        usable = usable_of(true);
    }
    if usable.is_empty() {
        return Reading::Down;
    }
    let (mut conns, mut cap) = (0u64, 0u64);
    for p in &usable {
        let peer_cap = if p.max_conns > 0 {
            p.max_conns
        } else {
            capacity.unwrap_or(0)
        };
        if peer_cap == 0 {
            continue;
        }
        conns += p.conns.min(peer_cap);
        cap += peer_cap;
    }
    if cap == 0 {
        return Reading::Load(0.0);
    }
    Reading::Load(conns as f64 / cap as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_file_words_and_figures() {
        assert_eq!(parse_load_file(b"0.5\n"), Some(Reading::Load(0.5)));
        assert_eq!(parse_load_file(b" DRAIN "), Some(Reading::Drain));
        assert_eq!(parse_load_file(b"down"), Some(Reading::Down));
        assert_eq!(parse_load_file(b"up"), Some(Reading::Load(0.0)));
        assert_eq!(parse_load_file(b"7"), Some(Reading::Load(1.0)));
        assert_eq!(parse_load_file(b"-1"), None);
        assert_eq!(parse_load_file(b"nan"), None);
        assert_eq!(parse_load_file(b"garbage"), None);
        assert_eq!(parse_load_file(b"\xff\xfe"), None);
    }

    #[test]
    fn file_grace_period() {
        let mut f = FileTracker::default();
        assert_eq!(
            f.update(FileRead::Missing, 100, 5000, false),
            (Reading::Load(0.0), FileCondition::Missing)
        );
        assert_eq!(
            f.update(FileRead::Content(Some(Reading::Load(0.4))), 200, 5000, false)
                .0,
            Reading::Load(0.4)
        );
        assert_eq!(
            f.update(FileRead::Content(None), 300, 5000, false),
            (Reading::Load(0.4), FileCondition::Unparseable)
        );
        assert_eq!(f.update(FileRead::Unreadable, 5000, 5000, false).0, Reading::Load(0.4));
        assert_eq!(f.update(FileRead::Unreadable, 5300, 5000, false).0, Reading::Down);
        assert_eq!(
            f.update(FileRead::Content(Some(Reading::Load(0.1))), 5400, 5000, false)
                .0,
            Reading::Load(0.1)
        );
        assert_eq!(f.update(FileRead::Missing, 6000, 1000, true).0, Reading::Load(0.1));
        assert_eq!(f.update(FileRead::Missing, 7000, 1000, true).0, Reading::Down);
    }

    #[test]
    fn http_responses() {
        let none = LoadIn::Nowhere;
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(
            judge_http_response(ok, &none, false),
            ProbeVerdict::Healthy { load: None }
        );
        assert_eq!(
            judge_http_response(b"HTTP/1.1 503 Busy\r\n\r\n", &none, false),
            ProbeVerdict::Unhealthy
        );
        assert_eq!(
            judge_http_response(b"HTTP/1.1 200 OK\r\nX-", &none, false),
            ProbeVerdict::Incomplete
        );
        assert_eq!(
            judge_http_response(b"HTTP/1.1 200 OK\r\nX-", &none, true),
            ProbeVerdict::Unhealthy
        );
        assert_eq!(
            judge_http_response(b"garbage\r\n\r\n", &none, false),
            ProbeVerdict::Unhealthy
        );
        assert_eq!(
            judge_http_response(b"HTTP/1.1 2000 OK\r\n\r\n", &none, false),
            ProbeVerdict::Unhealthy
        );
        let header = LoadIn::Header("x-load".into());
        let with = b"HTTP/1.0 204 No Content\r\nX-Load: 0.75\r\n\r\n";
        assert_eq!(
            judge_http_response(with, &header, false),
            ProbeVerdict::Healthy { load: Some(0.75) }
        );
        let body = b"HTTP/1.1 200 OK\r\n\r\n0.3\n";
        assert_eq!(
            judge_http_response(body, &LoadIn::Body, false),
            ProbeVerdict::Incomplete
        );
        assert_eq!(
            judge_http_response(body, &LoadIn::Body, true),
            ProbeVerdict::Healthy { load: Some(0.3) }
        );
    }

    #[test]
    fn host_pressure() {
        let psi = "some avg10=12.50 avg60=3.00 avg300=1.00 total=1\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi(psi), Some(0.125));
        assert_eq!(parse_psi("bogus"), None);
        assert_eq!(parse_loadavg("3.00 2.00 1.00 1/100 42", 4), Some(0.75));
        assert_eq!(parse_loadavg("9.00 2.00 1.00 1/100 42", 4), Some(1.0));
    }

    #[test]
    fn upstream_load() {
        let peer = |conns, max_conns| PeerState {
            conns,
            max_conns,
            down: false,
            failed: false,
            backup: false,
        };
        assert_eq!(upstream_reading(&[peer(256, 512)], None), Reading::Load(0.5));
        assert_eq!(upstream_reading(&[peer(10, 0)], Some(20)), Reading::Load(0.5));
        assert_eq!(upstream_reading(&[peer(10, 0)], None), Reading::Load(0.0));
        assert_eq!(
            upstream_reading(
                &[
                    peer(5, 10),
                    PeerState {
                        down: true,
                        ..peer(0, 10)
                    }
                ],
                None
            ),
            Reading::Load(0.5)
        );
        assert_eq!(
            upstream_reading(
                &[PeerState {
                    failed: true,
                    ..peer(0, 10)
                }],
                None
            ),
            Reading::Down
        );
        let backup = |conns, max_conns| PeerState {
            backup: true,
            ..peer(conns, max_conns)
        };
        let failed = PeerState {
            failed: true,
            ..peer(9, 10)
        };
        assert_eq!(
            upstream_reading(&[peer(1, 10), backup(9, 10)], None),
            Reading::Load(0.1),
            "backups are idle while a primary is usable"
        );
        assert_eq!(
            upstream_reading(&[failed, backup(3, 10), backup(5, 10)], None),
            Reading::Load(0.4),
            "with every primary failed, the backups carry the load"
        );
        assert_eq!(
            upstream_reading(
                &[
                    failed,
                    PeerState {
                        down: true,
                        ..backup(0, 10)
                    }
                ],
                None
            ),
            Reading::Down
        );
        assert_eq!(upstream_reading(&[], None), Reading::Down);
    }
}
