//! Load/health settings as the directives give them, parsed and checked
//! here so that every rule `nginx -t` enforces is unit-tested.

use super::policy::{Policy, PolicyError, Silence};
use super::sources::LoadIn;
use crate::dns::config::{parse_seconds, split_parameter, ConfigError};
use std::net::SocketAddr;
use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum SettingError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("\"{0}\" is not a probe URL (http://IP:PORT/PATH or tcp://IP:PORT; IPv6 in brackets)")]
    Url(String),
    #[error("\"{0}\" must be a number from {1} to {2}")]
    Range(String, u64, u64),
    #[error("the probe timeout must be shorter than its interval")]
    Timeout,
    #[error("load= is only for http:// probes")]
    LoadOnTcp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeTarget {
    Http {
        addr: SocketAddr,
        path: String,
        host: String,
    },
    Tcp {
        addr: SocketAddr,
    },
}

impl ProbeTarget {
    pub fn addr(&self) -> SocketAddr {
        match self {
            ProbeTarget::Http { addr, .. } | ProbeTarget::Tcp { addr } => *addr,
        }
    }

    /// The request an HTTP probe sends.
    pub fn request(&self) -> Vec<u8> {
        match self {
            ProbeTarget::Http { path, host, .. } => format!(
                "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: nginx-dns-service-probe\r\nConnection: close\r\n\r\n"
            )
            .into_bytes(),
            ProbeTarget::Tcp { .. } => Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ProbeSettings {
    pub target: ProbeTarget,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    pub load_in: LoadIn,
}

pub fn parse_probe(args: &[&str]) -> Result<ProbeSettings, SettingError> {
    let url = args[0];
    let bad_url = || SettingError::Url(url.to_string());
    let target = if let Some(rest) = url.strip_prefix("http://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddr = authority.parse().map_err(|_| bad_url())?;
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad_url());
        }
        ProbeTarget::Http {
            addr,
            path: path.to_string(),
            host: authority.to_string(),
        }
    } else if let Some(rest) = url.strip_prefix("tcp://") {
        ProbeTarget::Tcp {
            addr: rest.parse().map_err(|_| bad_url())?,
        }
    } else {
        return Err(bad_url());
    };
    let mut probe = ProbeSettings {
        target,
        interval_ms: 2000,
        timeout_ms: 1000,
        rise: 3,
        fall: 3,
        load_in: LoadIn::Nowhere,
    };
    for arg in &args[1..] {
        let (key, value) = split_parameter(arg, &["interval", "timeout", "rise", "fall", "load", "host"])?;
        match key {
            "interval" => probe.interval_ms = parse_ms_range(arg, value, 100, 3_600_000)?,
            "timeout" => probe.timeout_ms = parse_ms_range(arg, value, 10, 60_000)?,
            "rise" => probe.rise = parse_count(arg, value, 1, 100)? as u32,
            "fall" => probe.fall = parse_count(arg, value, 1, 100)? as u32,
            "host" => match &mut probe.target {
                ProbeTarget::Http { host, .. } if !value.is_empty() && value.bytes().all(|b| b > b' ' && b < 0x7f) => {
                    *host = value.to_string()
                }
                _ => return Err(ConfigError::Parameter(arg.to_string()).into()),
            },
            _ => {
                if matches!(probe.target, ProbeTarget::Tcp { .. }) {
                    return Err(SettingError::LoadOnTcp);
                }
                probe.load_in = match value.split_once(':') {
                    Some(("header", name))
                        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') =>
                    {
                        LoadIn::Header(name.to_string())
                    }
                    None if value == "body" => LoadIn::Body,
                    _ => return Err(ConfigError::Parameter(arg.to_string()).into()),
                };
            }
        }
    }
    if probe.timeout_ms >= probe.interval_ms {
        return Err(SettingError::Timeout);
    }
    Ok(probe)
}

/// A time in milliseconds: `500ms`, `2s`, `1m`.
pub fn parse_ms_value(text: &str) -> Option<u64> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok();
    }
    parse_seconds(text).ok().map(|s| s * 1000)
}

fn parse_ms_range(arg: &str, value: &str, min: u64, max: u64) -> Result<u64, SettingError> {
    parse_ms_value(value)
        .filter(|ms| (min..=max).contains(ms))
        .ok_or_else(|| SettingError::Range(arg.to_string(), min, max))
}

pub fn parse_count(arg: &str, value: &str, min: u64, max: u64) -> Result<u64, SettingError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| SettingError::Range(arg.to_string(), min, max))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSettings {
    pub path: String,
    pub grace_ms: u64,
    pub missing_is_bad: bool,
}

pub fn parse_file(args: &[&str]) -> Result<FileSettings, SettingError> {
    let mut file = FileSettings {
        path: args[0].to_string(),
        grace_ms: 10_000,
        missing_is_bad: false,
    };
    if file.path.is_empty() {
        return Err(ConfigError::Parameter(String::new()).into());
    }
    for arg in &args[1..] {
        match split_parameter(arg, &["grace", "missing"])? {
            ("grace", value) => file.grace_ms = parse_ms_range(arg, value, 0, 86_400_000)?,
            (_, "ok") => file.missing_is_bad = false,
            (_, "down") => file.missing_is_bad = true,
            _ => return Err(ConfigError::Parameter(arg.to_string()).into()),
        }
    }
    Ok(file)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostSource {
    Psi,
    LoadAverage,
}

pub fn parse_host_source(arg: &str) -> Result<HostSource, SettingError> {
    match arg {
        "psi" => Ok(HostSource::Psi),
        "loadavg" => Ok(HostSource::LoadAverage),
        _ => Err(ConfigError::Parameter(arg.to_string()).into()),
    }
}

/// `dns_shed POINT... [high=LOAD] [hold=TIME]`.
pub fn parse_shed(args: &[&str], silence: Silence) -> Result<Policy, SettingError> {
    let mut high = Policy::default().high;
    let mut hold_ms = Policy::default().hold_ms;
    let mut points = Vec::new();
    for arg in args {
        if let Some(value) = arg.strip_prefix("high=") {
            high = value
                .parse::<f64>()
                .ok()
                .filter(|h| h.is_finite())
                .ok_or_else(|| ConfigError::Parameter(arg.to_string()))?;
        } else if let Some(value) = arg.strip_prefix("hold=") {
            hold_ms = parse_hold(value).ok_or_else(|| ConfigError::Parameter(arg.to_string()))?;
        } else {
            points.push(*arg);
        }
    }
    let curve = if points.is_empty() {
        Policy::default().curve
    } else {
        Policy::parse_curve(points)?
    };
    let policy = Policy {
        curve,
        high,
        silence,
        hold_ms,
    };
    policy.validate()?;
    Ok(policy)
}

/// `hold=`: `30s`, `500ms`, `2m` or `0`, at most 10 minutes.
fn parse_hold(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else {
        (text, 1000)
    };
    let n: u64 = number.parse().ok()?;
    n.checked_mul(scale).filter(|ms| *ms <= 600_000)
}

pub fn parse_silence(arg: &str) -> Result<Silence, SettingError> {
    match arg {
        "drop" => Ok(Silence::Drop),
        "refuse" => Ok(Silence::Refuse),
        _ => Err(ConfigError::Parameter(arg.to_string()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes() {
        let p = parse_probe(&[
            "http://127.0.0.1:8080/health",
            "interval=1s",
            "timeout=300ms",
            "rise=2",
            "fall=4",
        ])
        .unwrap();
        assert_eq!(
            p.target,
            ProbeTarget::Http {
                addr: "127.0.0.1:8080".parse().unwrap(),
                path: "/health".into(),
                host: "127.0.0.1:8080".into()
            }
        );
        assert_eq!((p.interval_ms, p.timeout_ms, p.rise, p.fall), (1000, 300, 2, 4));
        let req = String::from_utf8(p.target.request()).unwrap();
        assert!(req.starts_with("GET /health HTTP/1.0\r\nHost: 127.0.0.1:8080\r\n"));
        let p = parse_probe(&["http://[::1]:80", "load=header:X-Load", "host=app.example"]).unwrap();
        assert_eq!(p.load_in, LoadIn::Header("X-Load".into()));
        assert!(
            matches!(p.target, ProbeTarget::Http { ref path, ref host, .. } if path == "/" && host == "app.example")
        );
        assert_eq!(
            parse_probe(&["http://127.0.0.1:80/", "load=body"]).unwrap().load_in,
            LoadIn::Body
        );
        assert!(matches!(
            parse_probe(&["tcp://127.0.0.1:5432"]).unwrap().target,
            ProbeTarget::Tcp { .. }
        ));
        assert!(matches!(
            parse_probe(&["http://localhost:80/"]),
            Err(SettingError::Url(_))
        ));
        assert!(matches!(
            parse_probe(&["ftp://127.0.0.1:21"]),
            Err(SettingError::Url(_))
        ));
        assert!(matches!(
            parse_probe(&["tcp://127.0.0.1:1", "load=body"]),
            Err(SettingError::LoadOnTcp)
        ));
        assert!(matches!(
            parse_probe(&["tcp://127.0.0.1:1", "rise=0"]),
            Err(SettingError::Range(..))
        ));
        assert_eq!(
            parse_probe(&["tcp://127.0.0.1:1", "interval=1s", "timeout=1s"]),
            Err(SettingError::Timeout)
        );
        assert!(parse_probe(&["tcp://127.0.0.1:1", "bogus=1"]).is_err());
    }

    #[test]
    fn files_hosts_and_curves() {
        let f = parse_file(&["/run/app.load", "grace=30s", "missing=down"]).unwrap();
        assert_eq!((f.grace_ms, f.missing_is_bad), (30_000, true));
        assert!(parse_file(&["/x", "missing=maybe"]).is_err());
        assert_eq!(parse_host_source("psi").unwrap(), HostSource::Psi);
        assert!(parse_host_source("cpu").is_err());
        let p = parse_shed(&["0.5:0", "0.9:100ms:0.5", "high=0.95"], Silence::Refuse).unwrap();
        assert_eq!((p.curve.len(), p.high, p.silence), (2, 0.95, Silence::Refuse));
        assert!(parse_shed(&["0.5:0", "high=0.4"], Silence::Drop).is_err());
        assert_eq!(p.hold_ms, 30_000);
        let hold = |arg: &str| parse_shed(&["0.5:0", "0.9:100ms", arg], Silence::Refuse).map(|p| p.hold_ms);
        assert_eq!(hold("hold=0").ok(), Some(0));
        assert_eq!(hold("hold=500ms").ok(), Some(500));
        assert_eq!(hold("hold=45s").ok(), Some(45_000));
        assert_eq!(hold("hold=2m").ok(), Some(120_000));
        assert_eq!(hold("hold=90").ok(), Some(90_000));
        assert!(hold("hold=11m").is_err());
        assert!(hold("hold=-1s").is_err());
        assert!(hold("hold=").is_err());
        assert_eq!(
            parse_shed(&["high=0.99"], Silence::Drop).unwrap().curve,
            Policy::default().curve
        );
        assert!(parse_silence("refuse").is_ok() && parse_silence("never").is_err());
        let p = parse_shed(
            &["0.5:0", "0.8:20ms:refuse=0.5", "0.9:50ms:0.2:refuse=0.6"],
            Silence::Drop,
        )
        .unwrap();
        assert_eq!((p.curve[1].refuse, p.curve[2].drop, p.curve[2].refuse), (0.5, 0.2, 0.6));
        assert!(matches!(
            parse_shed(&["0.5:0:0.7:refuse=0.7"], Silence::Drop),
            Err(SettingError::Policy(PolicyError::Sum(_)))
        ));
    }
}
