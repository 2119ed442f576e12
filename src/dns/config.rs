//! The validated description of one served zone, and parsers for the values
//! the configuration directives take. Everything here is plain Rust so that
//! every rule `nginx -t` enforces is unit-tested.

use super::name::{Name, NameError};
use std::net::IpAddr;
use thiserror::Error;

/// Shortest and longest TTL the `dns_ttl` directive accepts.
pub const MIN_TTL: u32 = 1;
pub const MAX_TTL: u32 = 7 * 86400;
/// Range of the advertised EDNS UDP payload size.
pub const MIN_EDNS_PAYLOAD: u16 = 512;
pub const MAX_EDNS_PAYLOAD: u16 = 4096;
pub const DEFAULT_EDNS_PAYLOAD: u16 = 1232;
pub const DEFAULT_TTL: u32 = 10;
/// Longest NSID payload accepted (an EDNS option may be larger, but an
/// identifier that long only wastes answer space).
pub const MAX_NSID_LEN: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid name \"{text}\": {reason}")]
    Name { text: String, reason: NameError },
    #[error("\"{0}\" is not an IPv4 or IPv6 address")]
    Address(String),
    #[error("\"auto\" cannot be combined with explicit addresses")]
    AutoWithAddresses,
    #[error("invalid time value \"{0}\"")]
    Time(String),
    #[error("TTL {0}s is out of range (1s to 7d)")]
    TtlRange(u64),
    #[error("jitter {jitter}s must be less than the TTL {ttl}s")]
    Jitter { ttl: u32, jitter: u32 },
    #[error("invalid parameter \"{0}\"")]
    Parameter(String),
    #[error("payload size \"{0}\" is out of range (512 to 4096)")]
    Payload(String),
    #[error("invalid NSID \"{0}\" (off, hostname, text, or hex:<hex digits>, at most 128 octets)")]
    Nsid(String),
    #[error("name server \"{0}\" is inside the service zone; its address must be glue in the parent zone, so it must be a name outside \"{1}\"")]
    NameServerInZone(String, String),
    #[error("name server \"{0}\" is listed twice")]
    DuplicateNameServer(String),
    #[error("no name servers: \"dns_nameservers\" is required with \"dns_service\"")]
    NoNameServers,
    #[error("answers would exceed the 65535-octet DNS message limit; list fewer addresses")]
    TooLarge,
    #[error("invalid DNSSEC signing setting: {0}")]
    Signing(String),
}

/// Where apex A/AAAA answers come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    /// The local address each query arrived on.
    Auto,
    /// A fixed list (IPv4 and/or IPv6).
    List(Vec<IpAddr>),
}

/// Everything needed to build the answer templates of one zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneConfig {
    pub apex: Name,
    pub nameservers: Vec<Name>,
    pub addresses: Addresses,
    pub ttl: u32,
    pub ttl_jitter: u32,
    /// SOA RNAME; `hostmaster.<apex>` when not given.
    pub soa_contact: Option<Name>,
    pub soa_refresh: u32,
    pub soa_retry: u32,
    pub soa_expire: u32,
    pub soa_minimum: u32,
    pub edns_payload: u16,
    pub nsid: Option<Vec<u8>>,
    /// Names below the apex get the apex's addresses (as a wildcard would)
    /// instead of NXDOMAIN.
    pub wildcard: bool,
}

impl ZoneConfig {
    pub fn new(apex: Name) -> ZoneConfig {
        ZoneConfig {
            apex,
            nameservers: Vec::new(),
            addresses: Addresses::Auto,
            ttl: DEFAULT_TTL,
            ttl_jitter: 0,
            soa_contact: None,
            soa_refresh: 3600,
            soa_retry: 600,
            soa_expire: 7 * 86400,
            soa_minimum: 10,
            edns_payload: DEFAULT_EDNS_PAYLOAD,
            nsid: None,
            wildcard: false,
        }
    }

    /// SOA RNAME in effect.
    pub fn contact(&self) -> Name {
        self.soa_contact.clone().unwrap_or_else(|| {
            Name::parse_host(&format!("hostmaster.{}", self.apex)).unwrap_or_else(|_| self.apex.clone())
        })
    }

    /// Checks the rules that involve several directives at once.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.nameservers.is_empty() {
            return Err(ConfigError::NoNameServers);
        }
        for (i, ns) in self.nameservers.iter().enumerate() {
            if ns.is_within(&self.apex) {
                return Err(ConfigError::NameServerInZone(ns.to_string(), self.apex.to_string()));
            }
            if self.nameservers[..i].contains(ns) {
                return Err(ConfigError::DuplicateNameServer(ns.to_string()));
            }
        }
        if self.ttl_jitter >= self.ttl {
            return Err(ConfigError::Jitter {
                ttl: self.ttl,
                jitter: self.ttl_jitter,
            });
        }
        Ok(())
    }

    /// SOA serial: a hash of the zone contents, so hosts with the same
    /// configuration agree on it and a content change changes it. Never 0.
    pub fn serial(&self) -> u32 {
        let mut hash = Fnv32::new();
        hash.write(self.apex.wire());
        for ns in &self.nameservers {
            hash.write(ns.wire());
        }
        match &self.addresses {
            Addresses::Auto => hash.write(b"auto"),
            Addresses::List(list) => {
                for addr in list {
                    hash.write(addr.to_string().as_bytes());
                    hash.write(b",");
                }
            }
        }
        hash.write(self.contact().wire());
        hash.write(&[u8::from(self.wildcard)]);
        for value in [
            self.ttl,
            self.soa_refresh,
            self.soa_retry,
            self.soa_expire,
            self.soa_minimum,
        ] {
            hash.write(&value.to_be_bytes());
        }
        hash.finish().max(1)
    }
}

struct Fnv32(u32);

impl Fnv32 {
    fn new() -> Self {
        Fnv32(0x811c_9dc5)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
    fn finish(&self) -> u32 {
        self.0
    }
}

pub fn parse_host(text: &str) -> Result<Name, ConfigError> {
    Name::parse_host(text).map_err(|reason| ConfigError::Name {
        text: text.to_string(),
        reason,
    })
}

pub fn parse_mailbox(text: &str) -> Result<Name, ConfigError> {
    Name::parse_mailbox(text).map_err(|reason| ConfigError::Name {
        text: text.to_string(),
        reason,
    })
}

/// `auto`, or a list of IPv4/IPv6 addresses.
pub fn parse_addresses<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Addresses, ConfigError> {
    let args: Vec<&str> = args.into_iter().collect();
    if args.contains(&"auto") {
        if args.len() > 1 {
            return Err(ConfigError::AutoWithAddresses);
        }
        return Ok(Addresses::Auto);
    }
    let mut list = Vec::with_capacity(args.len());
    for arg in args {
        let addr: IpAddr = arg.parse().map_err(|_| ConfigError::Address(arg.to_string()))?;
        if !list.contains(&addr) {
            list.push(addr);
        }
    }
    Ok(Addresses::List(list))
}

/// nginx-style time in seconds: `30`, `30s`, `5m`, `1h30m`, `2d`, `1w`.
pub fn parse_seconds(text: &str) -> Result<u64, ConfigError> {
    let bad = || ConfigError::Time(text.to_string());
    if text.is_empty() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d)));
            number = Some(n.ok_or_else(bad)?);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
    }
    if let Some(n) = number {
        total = total.checked_add(n).ok_or_else(bad)?;
    }
    if total > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok(total)
}

/// A time value used as a TTL or SOA timer (fits the 32-bit TTL field).
pub fn parse_timer(text: &str) -> Result<u32, ConfigError> {
    let secs = parse_seconds(text)?;
    u32::try_from(secs)
        .ok()
        .filter(|s| *s <= i32::MAX as u32)
        .ok_or_else(|| ConfigError::Time(text.to_string()))
}

/// `dns_ttl` value: 1s to 7d.
pub fn parse_ttl(text: &str) -> Result<u32, ConfigError> {
    let secs = parse_seconds(text)?;
    if !(u64::from(MIN_TTL)..=u64::from(MAX_TTL)).contains(&secs) {
        return Err(ConfigError::TtlRange(secs));
    }
    Ok(secs as u32)
}

pub fn parse_edns_payload(text: &str) -> Result<u16, ConfigError> {
    text.parse::<u16>()
        .ok()
        .filter(|n| (MIN_EDNS_PAYLOAD..=MAX_EDNS_PAYLOAD).contains(n))
        .ok_or_else(|| ConfigError::Payload(text.to_string()))
}

/// `dns_nsid` value; `hostname` is resolved by the caller (it needs the OS).
pub enum NsidSetting {
    Off,
    Hostname,
    Value(Vec<u8>),
}

pub fn parse_nsid(text: &str) -> Result<NsidSetting, ConfigError> {
    let bad = || ConfigError::Nsid(text.to_string());
    let value = match text {
        "off" => return Ok(NsidSetting::Off),
        "hostname" => return Ok(NsidSetting::Hostname),
        _ => match text.strip_prefix("hex:") {
            Some(hex) => decode_hex(hex).ok_or_else(bad)?,
            None => text.as_bytes().to_vec(),
        },
    };
    if value.is_empty() || value.len() > MAX_NSID_LEN {
        return Err(bad());
    }
    Ok(NsidSetting::Value(value))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() % 2 != 0 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits `key=value`, checking the key is one of `keys`.
pub fn split_parameter<'a>(arg: &'a str, keys: &[&str]) -> Result<(&'a str, &'a str), ConfigError> {
    match arg.split_once('=') {
        Some((key, value)) if keys.contains(&key) => Ok((key, value)),
        _ => Err(ConfigError::Parameter(arg.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_seconds("30").unwrap(), 30);
        assert_eq!(parse_seconds("30s").unwrap(), 30);
        assert_eq!(parse_seconds("1h30m").unwrap(), 5400);
        assert_eq!(parse_seconds("1w").unwrap(), 604800);
        assert!(parse_seconds("").is_err());
        assert!(parse_seconds("abc").is_err());
        assert!(parse_seconds("5x").is_err());
        assert!(parse_seconds("s").is_err());
        assert!(parse_seconds("99999999999999999999").is_err());
        assert_eq!(parse_ttl("10s").unwrap(), 10);
        assert_eq!(parse_ttl("0").unwrap_err(), ConfigError::TtlRange(0));
        assert_eq!(parse_ttl("8d").unwrap_err(), ConfigError::TtlRange(8 * 86400));
        assert_eq!(parse_ttl("7d").unwrap(), 604800);
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_addresses(["auto"]).unwrap(), Addresses::Auto);
        assert_eq!(
            parse_addresses(["auto", "192.0.2.1"]).unwrap_err(),
            ConfigError::AutoWithAddresses
        );
        assert!(matches!(parse_addresses(["300.1.1.1"]), Err(ConfigError::Address(_))));
        assert!(matches!(parse_addresses(["not-an-ip"]), Err(ConfigError::Address(_))));
        let list = parse_addresses(["192.0.2.1", "2001:db8::1", "192.0.2.1"]).unwrap();
        assert_eq!(
            list,
            Addresses::List(vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()])
        );
    }

    #[test]
    fn payload_and_nsid() {
        assert_eq!(parse_edns_payload("1232").unwrap(), 1232);
        assert!(parse_edns_payload("100").is_err());
        assert!(parse_edns_payload("70000").is_err());
        assert!(matches!(parse_nsid("off").unwrap(), NsidSetting::Off));
        assert!(matches!(parse_nsid("hostname").unwrap(), NsidSetting::Hostname));
        assert!(matches!(parse_nsid("hex:0aff").unwrap(), NsidSetting::Value(v) if v == [0x0a, 0xff]));
        assert!(parse_nsid("hex:zz").is_err());
        assert!(parse_nsid("hex:abc").is_err());
        assert!(parse_nsid("hex:").is_err());
        assert!(matches!(parse_nsid("host-1").unwrap(), NsidSetting::Value(v) if v == b"host-1"));
    }

    #[test]
    fn cross_checks_and_serial() {
        let mut zone = ZoneConfig::new(parse_host("www.example.com").unwrap());
        assert_eq!(zone.validate().unwrap_err(), ConfigError::NoNameServers);
        zone.nameservers.push(parse_host("ns1.www.example.com").unwrap());
        assert!(matches!(zone.validate(), Err(ConfigError::NameServerInZone(..))));
        zone.nameservers = vec![
            parse_host("ns1-www.example.com").unwrap(),
            parse_host("ns1-www.example.com").unwrap(),
        ];
        assert!(matches!(zone.validate(), Err(ConfigError::DuplicateNameServer(_))));
        zone.nameservers.pop();
        zone.validate().unwrap();
        zone.ttl_jitter = 10;
        assert!(matches!(zone.validate(), Err(ConfigError::Jitter { .. })));
        zone.ttl_jitter = 0;
        assert_eq!(zone.contact().to_string(), "hostmaster.www.example.com");
        let serial = zone.serial();
        assert_eq!(serial, zone.clone().serial());
        zone.nameservers.push(parse_host("ns2-www.example.com").unwrap());
        assert_ne!(serial, zone.serial());
    }
}
