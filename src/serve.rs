//! The per-query decision, shared by every way a query arrives (the UDP
//! fast path, the UDP session path and TCP):
//!
//! ```text
//!   query ──► Zone::respond ──► rate limit ──► shedding policy ──► Outcome
//!             (the answer)      (UDP only)     (answer, delay,      Send / Delay / Nothing
//!                                               drop or refuse)
//!                 └──────────── counters in the shared slot ────────────┘
//! ```
//!
//! Plain Rust with no nginx symbols: the caller passes the settings, the
//! shared table and how many answers this worker already holds back, and
//! sends (or schedules) what the `Outcome` says. `Reason` says why, for the
//! debug log and the `$dns_action` variable.
//!
//! A signed zone with `dns_address auto` has signatures for the local
//! addresses known at start; a DNSSEC query that arrives on another one is
//! the only time a query changes the zone: its address RRset is signed
//! once, and the query answered again (`NewAddress` says what happened).

use crate::dns::zone::{peek_question, CookieStatus};
use crate::dns::{Answered, DnssecError, QueryContext, Transport, Zone};
use crate::dynamic::Dynamic;
use crate::health::policy::{decide, Action, Shape, Silence};
use crate::health::rrl::{self, Limit};
use crate::health::shared::{DropReason, ServiceSlot, Table};
use std::cell::RefCell;
use std::fmt::Display;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Largest UDP response: the largest EDNS payload `dns_edns_payload` allows.
pub const MAX_UDP_RESPONSE: usize = crate::dns::config::MAX_EDNS_PAYLOAD as usize;

/// Answers this worker holds back for a shedding delay, on every path and
/// for every service (bounded by `Settings::delay_queue`).
static HELD_BACK: AtomicUsize = AtomicUsize::new(0);

pub fn held_back() -> usize {
    HELD_BACK.load(Relaxed)
}

/// One more answer is held back.
pub fn hold() {
    HELD_BACK.fetch_add(1, Relaxed);
}

/// A held-back answer was sent or given up.
pub fn release() {
    let _ = HELD_BACK.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1));
}

/// `dns_rate_limit`: responses per second per client network, and every
/// how many limited responses a truncated reply is sent (0: never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub rate: u32,
    pub slip: u32,
}

/// What a service's queries are decided with, besides its zone.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Response rate limiting (`dns_rate_limit`), off when `None`.
    pub rate_limit: Option<RateLimit>,
    /// What a host that must not answer sends (`dns_silence`).
    pub silence: Silence,
    /// Most answers a worker holds back for a delay (`dns_delay_queue`).
    pub delay_queue: usize,
}

/// A service's place in the shared table.
#[derive(Clone, Copy)]
pub struct Shared<'a> {
    pub table: &'a Table,
    pub index: usize,
}

impl<'a> Shared<'a> {
    pub fn slot(&self) -> &'a ServiceSlot {
        &self.table.slots[self.index]
    }
}

/// What to do with the response written to the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Send the first `len` bytes now.
    Send(usize),
    /// Send the first `len` bytes after `ms` milliseconds.
    Delay(usize, u32),
    /// Send nothing.
    Nothing,
}

/// Why the outcome is what it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Answered at once (the service is ready, or has no shared state).
    Answered,
    /// An UPDATE was accepted: the caller has the worker apply the new
    /// addresses at once rather than on its next tick.
    Updated,
    /// Answered after the shedding delay.
    Delayed,
    /// Dropped by the shedding curve's drop probability.
    Shed,
    /// The service must not answer (down, draining, starting, at the high
    /// mark) and `dns_silence drop` says nothing is sent.
    Silent,
    /// The service must not answer and `dns_silence refuse` says REFUSED.
    Refused,
    /// Refused by the shedding curve's refuse probability.
    ShedRefused,
    /// Too many answers were already waiting out a delay in this worker.
    DelayQueueFull,
    /// Not a message that may be answered (a response, no header).
    Unanswerable,
    /// Over the client network's rate: nothing sent.
    RateLimited,
    /// Over the client network's rate: a truncated reply instead.
    Slipped,
    /// An UPDATE, or a query signed with an update key: answered before
    /// rate limiting and the shedding policy (see `dynamic`).
    Managed,
}

impl Reason {
    /// The `$dns_action` value.
    pub fn action(self) -> ActionTaken {
        match self {
            Reason::Answered | Reason::Slipped | Reason::Managed | Reason::Updated => ActionTaken::Answered,
            Reason::Delayed => ActionTaken::Delayed,
            Reason::Refused | Reason::ShedRefused => ActionTaken::Refused,
            Reason::Shed | Reason::Silent | Reason::DelayQueueFull | Reason::Unanswerable | Reason::RateLimited => {
                ActionTaken::Dropped
            }
        }
    }

    /// A few words for the debug log.
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Answered => "answered",
            Reason::Delayed => "delayed by the shedding curve",
            Reason::Shed => "dropped by the shedding curve",
            Reason::Silent => "dropped: the service is silent (dns_silence drop)",
            Reason::Refused => "refused: the service is silent (dns_silence refuse)",
            Reason::ShedRefused => "refused by the shedding curve",
            Reason::DelayQueueFull => "dropped: dns_delay_queue is full",
            Reason::Unanswerable => "dropped: not an answerable query",
            Reason::RateLimited => "dropped by dns_rate_limit",
            Reason::Slipped => "truncated by dns_rate_limit (slip)",
            Reason::Managed => "answered: an UPDATE or a TSIG-signed query (before the shedding policy)",
            Reason::Updated => "answered: an UPDATE that changed the addresses",
        }
    }
}

/// What the policy did with a query, as `$dns_action` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ActionTaken {
    /// No query yet.
    #[default]
    None = 0,
    Answered = 1,
    Delayed = 2,
    Dropped = 3,
    Refused = 4,
}

impl ActionTaken {
    pub fn name(self) -> Option<&'static str> {
        match self {
            ActionTaken::None => None,
            ActionTaken::Answered => Some("answered"),
            ActionTaken::Delayed => Some("delayed"),
            ActionTaken::Dropped => Some("dropped"),
            ActionTaken::Refused => Some("refused"),
        }
    }
}

/// A DNSSEC query arrived on a local address the signed zone had no
/// signatures for (`dns_address auto`): what signing for it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewAddress {
    /// Signed: this query and every later one on the address are answered.
    Signed(IpAddr),
    /// The table of signed addresses is full (its size): SERVFAIL.
    TableFull(IpAddr, usize),
    /// Signing failed: SERVFAIL.
    Failed(IpAddr),
}

/// A decided query: what to do, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub outcome: Outcome,
    pub reason: Reason,
    /// Set when the query made the zone sign for a new local address.
    pub new_address: Option<NewAddress>,
}

impl Served {
    /// The debug log line for this query of `service`, from `client`.
    pub fn log_line<'a>(&'a self, service: &'a Service<'_>, tcp: bool, client: Option<IpAddr>) -> impl Display + 'a {
        LogLine {
            served: self,
            zone: service.zone,
            shared: service.shared.map(|s| s.slot()),
            tcp,
            client,
        }
    }
}

struct LogLine<'a> {
    served: &'a Served,
    zone: &'a RefCell<Zone>,
    shared: Option<&'a ServiceSlot>,
    tcp: bool,
    client: Option<IpAddr>,
}

impl Display for LogLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = if self.tcp { "TCP" } else { "UDP" };
        match self.zone.try_borrow() {
            Ok(zone) => write!(f, "dns_service {}: {transport} query", zone.apex())?,
            Err(_) => write!(f, "dns_service: {transport} query")?,
        }
        if let Some(client) = self.client {
            write!(f, " from {client}")?;
        }
        write!(f, " {}", self.served.reason.describe())?;
        if let Outcome::Delay(_, ms) = self.served.outcome {
            write!(f, " ({ms} ms)")?;
        }
        if let Some(slot) = self.shared {
            let state = crate::health::state::State::from_u32(slot.state.load(Relaxed));
            let load = f64::from(slot.load_milli.load(Relaxed)) / 1000.0;
            write!(f, ", state {}, load {load:.3}", state.name())?;
        }
        Ok(())
    }
}

/// What the last query of a session was, for the `$dns_*` variables.
#[derive(Clone, Copy)]
pub struct LastQuery {
    pub qname: [u8; 255],
    pub qname_len: usize,
    pub qtype: Option<u16>,
    /// `None` when no response was sent.
    pub rcode: Option<u16>,
    pub action: ActionTaken,
    /// Service state and load when the query was decided.
    pub state: u32,
    pub load_milli: u32,
}

impl Default for LastQuery {
    fn default() -> Self {
        LastQuery {
            qname: [0; 255],
            qname_len: 0,
            qtype: None,
            rcode: None,
            action: ActionTaken::None,
            state: 0,
            load_milli: 0,
        }
    }
}

impl LastQuery {
    fn record(&mut self, msg: &[u8], answered: Option<Answered>, served: Served, rcode: Option<u16>) {
        let (qtype, qname_len) = match answered {
            Some(a) => (a.qtype, a.qname_len),
            None => match peek_question(msg) {
                Some((qtype, len)) => (Some(qtype), Some(len)),
                None => (None, None),
            },
        };
        self.qtype = qtype;
        // A name is only reported for a message that has one after its header.
        let available = msg.len().saturating_sub(12);
        self.qname_len = qname_len.unwrap_or(0).min(self.qname.len()).min(available);
        if self.qname_len > 0 {
            self.qname[..self.qname_len].copy_from_slice(&msg[12..12 + self.qname_len]);
        }
        self.action = served.reason.action();
        self.rcode = match served.outcome {
            Outcome::Nothing => None,
            _ => rcode,
        };
    }
}

/// One service as a query sees it.
#[derive(Clone, Copy)]
pub struct Service<'a> {
    /// The zone. Queries only read it, except to sign for a new local
    /// address (see `respond`); the worker's re-signing timer replaces its
    /// signatures between queries. No borrow outlives a call.
    pub zone: &'a RefCell<Zone>,
    pub settings: &'a Settings,
    /// `None` only when the shared table could not be set up.
    pub shared: Option<Shared<'a>>,
    /// Address file, UPDATE, local→public map (`None`: none configured).
    pub dynamic: Option<&'a Dynamic>,
}

impl Service<'_> {
    /// The largest response the zone can make (signed, if it is): the room
    /// a TCP answer needs.
    pub fn max_response_len(&self) -> usize {
        // Room for changed addresses and TSIG records too.
        let extra = self.dynamic.map_or(0, Dynamic::headroom);
        self.zone
            .try_borrow()
            .map_or(crate::dns::wire::MAX_MESSAGE_LEN, |zone| {
                zone.max_response_len() + extra
            })
    }

    /// Answers `msg` into `out` and applies rate limiting and the shedding
    /// policy. `waiting` is how many answers this worker already holds back
    /// for a delay. Counts everything in the shared slot; records the query
    /// in `last` when given.
    pub fn answer(
        &self,
        msg: &[u8],
        qctx: &QueryContext<'_>,
        out: &mut [u8],
        waiting: usize,
        last: Option<&mut LastQuery>,
    ) -> Served {
        // The public address for `auto` answers; UPDATEs and signed queries
        // are answered before rate limiting and the shedding policy.
        let mapped;
        let qctx = match self.dynamic {
            Some(dynamic) => {
                mapped = dynamic.map_context(qctx);
                let handled = match self.zone.try_borrow() {
                    Ok(zone) => dynamic.handle(&zone, self.address_slot(), msg, &mapped, out),
                    Err(_) => None,
                };
                if let Some(handled) = handled {
                    return self.managed(msg, handled, qctx.transport == Transport::Tcp, last);
                }
                &mapped
            }
            None => qctx,
        };
        let (answered, new_address) = self.respond(msg, qctx, out);
        let (mut served, rcode) = self.decide(msg, qctx, out, waiting, answered);
        served.new_address = new_address;
        if let Some(last) = last {
            last.record(msg, answered, served, rcode);
            if let Some(shared) = self.shared {
                last.state = shared.slot().state.load(Relaxed);
                last.load_milli = shared.slot().load_milli.load(Relaxed);
            }
        }
        served
    }

    fn address_slot(&self) -> Option<&crate::health::address_slot::AddressSlot> {
        self.shared.map(|s| &s.table.addresses[s.index])
    }

    /// Counts and records an UPDATE or signed query `dynamic` answered.
    fn managed(&self, msg: &[u8], h: crate::dynamic::Handled, tcp: bool, last: Option<&mut LastQuery>) -> Served {
        let served = if h.len > 0 {
            Served {
                outcome: Outcome::Send(h.len),
                reason: if h.update && h.rcode == 0 {
                    Reason::Updated
                } else {
                    Reason::Managed
                },
                new_address: None,
            }
        } else {
            Served {
                outcome: Outcome::Nothing,
                reason: Reason::Unanswerable,
                new_address: None,
            }
        };
        // Signed queries count as queries; UPDATEs have their own counters.
        if let (Some(shared), false) = (self.shared, h.update) {
            let counters = &shared.slot().counters;
            counters.query(tcp, h.qtype);
            counters.answered.fetch_add(1, Relaxed);
            counters.response(h.rcode, false);
        }
        if let Some(last) = last {
            last.record(msg, None, served, Some(h.rcode));
        }
        served
    }

    /// The zone's response to `msg`. A DNSSEC query on a local address
    /// the zone has no signatures for yet makes it sign for the address
    /// (once per address, in a table of `max_addresses`) and is answered
    /// again; only the second answer is decided and counted.
    fn respond(&self, msg: &[u8], qctx: &QueryContext<'_>, out: &mut [u8]) -> (Option<Answered>, Option<NewAddress>) {
        let respond = |out: &mut [u8]| self.zone.try_borrow().ok()?.respond(msg, qctx, out);
        let answered = respond(out);
        let Some(local) = answered.and_then(|a| a.missing_signatures) else {
            return (answered, None);
        };
        let Ok(mut zone) = self.zone.try_borrow_mut() else {
            return (answered, None);
        };
        let new = match zone.add_signed_address(local) {
            Ok(()) => NewAddress::Signed(local),
            Err(DnssecError::TableFull(size)) => NewAddress::TableFull(local, size),
            Err(_) => NewAddress::Failed(local),
        };
        drop(zone);
        match new {
            NewAddress::Signed(_) => (respond(out), Some(new)),
            _ => (answered, Some(new)),
        }
    }

    /// The decision itself; also returns the rcode of what is sent.
    fn decide(
        &self,
        msg: &[u8],
        qctx: &QueryContext<'_>,
        out: &mut [u8],
        waiting: usize,
        answered: Option<Answered>,
    ) -> (Served, Option<u16>) {
        let settings = self.settings;
        let served = |outcome, reason| Served {
            outcome,
            reason,
            new_address: None,
        };
        // For REFUSED and slips, which are never signed.
        let zone = self.zone.try_borrow().ok();
        let Some(shared) = self.shared else {
            // No shared table (it failed to initialize): answer plainly.
            return match answered {
                Some(a) => (served(Outcome::Send(a.len), Reason::Answered), Some(a.rcode)),
                None => (served(Outcome::Nothing, Reason::Unanswerable), None),
            };
        };
        let slot = shared.slot();
        let counters = &slot.counters;
        let Some(a) = answered else {
            counters.dropped(DropReason::Unanswerable);
            return (served(Outcome::Nothing, Reason::Unanswerable), None);
        };
        let tcp = qctx.transport == Transport::Tcp;
        counters.query(tcp, a.qtype);
        let shape = Shape {
            delay_us: slot.delay_us.load(Relaxed),
            drop_ppm: slot.drop_ppm.load(Relaxed),
            refuse_ppm: slot.refuse_ppm.load(Relaxed),
        };
        // Response rate limiting: UDP only (TCP cannot be spoofed), and not for
        // clients that proved their address with a valid cookie.
        if let (Some(limit), Some(ip)) = (settings.rate_limit, qctx.client_addr) {
            if !tcp && a.cookie != Some(CookieStatus::Valid) {
                match rrl::check(&shared.table.rrl, shared.index, ip, qctx.now, limit.rate, limit.slip) {
                    Limit::Pass => {}
                    // A silent service sends no truncated invitations to
                    // retry: it stays silent, or refuses within the rate.
                    Limit::Slip if !shape.is_silent() => {
                        return match zone.as_ref().and_then(|z| z.slip(msg, qctx, out)) {
                            Some(r) => {
                                counters.slipped.fetch_add(1, Relaxed);
                                counters.response(r.rcode, true);
                                (served(Outcome::Send(r.len), Reason::Slipped), Some(r.rcode))
                            }
                            None => (served(Outcome::Nothing, Reason::Unanswerable), None),
                        };
                    }
                    Limit::Drop | Limit::Slip => {
                        counters.dropped(DropReason::RateLimited);
                        return (served(Outcome::Nothing, Reason::RateLimited), None);
                    }
                }
            }
        }
        match decide(shape, settings.silence, qctx.random) {
            Action::Answer => {
                counters.answered.fetch_add(1, Relaxed);
                counters.response(a.rcode, a.truncated);
                (served(Outcome::Send(a.len), Reason::Answered), Some(a.rcode))
            }
            Action::Drop => {
                let (drop, reason) = if shape.is_silent() {
                    (DropReason::Silent, Reason::Silent)
                } else {
                    (DropReason::Shed, Reason::Shed)
                };
                counters.dropped(drop);
                (served(Outcome::Nothing, reason), None)
            }
            Action::Refuse => match zone.as_ref().and_then(|z| z.refuse(msg, qctx, out)) {
                Some(r) => {
                    counters.refused_by_policy.fetch_add(1, Relaxed);
                    counters.response(r.rcode, false);
                    let reason = if shape.is_silent() {
                        Reason::Refused
                    } else {
                        Reason::ShedRefused
                    };
                    (served(Outcome::Send(r.len), reason), Some(r.rcode))
                }
                None => (served(Outcome::Nothing, Reason::Unanswerable), None),
            },
            Action::Delay { ms } => {
                if waiting >= settings.delay_queue {
                    counters.dropped(DropReason::DelayQueueFull);
                    return (served(Outcome::Nothing, Reason::DelayQueueFull), None);
                }
                counters.delayed.fetch_add(1, Relaxed);
                counters.response(a.rcode, a.truncated);
                (served(Outcome::Delay(a.len, ms), Reason::Delayed), Some(a.rcode))
            }
        }
    }
}

#[cfg(test)]
mod tests;
