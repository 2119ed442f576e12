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

use crate::dns::zone::{peek_question, CookieStatus};
use crate::dns::{Answered, QueryContext, Transport, Zone};
use crate::dynamic::Dynamic;
use crate::health::policy::{decide, Action, Shape, Silence};
use crate::health::rrl::{self, Limit};
use crate::health::shared::{DropReason, ServiceSlot, Table};
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
            Reason::Answered | Reason::Slipped | Reason::Managed => ActionTaken::Answered,
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

/// A decided query: what to do, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub outcome: Outcome,
    pub reason: Reason,
}

impl Served {
    /// The debug log line for this query of `service`, from `client`.
    pub fn log_line<'a>(&'a self, service: &'a Service<'_>, tcp: bool, client: Option<IpAddr>) -> impl Display + 'a {
        LogLine {
            served: self,
            apex: service.zone.apex(),
            shared: service.shared.map(|s| s.slot()),
            tcp,
            client,
        }
    }
}

struct LogLine<'a> {
    served: &'a Served,
    apex: &'a crate::dns::Name,
    shared: Option<&'a ServiceSlot>,
    tcp: bool,
    client: Option<IpAddr>,
}

impl Display for LogLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let transport = if self.tcp { "TCP" } else { "UDP" };
        write!(f, "dns_service {}: {transport} query", self.apex)?;
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
    pub zone: &'a Zone,
    pub settings: &'a Settings,
    /// `None` only when the shared table could not be set up.
    pub shared: Option<Shared<'a>>,
    /// Address file, UPDATE, local→public map (`None`: none configured).
    pub dynamic: Option<&'a Dynamic>,
}

impl Service<'_> {
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
                if let Some(handled) = dynamic.handle(self.zone, self.address_slot(), msg, &mapped, out) {
                    return self.managed(msg, handled, qctx.transport == Transport::Tcp, last);
                }
                &mapped
            }
            None => qctx,
        };
        let answered = self.zone.respond(msg, qctx, out);
        let (served, rcode) = self.decide(msg, qctx, out, waiting, answered);
        if let Some(last) = last {
            last.record(msg, answered, served, rcode);
            if let Some(shared) = self.shared {
                last.state = shared.slot().state.load(Relaxed);
                last.load_milli = shared.slot().load_milli.load(Relaxed);
            }
        }
        served
    }

    /// Size of the largest response this service can send: its zone's,
    /// plus room for changed addresses and TSIG records.
    pub fn max_response_len(&self) -> usize {
        self.zone.max_response_len() + self.dynamic.map_or(0, Dynamic::headroom)
    }

    fn address_slot(&self) -> Option<&crate::health::address_slot::AddressSlot> {
        self.shared.map(|s| &s.table.addresses[s.index])
    }

    /// Counts and records an UPDATE or signed query `dynamic` answered.
    fn managed(&self, msg: &[u8], h: crate::dynamic::Handled, tcp: bool, last: Option<&mut LastQuery>) -> Served {
        let served = if h.len > 0 {
            Served {
                outcome: Outcome::Send(h.len),
                reason: Reason::Managed,
            }
        } else {
            Served {
                outcome: Outcome::Nothing,
                reason: Reason::Unanswerable,
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

    /// The decision itself; also returns the rcode of what is sent.
    fn decide(
        &self,
        msg: &[u8],
        qctx: &QueryContext<'_>,
        out: &mut [u8],
        waiting: usize,
        answered: Option<Answered>,
    ) -> (Served, Option<u16>) {
        let (zone, settings) = (self.zone, self.settings);
        let served = |outcome, reason| Served { outcome, reason };
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
                        return match zone.slip(msg, qctx, out) {
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
            Action::Refuse => match zone.refuse(msg, qctx, out) {
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
mod tests {
    use super::*;
    use crate::dns::config::parse_host;
    use crate::dns::ZoneConfig;
    use crate::health::policy::PPM;

    fn zone() -> Zone {
        let mut c = ZoneConfig::new(parse_host("www.example.com").unwrap());
        c.nameservers = vec![parse_host("ns1-www.example.com").unwrap()];
        Zone::build(&c).unwrap()
    }

    /// A table in zeroed memory, as nginx's shared zone gives it.
    fn table() -> (Vec<u64>, &'static Table) {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [7; 16], [8; 16]) };
        (memory, unsafe { &*(table as *const Table) })
    }

    /// `www.example.com A`, id 0x1234, no EDNS.
    fn query() -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in ["www", "example", "com"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn udp(random: u32) -> QueryContext<'static> {
        QueryContext {
            local_addr: Some("192.0.2.1".parse().unwrap()),
            client_addr: Some("198.51.100.7".parse().unwrap()),
            random,
            now: 1000,
            ..QueryContext::new(Transport::Udp)
        }
    }

    const SETTINGS: Settings = Settings {
        rate_limit: None,
        silence: Silence::Refuse,
        delay_queue: 10,
    };

    fn set_shape(table: &Table, delay_us: u32, drop_ppm: u32) {
        table.slots[0].delay_us.store(delay_us, Relaxed);
        table.slots[0].drop_ppm.store(drop_ppm, Relaxed);
    }

    fn serve(table: &Table, settings: &Settings, msg: &[u8], qctx: &QueryContext, waiting: usize) -> Served {
        let zone = zone();
        let service = Service {
            zone: &zone,
            settings,
            shared: Some(Shared { table, index: 0 }),
            dynamic: None,
        };
        let mut out = [0u8; 512];
        service.answer(msg, qctx, &mut out, waiting, None)
    }

    fn rcode_of(zone: &Zone, settings: &Settings, table: &Table, qctx: &QueryContext) -> (Served, u8) {
        let service = Service {
            zone,
            settings,
            shared: Some(Shared { table, index: 0 }),
            dynamic: None,
        };
        let mut out = [0u8; 512];
        let served = service.answer(&query(), qctx, &mut out, 0, None);
        (served, out[3] & 0x0f)
    }

    #[test]
    fn a_ready_service_answers_and_counts() {
        let (_m, table) = table();
        let served = serve(table, &SETTINGS, &query(), &udp(1), 0);
        assert!(matches!(served.outcome, Outcome::Send(len) if len > 12));
        assert_eq!(served.reason, Reason::Answered);
        let c = &table.slots[0].counters;
        assert_eq!(c.queries_udp.load(Relaxed), 1);
        assert_eq!(c.answered.load(Relaxed), 1);
        assert_eq!(c.rcode[0].load(Relaxed), 1, "NOERROR counted");
    }

    #[test]
    fn a_delay_is_applied_until_the_queue_is_full() {
        let (_m, table) = table();
        set_shape(table, 200_000, 0);
        let served = serve(table, &SETTINGS, &query(), &udp(1), 9);
        assert!(matches!(served.outcome, Outcome::Delay(_, 200)));
        assert_eq!(served.reason, Reason::Delayed);
        let full = serve(table, &SETTINGS, &query(), &udp(1), 10);
        assert_eq!(full.outcome, Outcome::Nothing);
        assert_eq!(full.reason, Reason::DelayQueueFull);
        let c = &table.slots[0].counters;
        assert_eq!(c.delayed.load(Relaxed), 1);
        assert_eq!(c.dropped[DropReason::DelayQueueFull as usize].load(Relaxed), 1);
        assert_eq!(c.queries_udp.load(Relaxed), 2);
    }

    #[test]
    fn the_drop_probability_drops_by_the_random_draw() {
        let (_m, table) = table();
        set_shape(table, 0, PPM / 4);
        let dropped = serve(table, &SETTINGS, &query(), &udp(PPM / 4 - 1), 0);
        assert_eq!((dropped.outcome, dropped.reason), (Outcome::Nothing, Reason::Shed));
        let kept = serve(table, &SETTINGS, &query(), &udp(PPM / 4), 0);
        assert_eq!(kept.reason, Reason::Answered);
        assert_eq!(
            table.slots[0].counters.dropped[DropReason::Shed as usize].load(Relaxed),
            1
        );
    }

    #[test]
    fn a_silent_service_refuses_or_drops_as_configured() {
        let (_m, table) = table();
        set_shape(table, 0, PPM);
        let zone = zone();
        let (refused, rcode) = rcode_of(&zone, &SETTINGS, table, &udp(1));
        assert_eq!(refused.reason, Reason::Refused);
        assert!(matches!(refused.outcome, Outcome::Send(_)));
        assert_eq!(rcode, 5, "REFUSED");
        let drop = Settings {
            silence: Silence::Drop,
            ..SETTINGS
        };
        let (silent, _) = rcode_of(&zone, &drop, table, &udp(1));
        assert_eq!((silent.outcome, silent.reason), (Outcome::Nothing, Reason::Silent));
        let c = &table.slots[0].counters;
        assert_eq!(c.refused_by_policy.load(Relaxed), 1);
        assert_eq!(c.dropped[DropReason::Silent as usize].load(Relaxed), 1);
    }

    #[test]
    fn the_refuse_probability_refuses_at_once_even_with_dns_silence_drop() {
        let (_m, table) = table();
        set_shape(table, 50_000, PPM / 4);
        table.slots[0].refuse_ppm.store(PPM / 2, Relaxed);
        let drop = Settings {
            silence: Silence::Drop,
            ..SETTINGS
        };
        let zone = zone();
        let (refused, rcode) = rcode_of(&zone, &drop, table, &udp(PPM / 2 - 1));
        assert_eq!(refused.reason, Reason::ShedRefused);
        assert!(matches!(refused.outcome, Outcome::Send(_)), "sent at once, not delayed");
        assert_eq!(rcode, 5, "REFUSED");
        let (dropped, _) = rcode_of(&zone, &drop, table, &udp(PPM / 2));
        assert_eq!((dropped.outcome, dropped.reason), (Outcome::Nothing, Reason::Shed));
        let (delayed, _) = rcode_of(&zone, &drop, table, &udp(PPM * 3 / 4));
        assert!(matches!(delayed.outcome, Outcome::Delay(_, 50)));
        let c = &table.slots[0].counters;
        assert_eq!(c.refused_by_policy.load(Relaxed), 1);
        assert_eq!(c.rcode[2].load(Relaxed), 1, "REFUSED counted");
        assert_eq!(ActionTaken::Refused, Reason::ShedRefused.action());
    }

    #[test]
    fn responses_and_garbage_are_not_answered() {
        let (_m, table) = table();
        let mut response = query();
        response[2] |= 0x80;
        let served = serve(table, &SETTINGS, &response, &udp(1), 0);
        assert_eq!(
            (served.outcome, served.reason),
            (Outcome::Nothing, Reason::Unanswerable)
        );
        let short = serve(table, &SETTINGS, &[1, 2, 3], &udp(1), 0);
        assert_eq!(short.reason, Reason::Unanswerable);
        let c = &table.slots[0].counters;
        assert_eq!(c.dropped[DropReason::Unanswerable as usize].load(Relaxed), 2);
        assert_eq!(c.queries_udp.load(Relaxed), 0);
    }

    #[test]
    fn the_rate_limit_drops_and_slips_udp_but_not_tcp() {
        let (_m, table) = table();
        let limited = Settings {
            rate_limit: Some(RateLimit { rate: 2, slip: 2 }),
            ..SETTINGS
        };
        let zone = zone();
        let only: Vec<Reason> = (0..6)
            .map(|_| rcode_of(&zone, &limited, table, &udp(1)).0.reason)
            .collect();
        assert_eq!(
            only,
            [
                Reason::Answered,
                Reason::Answered,
                Reason::RateLimited,
                Reason::Slipped,
                Reason::RateLimited,
                Reason::Slipped
            ]
        );
        let c = &table.slots[0].counters;
        assert_eq!(c.slipped.load(Relaxed), 2);
        assert_eq!(c.dropped[DropReason::RateLimited as usize].load(Relaxed), 2);
        let tcp = QueryContext {
            transport: Transport::Tcp,
            ..udp(1)
        };
        let (over_tcp, _) = rcode_of(&zone, &limited, table, &tcp);
        assert_eq!(over_tcp.reason, Reason::Answered, "TCP is never rate limited");
    }

    #[test]
    fn a_silent_service_sends_no_slips() {
        let zone = zone();
        for silence in [Silence::Refuse, Silence::Drop] {
            let (_m, table) = table();
            set_shape(table, 0, PPM);
            let limited = Settings {
                rate_limit: Some(RateLimit { rate: 1, slip: 1 }),
                silence,
                ..SETTINGS
            };
            let first = rcode_of(&zone, &limited, table, &udp(1)).0;
            let over = rcode_of(&zone, &limited, table, &udp(1)).0;
            let expected_first = match silence {
                Silence::Refuse => Reason::Refused,
                Silence::Drop => Reason::Silent,
            };
            assert_eq!(
                first.reason, expected_first,
                "{silence:?}: within the rate, the silence policy"
            );
            assert_eq!(
                (over.outcome, over.reason),
                (Outcome::Nothing, Reason::RateLimited),
                "{silence:?}: over the rate, nothing (no TC=1 slip)"
            );
            assert_eq!(table.slots[0].counters.slipped.load(Relaxed), 0);
        }
    }

    #[test]
    fn a_slip_is_a_truncated_reply_without_records() {
        let (_m, table) = table();
        let limited = Settings {
            rate_limit: Some(RateLimit { rate: 1, slip: 1 }),
            ..SETTINGS
        };
        let zone = zone();
        let service = Service {
            zone: &zone,
            settings: &limited,
            shared: Some(Shared { table, index: 0 }),
            dynamic: None,
        };
        let mut out = [0u8; 512];
        let _ = service.answer(&query(), &udp(1), &mut out, 0, None);
        let served = service.answer(&query(), &udp(1), &mut out, 0, None);
        assert_eq!(served.reason, Reason::Slipped);
        let Outcome::Send(len) = served.outcome else {
            panic!("a slip is sent")
        };
        assert_ne!(out[2] & 0x02, 0, "TC set");
        assert_eq!(&out[6..8], &[0, 0], "no answer records");
        assert_eq!(len, query().len());
    }

    #[test]
    fn the_last_query_is_recorded_for_the_variables() {
        let (_m, table) = table();
        table.slots[0].load_milli.store(650, Relaxed);
        set_shape(table, 6_000, 0);
        let zone = zone();
        let service = Service {
            zone: &zone,
            settings: &SETTINGS,
            shared: Some(Shared { table, index: 0 }),
            dynamic: None,
        };
        let mut out = [0u8; 512];
        let mut last = LastQuery::default();
        let _ = service.answer(&query(), &udp(1), &mut out, 0, Some(&mut last));
        assert_eq!(last.action, ActionTaken::Delayed);
        assert_eq!((last.qtype, last.rcode, last.load_milli), (Some(1), Some(0), 650));
        assert_eq!(&last.qname[..last.qname_len], &query()[12..29]);
        set_shape(table, 0, PPM);
        let drop = Settings {
            silence: Silence::Drop,
            ..SETTINGS
        };
        let service = Service {
            settings: &drop,
            ..service
        };
        let _ = service.answer(&query(), &udp(1), &mut out, 0, Some(&mut last));
        assert_eq!((last.action, last.rcode), (ActionTaken::Dropped, None));
    }

    #[test]
    fn the_debug_line_says_why() {
        let (_m, table) = table();
        set_shape(table, 200_000, 0);
        table.slots[0]
            .state
            .store(crate::health::state::State::Shedding as u32, Relaxed);
        table.slots[0].load_milli.store(900, Relaxed);
        let zone = zone();
        let service = Service {
            zone: &zone,
            settings: &SETTINGS,
            shared: Some(Shared { table, index: 0 }),
            dynamic: None,
        };
        let mut out = [0u8; 512];
        let served = service.answer(&query(), &udp(1), &mut out, 0, None);
        let line = served.log_line(&service, false, udp(1).client_addr).to_string();
        assert_eq!(
            line,
            "dns_service www.example.com: UDP query from 198.51.100.7 delayed by the shedding curve (200 ms), \
             state shedding, load 0.900"
        );
    }

    #[test]
    fn without_a_shared_table_queries_are_answered() {
        let zone = zone();
        let service = Service {
            zone: &zone,
            settings: &SETTINGS,
            shared: None,
            dynamic: None,
        };
        let mut out = [0u8; 512];
        let served = service.answer(&query(), &udp(1), &mut out, 0, None);
        assert_eq!(served.reason, Reason::Answered);
    }
}
