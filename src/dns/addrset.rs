//! The addresses a host gives out when they do not come from its own
//! sockets: a set small enough to live in shared memory, where it came from,
//! the address file an operator (or a metadata script) writes, the state
//! file that keeps the set across restarts, and the local→public mapping for
//! hosts behind 1:1 NAT.
//!
//! Plain Rust and allocation-free on the query path (`AddressMap::apply`).

use std::net::IpAddr;
use thiserror::Error;

/// Most addresses a dynamic set holds: far more than one host has, and few
/// enough that every answer stays small.
pub const MAX_ADDRESSES: usize = 16;
/// Longest address file or state file read (a few lines of addresses).
pub const MAX_FILE_LEN: usize = 4096;

/// An ordered set of addresses (IPv4 and IPv6), at most `MAX_ADDRESSES`,
/// without duplicates. Order is kept: it is the order of the answers.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AddressSet {
    addrs: [IpAddr; MAX_ADDRESSES],
    len: u8,
}

impl Default for AddressSet {
    fn default() -> Self {
        AddressSet {
            addrs: [IpAddr::from([0u8; 4]); MAX_ADDRESSES],
            len: 0,
        }
    }
}

impl std::fmt::Debug for AddressSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The set is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl AddressSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of `addrs` (duplicates dropped); `Full` past `MAX_ADDRESSES`.
    pub fn from_slice(addrs: &[IpAddr]) -> Result<Self, Full> {
        let mut set = Self::new();
        for &a in addrs {
            set.insert(a)?;
        }
        Ok(set)
    }

    pub fn as_slice(&self) -> &[IpAddr] {
        &self.addrs[..usize::from(self.len)]
    }

    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.as_slice().iter().copied()
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.as_slice().contains(&addr)
    }

    /// Adds `addr` at the end unless it is there already.
    pub fn insert(&mut self, addr: IpAddr) -> Result<(), Full> {
        if self.contains(addr) {
            return Ok(());
        }
        if self.len() == MAX_ADDRESSES {
            return Err(Full);
        }
        self.addrs[self.len()] = addr;
        self.len += 1;
        Ok(())
    }

    /// Keeps the addresses for which `keep` is true, in order.
    pub fn retain(&mut self, keep: impl Fn(IpAddr) -> bool) {
        let mut kept = Self::new();
        for a in self.iter().filter(|a| keep(*a)) {
            // Cannot be full: it holds a subset of this set.
            let _ = kept.insert(a);
        }
        *self = kept;
    }

    pub fn has_v4(&self) -> bool {
        self.iter().any(|a| a.is_ipv4())
    }

    pub fn has_v6(&self) -> bool {
        self.iter().any(|a| a.is_ipv6())
    }

    /// Same addresses, whatever the order (an RRset is unordered).
    pub fn same_members(&self, other: &AddressSet) -> bool {
        self.len == other.len && self.iter().all(|a| other.contains(a))
    }

    /// A 64-bit digest of the ordered set (FNV-1a), never 0, to tell sets
    /// apart in shared memory without storing them twice.
    pub fn digest(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let mut eat = |b: u8| {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        };
        for a in self.iter() {
            match a {
                IpAddr::V4(v4) => {
                    eat(4);
                    v4.octets().into_iter().for_each(&mut eat);
                }
                IpAddr::V6(v6) => {
                    eat(6);
                    v6.octets().into_iter().for_each(&mut eat);
                }
            }
        }
        eat(self.len);
        h.max(1)
    }
}

impl std::fmt::Display for AddressSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        for (i, a) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Where the addresses given out came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Origin {
    /// `dns_address` (auto or a list).
    Config = 0,
    /// `dns_address_file`.
    File = 1,
    /// An RFC 2136 UPDATE.
    Update = 2,
}

impl Origin {
    pub fn from_u32(v: u32) -> Origin {
        match v {
            1 => Origin::File,
            2 => Origin::Update,
            _ => Origin::Config,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::File => "file",
            Origin::Update => "update",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AddressFileError {
    #[error("\"{0}\" is not an IPv4 or IPv6 address")]
    NotAnAddress(String),
    #[error("no address in the file")]
    Empty,
    #[error("more than {MAX_ADDRESSES} addresses")]
    TooMany,
    #[error("longer than {MAX_FILE_LEN} bytes")]
    TooLong,
}

/// Parses an address file: IPv4 and IPv6 addresses separated by white space
/// or commas, `#` to the end of a line is a comment. At least one address;
/// duplicates are dropped.
pub fn parse_address_file(bytes: &[u8]) -> Result<AddressSet, AddressFileError> {
    if bytes.len() > MAX_FILE_LEN {
        return Err(AddressFileError::TooLong);
    }
    let text = String::from_utf8_lossy(bytes);
    let mut set = AddressSet::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        for token in line
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
        {
            let addr: IpAddr = token
                .parse()
                .map_err(|_| AddressFileError::NotAnAddress(token.chars().take(64).collect()))?;
            set.insert(addr).map_err(|_| AddressFileError::TooMany)?;
        }
    }
    if set.is_empty() {
        return Err(AddressFileError::Empty);
    }
    Ok(set)
}

/// What the state file keeps: the addresses given out, where they came
/// from and when, and the last good content of the address file (so that a
/// file changed while nginx was stopped is noticed at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedState {
    pub origin: Origin,
    /// Seconds since the epoch.
    pub changed: u64,
    pub addresses: AddressSet,
    pub file: Option<AddressSet>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("line {line}: {reason}")]
pub struct StateError {
    pub line: usize,
    pub reason: String,
}

impl SavedState {
    /// The state file's text.
    pub fn encode(&self, service: &str) -> String {
        let mut out = format!(
            "# dns_service {service}: the addresses this host gives out, kept across restarts.\n\
             # Written by nginx; edit only while nginx is stopped.\n\
             origin {}\nchanged {}\naddresses",
            self.origin.name(),
            self.changed
        );
        for a in self.addresses.iter() {
            out.push_str(&format!(" {a}"));
        }
        out.push('\n');
        if let Some(file) = &self.file {
            out.push_str("file");
            for a in file.iter() {
                out.push_str(&format!(" {a}"));
            }
            out.push('\n');
        }
        out
    }

    /// Reads a state file; every line must be understood.
    pub fn parse(bytes: &[u8]) -> Result<SavedState, StateError> {
        if bytes.len() > MAX_FILE_LEN {
            return Err(StateError {
                line: 0,
                reason: "file too long".into(),
            });
        }
        let text = String::from_utf8_lossy(bytes);
        let (mut origin, mut changed, mut addresses, mut file) = (None, None, None, None);
        for (n, line) in text.lines().enumerate() {
            let bad = |reason: &str| StateError {
                line: n + 1,
                reason: reason.to_string(),
            };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let key = words.next().unwrap_or("");
            let set = |words: std::str::SplitWhitespace| -> Result<AddressSet, StateError> {
                let mut set = AddressSet::new();
                for w in words {
                    let a: IpAddr = w.parse().map_err(|_| bad("not an address"))?;
                    set.insert(a).map_err(|_| bad("too many addresses"))?;
                }
                Ok(set)
            };
            match key {
                "origin" => {
                    origin = Some(match words.next() {
                        Some("config") => Origin::Config,
                        Some("file") => Origin::File,
                        Some("update") => Origin::Update,
                        _ => return Err(bad("origin is config, file or update")),
                    })
                }
                "changed" => {
                    changed = Some(
                        words
                            .next()
                            .and_then(|w| w.parse::<u64>().ok())
                            .ok_or_else(|| bad("changed is seconds since the epoch"))?,
                    )
                }
                "addresses" => addresses = Some(set(words)?),
                "file" => file = Some(set(words)?),
                _ => return Err(bad("unknown line")),
            }
        }
        let missing = |what: &str| StateError {
            line: 0,
            reason: format!("no \"{what}\" line"),
        };
        Ok(SavedState {
            origin: origin.ok_or_else(|| missing("origin"))?,
            changed: changed.unwrap_or(0),
            addresses: addresses.ok_or_else(|| missing("addresses"))?,
            file,
        })
    }
}

/// What the address file says now, as the reader saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // read once a tick; a box would gain nothing
pub enum FileReading {
    Good(AddressSet),
    Missing,
    /// Unreadable, not a regular file, or not a valid address list.
    Bad(String),
}

/// The addresses a host should give out at start, from what is saved and
/// what the address file says: the most recent change wins, and an address
/// file whose content differs from the last one applied is a change made
/// while nginx was stopped. `None`: nothing dynamic yet (use `dns_address`).
pub fn initial_state(saved: Option<&SavedState>, file: &FileReading, now: u64) -> Option<SavedState> {
    match (saved, file) {
        (Some(saved), FileReading::Good(set)) if saved.file.as_ref() != Some(set) => Some(SavedState {
            origin: Origin::File,
            changed: now,
            addresses: *set,
            file: Some(*set),
        }),
        (Some(saved), _) => Some(*saved),
        (None, FileReading::Good(set)) => Some(SavedState {
            origin: Origin::File,
            changed: now,
            addresses: *set,
            file: Some(*set),
        }),
        (None, _) => None,
    }
}

/// `dns_address_map`: the public address each local address is reached
/// at (1:1 NAT), for answers made from the local address (`dns_address
/// auto`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressMap {
    pairs: Vec<(IpAddr, IpAddr)>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MapError {
    #[error("\"{0}\" is not local=public (two addresses)")]
    Pair(String),
    #[error("local address {0} is mapped twice")]
    Duplicate(IpAddr),
}

impl AddressMap {
    /// Parses `local=public` pairs.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<AddressMap, MapError> {
        let mut pairs: Vec<(IpAddr, IpAddr)> = Vec::new();
        for arg in args {
            let pair = arg
                .split_once('=')
                .and_then(|(l, p)| Some((l.parse::<IpAddr>().ok()?, p.parse::<IpAddr>().ok()?)))
                .ok_or_else(|| MapError::Pair(arg.to_string()))?;
            let local = canonical(pair.0);
            if pairs.iter().any(|(l, _)| *l == local) {
                return Err(MapError::Duplicate(local));
            }
            pairs.push((local, pair.1));
        }
        Ok(AddressMap { pairs })
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn pairs(&self) -> &[(IpAddr, IpAddr)] {
        &self.pairs
    }

    /// The address to answer with for a query that arrived on `local`: its
    /// public address when mapped, else `local` itself.
    pub fn apply(&self, local: Option<IpAddr>) -> Option<IpAddr> {
        let local = canonical(local?);
        Some(
            self.pairs
                .iter()
                .find(|(l, _)| *l == local)
                .map_or(local, |(_, public)| *public),
        )
    }
}

/// IPv4-mapped IPv6 addresses (a dual-stack socket's view of IPv4) as IPv4.
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sets_keep_order_and_drop_duplicates() {
        let mut s = AddressSet::from_slice(&[ip("192.0.2.2"), ip("2001:db8::1"), ip("192.0.2.2")]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.to_string(), "192.0.2.2 2001:db8::1");
        assert!(s.has_v4() && s.has_v6());
        s.retain(|a| a.is_ipv6());
        assert_eq!(s.as_slice(), &[ip("2001:db8::1")]);
        let many: Vec<IpAddr> = (0..=MAX_ADDRESSES as u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        assert_eq!(AddressSet::from_slice(&many), Err(Full));
        let a = AddressSet::from_slice(&[ip("192.0.2.1"), ip("192.0.2.2")]).unwrap();
        let b = AddressSet::from_slice(&[ip("192.0.2.2"), ip("192.0.2.1")]).unwrap();
        assert!(a.same_members(&b));
        assert_ne!(a, b);
        assert_ne!(a.digest(), b.digest());
        assert_eq!(AddressSet::new().to_string(), "(none)");
    }

    #[test]
    fn address_files() {
        let set =
            parse_address_file(b"# public addresses\n203.0.113.7\n2001:db8::7, 203.0.113.8 # second\n\n").unwrap();
        assert_eq!(set.to_string(), "203.0.113.7 2001:db8::7 203.0.113.8");
        assert_eq!(parse_address_file(b"  \n# nothing\n"), Err(AddressFileError::Empty));
        assert_eq!(
            parse_address_file(b"203.0.113.7 drain"),
            Err(AddressFileError::NotAnAddress("drain".into()))
        );
        let many: String = (0..20).map(|i| format!("10.0.0.{i}\n")).collect();
        assert_eq!(parse_address_file(many.as_bytes()), Err(AddressFileError::TooMany));
        assert_eq!(parse_address_file(&[b' '; 5000]), Err(AddressFileError::TooLong));
        // curl's output without a final newline is fine.
        assert_eq!(parse_address_file(b"203.0.113.9").unwrap().len(), 1);
    }

    #[test]
    fn state_files_round_trip() {
        let state = SavedState {
            origin: Origin::Update,
            changed: 1_700_000_000,
            addresses: AddressSet::from_slice(&[ip("192.0.2.7"), ip("2001:db8::7")]).unwrap(),
            file: Some(AddressSet::from_slice(&[ip("203.0.113.1")]).unwrap()),
        };
        let text = state.encode("www.example.com");
        assert!(text.starts_with("# dns_service www.example.com"));
        assert_eq!(SavedState::parse(text.as_bytes()).unwrap(), state);
        let empty = SavedState {
            addresses: AddressSet::new(),
            file: None,
            ..state
        };
        assert_eq!(SavedState::parse(empty.encode("x").as_bytes()).unwrap(), empty);
        assert!(SavedState::parse(b"origin update\n").is_err());
        assert!(SavedState::parse(b"origin other\naddresses\n").is_err());
        assert!(SavedState::parse(b"origin file\naddresses 1.2.3\n").is_err());
        assert_eq!(
            SavedState::parse(b"origin file\naddresses\nwhat 1\n").unwrap_err().line,
            3
        );
    }

    #[test]
    fn the_most_recent_change_wins_at_start() {
        let set = |s: &str| AddressSet::from_slice(&[ip(s)]).unwrap();
        let saved = SavedState {
            origin: Origin::Update,
            changed: 10,
            addresses: set("192.0.2.7"),
            file: Some(set("203.0.113.1")),
        };
        // The file is what was applied last: the update since then stands.
        let same_file = FileReading::Good(set("203.0.113.1"));
        assert_eq!(initial_state(Some(&saved), &same_file, 99), Some(saved));
        // The file changed while nginx was stopped: it wins.
        let new_file = FileReading::Good(set("203.0.113.2"));
        let state = initial_state(Some(&saved), &new_file, 99).unwrap();
        assert_eq!(
            (state.origin, state.addresses, state.changed),
            (Origin::File, set("203.0.113.2"), 99)
        );
        // A bad or missing file keeps the saved set.
        for file in [FileReading::Missing, FileReading::Bad("x".into())] {
            assert_eq!(initial_state(Some(&saved), &file, 99), Some(saved));
            assert_eq!(initial_state(None, &file, 99), None);
        }
        assert_eq!(initial_state(None, &new_file, 5).unwrap().origin, Origin::File);
    }

    #[test]
    fn the_map_gives_public_addresses() {
        let map = AddressMap::parse(["10.0.0.5=203.0.113.7", "fd00::5=2001:db8::7"]).unwrap();
        assert_eq!(map.apply(Some(ip("10.0.0.5"))), Some(ip("203.0.113.7")));
        assert_eq!(map.apply(Some(ip("::ffff:10.0.0.5"))), Some(ip("203.0.113.7")));
        assert_eq!(map.apply(Some(ip("fd00::5"))), Some(ip("2001:db8::7")));
        assert_eq!(map.apply(Some(ip("10.0.0.6"))), Some(ip("10.0.0.6")));
        assert_eq!(map.apply(None), None);
        assert!(matches!(AddressMap::parse(["10.0.0.5"]), Err(MapError::Pair(_))));
        assert!(matches!(AddressMap::parse(["10.0.0.5=x"]), Err(MapError::Pair(_))));
        assert_eq!(
            AddressMap::parse(["10.0.0.5=192.0.2.1", "10.0.0.5=192.0.2.2"]),
            Err(MapError::Duplicate(ip("10.0.0.5")))
        );
    }
}
