//! The addresses a service gives out, shared by all workers (one slot per
//! service in the shared table, next to its `ServiceSlot`).
//!
//! Writers — the worker that accepted an UPDATE, the tick leader that read
//! a changed address file, the master loading a configuration — take the
//! slot's writer lock, so that an UPDATE's prerequisites are evaluated
//! against the set it then replaces. Readers never wait: the set is
//! published under a sequence count (a seqlock: odd while being written),
//! and a reader that sees it change retries. Each publication gets a new
//! `version`; every worker rebuilds its answer templates when it sees one
//! it has not built (see the glue's `addresses`).
//!
//! The slot also holds the UPDATE counters and the state of pushing the
//! address to the parent zone (`PushState`), which only the tick leader
//! drives.

use super::shared::process_exists;
use crate::dns::addrset::{AddressSet, Origin, SavedState, MAX_ADDRESSES};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{
    fence, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// What became of UPDATE messages (and TSIG-signed queries), as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateResult {
    /// Applied: the addresses changed.
    Accepted = 0,
    /// Valid, but the addresses were already what it asked for.
    Unchanged,
    /// A prerequisite failed (YXDOMAIN, NXDOMAIN, YXRRSET, NXRRSET).
    Prerequisite,
    /// Not signed with an update key.
    Unsigned,
    /// Signed, but asks for what this server does not allow (REFUSED).
    Refused,
    /// For a zone this server does not serve (NOTAUTH), or names outside
    /// its zone (NOTZONE).
    OtherZone,
    Formerr,
    BadKey,
    BadSig,
    BadTime,
    /// Could not be applied now (the state file, the lock): SERVFAIL.
    Failed,
}

impl UpdateResult {
    pub const ALL: [UpdateResult; 11] = [
        UpdateResult::Accepted,
        UpdateResult::Unchanged,
        UpdateResult::Prerequisite,
        UpdateResult::Unsigned,
        UpdateResult::Refused,
        UpdateResult::OtherZone,
        UpdateResult::Formerr,
        UpdateResult::BadKey,
        UpdateResult::BadSig,
        UpdateResult::BadTime,
        UpdateResult::Failed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UpdateResult::Accepted => "accepted",
            UpdateResult::Unchanged => "unchanged",
            UpdateResult::Prerequisite => "prerequisite_failed",
            UpdateResult::Unsigned => "unsigned",
            UpdateResult::Refused => "refused",
            UpdateResult::OtherZone => "other_zone",
            UpdateResult::Formerr => "formerr",
            UpdateResult::BadKey => "badkey",
            UpdateResult::BadSig => "badsig",
            UpdateResult::BadTime => "badtime",
            UpdateResult::Failed => "failed",
        }
    }
}

/// An address set in shared memory: each address as two words (IPv4 in
/// the IPv4-mapped form), a bit per address for IPv4.
#[repr(C)]
#[derive(Default)]
struct SharedSet {
    count: AtomicU32,
    v4: AtomicU32,
    words: [AtomicU64; 2 * MAX_ADDRESSES],
}

impl SharedSet {
    fn store(&self, set: &AddressSet) {
        let mut v4 = 0u32;
        for (i, a) in set.iter().enumerate() {
            let bytes = match a {
                IpAddr::V4(x) => {
                    v4 |= 1 << i;
                    x.to_ipv6_mapped().octets()
                }
                IpAddr::V6(x) => x.octets(),
            };
            let (hi, lo) = bytes.split_at(8);
            self.words[2 * i].store(u64::from_be_bytes(hi.try_into().unwrap_or_default()), Relaxed);
            self.words[2 * i + 1].store(u64::from_be_bytes(lo.try_into().unwrap_or_default()), Relaxed);
        }
        self.v4.store(v4, Relaxed);
        self.count.store(set.len() as u32, Relaxed);
    }

    fn load(&self) -> AddressSet {
        let count = (self.count.load(Relaxed) as usize).min(MAX_ADDRESSES);
        let v4 = self.v4.load(Relaxed);
        let mut set = AddressSet::new();
        for i in 0..count {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&self.words[2 * i].load(Relaxed).to_be_bytes());
            bytes[8..].copy_from_slice(&self.words[2 * i + 1].load(Relaxed).to_be_bytes());
            let v6 = Ipv6Addr::from(bytes);
            let addr = match (v4 >> i & 1 == 1, v6.to_ipv4_mapped()) {
                (true, Some(x)) => IpAddr::V4(x),
                _ => IpAddr::V6(v6),
            };
            // A torn read may repeat an address; the caller retries anyway.
            let _ = set.insert(addr);
        }
        set
    }
}

/// The addresses as last published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    /// Counts publications (never 0 once published).
    pub version: u64,
    pub state: SavedState,
    /// The client an accepted UPDATE came from.
    pub by: Option<IpAddr>,
}

/// State of pushing the addresses to the parent zone's primary: driven by
/// the tick leader (whichever worker it is at the time), except `posted`,
/// where the worker that ran a push leaves its outcome.
#[repr(C)]
#[derive(Default)]
pub struct PushState {
    /// Digest of the set the parent has (the last successful push); 0: none.
    done: AtomicU64,
    /// Digest of the set being pushed (0: no push in flight), the set, and
    /// when the leader gives up waiting for its outcome.
    flight: AtomicU64,
    flight_set: SharedSet,
    flight_deadline_ms: AtomicU64,
    /// The outcome of the push in flight: the low 32 bits of its digest,
    /// then the outcome code; 0 while none is posted.
    posted: AtomicU64,
    /// Retries: when the next may start, and the wait after the next failure.
    next_attempt_ms: AtomicU64,
    backoff_ms: AtomicU64,
    /// Digest of the set last tried: a new set is pushed at once.
    tried: AtomicU64,
    /// The outcome last logged, so each is logged once.
    logged: AtomicU32,
    pub last_outcome: AtomicU32,
    pub attempts: AtomicU64,
    pub failures: AtomicU64,
    /// Seconds since the epoch of the last success.
    pub last_success: AtomicU64,
    /// Pushes in a row that got no response in time; from
    /// `TCP_AFTER_TIMEOUTS` on, every other attempt goes over TCP.
    timeouts: AtomicU32,
    /// Whether the push in flight starts over TCP (1) or UDP (0).
    flight_tcp: AtomicU32,
    /// Pushes that ended over TCP (started there, or moved there after a
    /// truncated UDP response).
    pub tcp_pushes: AtomicU64,
}

/// How a push ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    Ok,
    /// The parent answered with this response code.
    Rcode(u16),
    /// The parent's response carried this TSIG error.
    TsigError(u16),
    /// The response's signature did not check out.
    BadResponseSignature,
    /// No answer in time.
    Timeout,
    /// The message could not be sent or the socket failed.
    Network,
    /// The answer was not a response to our UPDATE.
    Garbled,
}

impl PushOutcome {
    pub fn code(self) -> u32 {
        match self {
            PushOutcome::Ok => 1,
            PushOutcome::Rcode(r) => 0x1_0000 | u32::from(r),
            PushOutcome::TsigError(e) => 0x2_0000 | u32::from(e),
            PushOutcome::BadResponseSignature => 0x3_0000,
            PushOutcome::Timeout => 0x4_0000,
            PushOutcome::Network => 0x5_0000,
            PushOutcome::Garbled => 0x6_0000,
        }
    }

    pub fn from_code(code: u32) -> Option<PushOutcome> {
        let low = (code & 0xffff) as u16;
        Some(match code >> 16 {
            0 if code == 1 => PushOutcome::Ok,
            1 => PushOutcome::Rcode(low),
            2 => PushOutcome::TsigError(low),
            3 => PushOutcome::BadResponseSignature,
            4 => PushOutcome::Timeout,
            5 => PushOutcome::Network,
            6 => PushOutcome::Garbled,
            _ => return None,
        })
    }
}

impl std::fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushOutcome::Ok => f.write_str("NOERROR"),
            PushOutcome::Rcode(r) => f.write_str(crate::dns::update::rcode_name(*r)),
            PushOutcome::TsigError(e) => write!(f, "TSIG error {}", crate::dns::tsig::error::name(*e)),
            PushOutcome::BadResponseSignature => f.write_str("a response whose TSIG signature does not check out"),
            PushOutcome::Timeout => f.write_str("no response in time"),
            PushOutcome::Network => f.write_str("a network error (nothing listening there, or unreachable)"),
            PushOutcome::Garbled => f.write_str("a garbled response"),
        }
    }
}

/// What a leader tick found about the push in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushFinished {
    pub outcome: PushOutcome,
    /// The set that was pushed.
    pub set: AddressSet,
    /// First time this outcome is seen in a row: log it.
    pub log: bool,
    /// When a failed push is tried again (milliseconds from now).
    pub retry_in_ms: Option<u64>,
    /// The exchange ended over TCP.
    pub tcp: bool,
}

/// Longest a push may take before the leader gives up on it (its worker
/// times out on its own sooner).
pub const PUSH_DEADLINE_MS: u64 = 5_000;
pub const FIRST_BACKOFF_MS: u64 = 1_000;
pub const MAX_BACKOFF_MS: u64 = 300_000;
/// After this many pushes in a row without a response, the next attempt
/// goes over TCP, and then every other one (so that a parent that only one
/// transport reaches is reached either way).
pub const TCP_AFTER_TIMEOUTS: u32 = 2;
/// Set in a posted outcome code when the exchange ended over TCP.
const POSTED_TCP: u32 = 0x8000_0000;

impl PushState {
    /// One tick of the leader, at `now_ms`, wanting the parent to have the
    /// set `want` (`None`: nothing to push). Ends the push in flight if its
    /// outcome is posted or its time is up, and says whether to start a
    /// push of `want` now (the caller then runs it and posts its outcome
    /// with `post`, under the set's digest).
    pub fn tick(&self, now_ms: u64, want: Option<&AddressSet>) -> (Option<PushFinished>, bool) {
        let mut finished = None;
        let flight = self.flight.load(Relaxed);
        if flight != 0 {
            let posted = self.posted.load(Acquire);
            let (outcome, tcp) = if posted != 0 && posted >> 32 == flight & 0xffff_ffff {
                let code = posted as u32;
                (
                    PushOutcome::from_code(code & !POSTED_TCP).unwrap_or(PushOutcome::Garbled),
                    code & POSTED_TCP != 0,
                )
            } else if now_ms >= self.flight_deadline_ms.load(Relaxed) {
                (PushOutcome::Timeout, self.flight_tcp.load(Relaxed) != 0)
            } else {
                return (None, false);
            };
            self.flight.store(0, Relaxed);
            self.posted.store(0, Relaxed);
            if tcp {
                self.tcp_pushes.fetch_add(1, Relaxed);
            }
            if outcome == PushOutcome::Timeout {
                self.timeouts.fetch_add(1, Relaxed);
            } else {
                self.timeouts.store(0, Relaxed);
            }
            self.last_outcome.store(outcome.code(), Relaxed);
            let log = self.logged.swap(outcome.code(), Relaxed) != outcome.code();
            let retry_in_ms = if outcome == PushOutcome::Ok {
                self.done.store(flight, Relaxed);
                self.backoff_ms.store(0, Relaxed);
                self.next_attempt_ms.store(0, Relaxed);
                None
            } else {
                self.failures.fetch_add(1, Relaxed);
                let wait = self.backoff_ms.load(Relaxed).max(FIRST_BACKOFF_MS / 2) * 2;
                let wait = wait.min(MAX_BACKOFF_MS);
                self.backoff_ms.store(wait, Relaxed);
                self.next_attempt_ms.store(now_ms + wait, Relaxed);
                Some(wait)
            };
            finished = Some(PushFinished {
                outcome,
                set: self.flight_set.load(),
                log,
                retry_in_ms,
                tcp,
            });
        }
        let Some(set) = want else { return (finished, false) };
        let want = set.digest();
        if want == self.done.load(Relaxed) {
            return (finished, false);
        }
        let fresh = want != self.tried.load(Relaxed);
        if !fresh && now_ms < self.next_attempt_ms.load(Relaxed) {
            return (finished, false);
        }
        if fresh {
            self.backoff_ms.store(0, Relaxed);
        }
        self.tried.store(want, Relaxed);
        self.flight_set.store(set);
        self.flight.store(want, Relaxed);
        self.flight_deadline_ms.store(now_ms + PUSH_DEADLINE_MS, Relaxed);
        let t = self.timeouts.load(Relaxed);
        let tcp = t >= TCP_AFTER_TIMEOUTS && (t - TCP_AFTER_TIMEOUTS).is_multiple_of(2);
        self.flight_tcp.store(u32::from(tcp), Relaxed);
        self.attempts.fetch_add(1, Relaxed);
        (finished, true)
    }

    /// Whether the push that `tick` just started is to go over TCP.
    pub fn flight_over_tcp(&self) -> bool {
        self.flight_tcp.load(Relaxed) != 0
    }

    /// The worker that ran the push of the set with `digest` reports how it
    /// ended (over UDP).
    pub fn post(&self, digest: u64, outcome: PushOutcome) {
        self.post_via(digest, outcome, false);
    }

    /// The same, saying whether the exchange ended over TCP.
    pub fn post_via(&self, digest: u64, outcome: PushOutcome, tcp: bool) {
        let code = outcome.code() | if tcp { POSTED_TCP } else { 0 };
        self.posted
            .store((digest & 0xffff_ffff) << 32 | u64::from(code), Release);
    }

    /// Whether the parent has the set with `digest` (as far as we know).
    pub fn is_done(&self, digest: u64) -> bool {
        self.done.load(Relaxed) == digest
    }

    pub fn in_flight(&self) -> bool {
        self.flight.load(Relaxed) != 0
    }
}

#[repr(C)]
#[derive(Default)]
pub struct AddressSlot {
    /// Odd while a writer is publishing.
    seq: AtomicU64,
    version: AtomicU64,
    origin: AtomicU32,
    has_file: AtomicU32,
    changed: AtomicU64,
    current: SharedSet,
    /// The last good content of the address file.
    file: SharedSet,
    /// The client of the UPDATE that made the current set (family 0: none).
    by_family: AtomicU32,
    by: [AtomicU64; 2],
    /// The pid of the process holding the writer lock (0: nobody).
    writer: AtomicU32,

    /// Bit set of address file conditions the leader logged (its own).
    pub file_conditions: AtomicU32,
    /// The version the leader last logged.
    pub logged_version: AtomicU64,
    /// UPDATE results, by `UpdateResult`.
    pub updates: [AtomicU64; UpdateResult::ALL.len()],
    /// TSIG-signed queries answered (nsupdate's SOA query).
    pub signed_queries: AtomicU64,
    /// When (seconds) a rejected UPDATE was last logged: at most one a second.
    pub rejection_logged: AtomicU64,
    pub push: PushState,
}

impl AddressSlot {
    /// The set as last published, or `None` if nothing was (or a writer
    /// keeps it changing: the caller keeps what it has).
    pub fn read(&self) -> Option<Published> {
        for _ in 0..1000 {
            let before = self.seq.load(Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let version = self.version.load(Relaxed);
            let published = Published {
                version,
                state: SavedState {
                    origin: Origin::from_u32(self.origin.load(Relaxed)),
                    changed: self.changed.load(Relaxed),
                    addresses: self.current.load(),
                    file: (self.has_file.load(Relaxed) == 1).then(|| self.file.load()),
                },
                by: self.load_by(),
            };
            fence(Acquire);
            if self.seq.load(Relaxed) == before {
                return (version != 0).then_some(published);
            }
        }
        None
    }

    /// The version last published (0: none), without reading the set.
    pub fn version(&self) -> u64 {
        self.version.load(Acquire)
    }

    fn load_by(&self) -> Option<IpAddr> {
        let words = [self.by[0].load(Relaxed), self.by[1].load(Relaxed)];
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&words[0].to_be_bytes());
        bytes[8..].copy_from_slice(&words[1].to_be_bytes());
        let v6 = Ipv6Addr::from(bytes);
        match self.by_family.load(Relaxed) {
            4 => v6.to_ipv4_mapped().map(IpAddr::V4),
            6 => Some(IpAddr::V6(v6)),
            _ => None,
        }
    }

    fn store_by(&self, by: Option<IpAddr>) {
        let (family, bytes) = match by {
            Some(IpAddr::V4(x)) => (4, x.to_ipv6_mapped().octets()),
            Some(IpAddr::V6(x)) => (6, x.octets()),
            None => (0, [0; 16]),
        };
        self.by[0].store(u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default()), Relaxed);
        self.by[1].store(u64::from_be_bytes(bytes[8..].try_into().unwrap_or_default()), Relaxed);
        self.by_family.store(family, Relaxed);
    }

    /// Takes the writer lock for process `pid` if it is free (or held by a
    /// process that no longer exists).
    pub fn try_write(&self, pid: u32) -> Option<Writer<'_>> {
        self.try_write_checking(pid, process_exists)
    }

    fn try_write_checking(&self, pid: u32, exists: impl Fn(u32) -> bool) -> Option<Writer<'_>> {
        let taken = match self.writer.compare_exchange(0, pid, Acquire, Relaxed) {
            Ok(_) => true,
            Err(holder) => {
                holder != pid && !exists(holder) && self.writer.compare_exchange(holder, pid, Acquire, Relaxed).is_ok()
            }
        };
        // Lazily: a `Writer` made and dropped here would free the lock.
        taken.then(|| Writer { slot: self, pid })
    }

    /// `try_write`, retrying for up to `tries` rounds (yielding the CPU in
    /// between): writers hold the lock for a file write at most.
    pub fn write(&self, pid: u32, tries: u32) -> Option<Writer<'_>> {
        for i in 0..tries {
            if let Some(w) = self.try_write(pid) {
                return Some(w);
            }
            if i + 1 < tries {
                std::thread::yield_now();
            }
        }
        None
    }

    /// Empties the slot for another service (see `Table::place`).
    pub fn reset(&self) {
        self.seq.store(0, Relaxed);
        self.version.store(0, Relaxed);
        self.origin.store(0, Relaxed);
        self.has_file.store(0, Relaxed);
        self.changed.store(0, Relaxed);
        self.current.store(&AddressSet::new());
        self.file.store(&AddressSet::new());
        self.store_by(None);
        self.writer.store(0, Relaxed);
        self.file_conditions.store(0, Relaxed);
        self.logged_version.store(0, Relaxed);
        for c in &self.updates {
            c.store(0, Relaxed);
        }
        self.signed_queries.store(0, Relaxed);
        self.rejection_logged.store(0, Relaxed);
        let p = &self.push;
        for w in [
            &p.done,
            &p.flight,
            &p.flight_deadline_ms,
            &p.posted,
            &p.next_attempt_ms,
            &p.backoff_ms,
            &p.tried,
            &p.attempts,
            &p.failures,
            &p.last_success,
        ] {
            w.store(0, Relaxed);
        }
        p.flight_set.store(&AddressSet::new());
        p.logged.store(0, Relaxed);
        p.last_outcome.store(0, Relaxed);
    }

    pub fn count(&self, result: UpdateResult) {
        self.updates[result as usize].fetch_add(1, Relaxed);
    }
}

/// The writer lock of a slot, until dropped.
#[must_use]
pub struct Writer<'a> {
    slot: &'a AddressSlot,
    pid: u32,
}

impl Writer<'_> {
    pub fn read(&self) -> Option<Published> {
        self.slot.read()
    }

    /// Publishes `state` (with the UPDATE client `by`); returns its version.
    pub fn publish(&self, state: &SavedState, by: Option<IpAddr>) -> u64 {
        let s = self.slot;
        // A writer that died mid-publication left the count odd: start from
        // the odd value either way.
        let odd = s.seq.load(Relaxed) | 1;
        s.seq.store(odd, Relaxed);
        fence(Release);
        s.origin.store(state.origin as u32, Relaxed);
        s.changed.store(state.changed, Relaxed);
        s.current.store(&state.addresses);
        s.file.store(&state.file.unwrap_or_default());
        s.has_file.store(u32::from(state.file.is_some()), Relaxed);
        s.store_by(by);
        let version = s.version.load(Relaxed) + 1;
        s.version.store(version, Relaxed);
        s.seq.store(odd + 1, Release);
        version
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        let _ = self.slot.writer.compare_exchange(self.pid, 0, Release, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn state(origin: Origin, addrs: &[&str]) -> SavedState {
        SavedState {
            origin,
            changed: 42,
            addresses: AddressSet::from_slice(&addrs.iter().map(|a| ip(a)).collect::<Vec<_>>()).unwrap(),
            file: None,
        }
    }

    #[test]
    fn publications_are_read_whole_and_counted() {
        let slot = AddressSlot::default();
        assert_eq!(slot.read(), None);
        let w = slot.try_write(1).unwrap();
        let s = state(Origin::Update, &["192.0.2.7", "2001:db8::7", "::ffff:192.0.2.8"]);
        assert_eq!(w.publish(&s, Some(ip("127.0.0.1"))), 1);
        let p = slot.read().unwrap();
        assert_eq!((p.version, p.state, p.by), (1, s, Some(ip("127.0.0.1"))));
        let with_file = SavedState {
            file: Some(s.addresses),
            ..state(Origin::File, &[])
        };
        assert_eq!(w.publish(&with_file, None), 2);
        assert_eq!(slot.read().unwrap().state, with_file);
        assert_eq!(slot.version(), 2);
        // A writer that died mid-publication leaves the count odd: readers
        // give up rather than spin, the next writer recovers.
        slot.seq.store(7, Relaxed);
        assert_eq!(slot.read(), None);
        assert_eq!(w.publish(&s, None), 3);
        assert_eq!(slot.read().unwrap().state, s);
        slot.reset();
        assert_eq!(slot.read(), None);
    }

    #[test]
    fn one_writer_at_a_time() {
        let slot = AddressSlot::default();
        let w = slot.try_write_checking(100, |_| true).unwrap();
        assert!(slot.try_write_checking(200, |_| true).is_none());
        // Not even the holder twice.
        assert!(slot.try_write_checking(100, |_| true).is_none());
        // A dead holder's lock is taken over.
        assert!(slot.try_write_checking(200, |pid| pid != 100).is_some());
        drop(w);
        let mine = slot.try_write(std::process::id()).unwrap();
        assert!(slot.write(std::process::id(), 3).is_none());
        drop(mine);
        assert!(slot.write(std::process::id(), 3).is_some());
    }

    #[test]
    fn pushes_retry_with_backoff_and_log_each_outcome_once() {
        let p = PushState::default();
        let one = AddressSet::from_slice(&[ip("192.0.2.1")]).unwrap();
        let two = AddressSet::from_slice(&[ip("192.0.2.2")]).unwrap();
        let three = AddressSet::from_slice(&[ip("192.0.2.3")]).unwrap();
        // Nothing to push.
        assert_eq!(p.tick(0, None), (None, false));
        // A set to push: start, then wait for the outcome.
        assert_eq!(p.tick(0, Some(&one)), (None, true));
        assert_eq!(p.tick(250, Some(&one)), (None, false));
        // A stale outcome (another digest) is not taken.
        p.post(0x5, PushOutcome::Ok);
        assert_eq!(p.tick(500, Some(&one)), (None, false));
        p.post(one.digest(), PushOutcome::Rcode(5));
        let (f, start) = p.tick(750, Some(&one));
        let f = f.unwrap();
        assert_eq!(
            (f.outcome, f.log, f.retry_in_ms, start),
            (PushOutcome::Rcode(5), true, Some(1000), false)
        );
        // Not before the backoff.
        assert_eq!(p.tick(1000, Some(&one)), (None, false));
        assert_eq!(p.tick(1750, Some(&one)), (None, true));
        // Times out: a second failure doubles the wait; another outcome is logged.
        let (f, _) = p.tick(1750 + PUSH_DEADLINE_MS, Some(&one));
        let f = f.unwrap();
        assert_eq!(
            (f.outcome, f.log, f.retry_in_ms),
            (PushOutcome::Timeout, true, Some(2000))
        );
        assert_eq!(p.tick(6750 + 2000, Some(&one)), (None, true));
        let (f, _) = p.tick(20_000, Some(&one));
        assert_eq!((f.unwrap().log, f.unwrap().retry_in_ms), (false, Some(4000)));
        // A new set goes out at once, backoff or not.
        assert_eq!(p.tick(20_001, Some(&two)), (None, true));
        p.post(two.digest(), PushOutcome::Ok);
        let (f, start) = p.tick(20_250, Some(&two));
        assert_eq!(
            (f.unwrap().outcome, f.unwrap().log, start),
            (PushOutcome::Ok, true, false)
        );
        assert!(p.is_done(two.digest()));
        assert_eq!(p.tick(20_500, Some(&two)), (None, false));
        assert_eq!((p.attempts.load(Relaxed), p.failures.load(Relaxed)), (4, 3));
        // The backoff stops growing.
        p.tick(30_000, Some(&three));
        p.backoff_ms.store(MAX_BACKOFF_MS - 1, Relaxed);
        let (f, _) = p.tick(40_000, Some(&three));
        assert_eq!(f.unwrap().retry_in_ms, Some(MAX_BACKOFF_MS));
        assert_eq!(p.tcp_pushes.load(Relaxed), 0);
        for o in [
            PushOutcome::Ok,
            PushOutcome::Rcode(9),
            PushOutcome::TsigError(16),
            PushOutcome::BadResponseSignature,
            PushOutcome::Timeout,
            PushOutcome::Network,
            PushOutcome::Garbled,
        ] {
            assert_eq!(PushOutcome::from_code(o.code()), Some(o));
        }
    }

    #[test]
    fn pushes_go_over_tcp_after_timeouts_every_other_time() {
        let p = PushState::default();
        let one = AddressSet::from_slice(&[ip("192.0.2.1")]).unwrap();
        let mut now = 0;
        let mut transports = Vec::new();
        // Every attempt times out: UDP, UDP, then TCP every other time.
        for _ in 0..6 {
            let (_, start) = p.tick(now, Some(&one));
            assert!(start);
            transports.push(if p.flight_over_tcp() { "tcp" } else { "udp" });
            now += PUSH_DEADLINE_MS;
            let (f, _) = p.tick(now, Some(&one));
            let f = f.unwrap();
            assert_eq!((f.outcome, f.tcp), (PushOutcome::Timeout, p.flight_over_tcp()));
            now += f.retry_in_ms.unwrap();
        }
        assert_eq!(transports, ["udp", "udp", "tcp", "udp", "tcp", "udp"]);
        assert_eq!(p.tcp_pushes.load(Relaxed), 2);
        // The seventh attempt goes over TCP; its response (REFUSED) ends the
        // run of timeouts: UDP again.
        assert!(p.tick(now, Some(&one)).1);
        assert!(p.flight_over_tcp());
        p.post_via(one.digest(), PushOutcome::Rcode(5), true);
        let (f, _) = p.tick(now + 10, Some(&one));
        assert_eq!((f.unwrap().outcome, f.unwrap().tcp), (PushOutcome::Rcode(5), true));
        assert_eq!(p.tcp_pushes.load(Relaxed), 3);
        now += 10 + f.unwrap().retry_in_ms.unwrap();
        assert!(p.tick(now, Some(&one)).1);
        assert!(!p.flight_over_tcp());
        // A truncated UDP response moved to TCP: posted as such.
        p.post_via(one.digest(), PushOutcome::Ok, true);
        let (f, _) = p.tick(now + 10, Some(&one));
        assert_eq!((f.unwrap().outcome, f.unwrap().tcp), (PushOutcome::Ok, true));
        assert!(p.is_done(one.digest()));
    }
}
