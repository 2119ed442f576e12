//! The table all workers share (it lives in an nginx shared memory zone):
//! per service, the published state and shedding shape, the readings of
//! each source, leader bookkeeping and counters. All-zero bytes are a valid
//! empty table, and the layout is plain `repr(C)` data and atomics, so the
//! table can be placed in memory that several processes map.

use super::sources::FileTracker;
use super::state::{Evaluator, ProbeTracker};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::Relaxed};

pub const MAX_SERVICES: usize = 64;
pub const MAX_NAME: usize = 256;
/// Changes whenever the layout changes, so a zone kept across a reload that
/// loads a different module build is reinitialized rather than misread.
pub const LAYOUT_MAGIC: u64 = 0x646e_7373_0001_0000 | std::mem::size_of::<ServiceSlot>() as u64;

/// Load and health sources, in the order of `ServiceSlot::readings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Upstream = 0,
    Probe = 1,
    File = 2,
    Host = 3,
}

impl Source {
    pub const ALL: [Source; 4] = [Source::Upstream, Source::Probe, Source::File, Source::Host];

    pub fn name(self) -> &'static str {
        match self {
            Source::Upstream => "upstream",
            Source::Probe => "probe",
            Source::File => "file",
            Source::Host => "host",
        }
    }
}

/// Encoded reading of a source that is not configured.
pub const NOT_CONFIGURED: i32 = i32::MIN;

/// Query types counted separately; everything else is `other`.
pub const QTYPES: [(u16, &str); 6] = [
    (1, "A"),
    (28, "AAAA"),
    (2, "NS"),
    (6, "SOA"),
    (255, "ANY"),
    (0, "other"),
];
/// Response codes counted separately.
pub const RCODES: [(u16, &str); 7] = [
    (0, "NOERROR"),
    (3, "NXDOMAIN"),
    (5, "REFUSED"),
    (1, "FORMERR"),
    (4, "NOTIMP"),
    (16, "BADVERS"),
    (u16::MAX, "other"),
];

/// Why a query got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Probabilistic drop of the shedding curve.
    Shed = 0,
    /// The service was down, draining, starting or over the high mark.
    Silent = 1,
    /// Too many answers were already waiting to be sent.
    DelayQueueFull = 2,
    /// Not a query that may be answered (a response, or no header).
    Unanswerable = 3,
    /// Response rate limiting.
    RateLimited = 4,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::Shed,
        DropReason::Silent,
        DropReason::DelayQueueFull,
        DropReason::Unanswerable,
        DropReason::RateLimited,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DropReason::Shed => "shed",
            DropReason::Silent => "silent",
            DropReason::DelayQueueFull => "delay_queue_full",
            DropReason::Unanswerable => "unanswerable",
            DropReason::RateLimited => "rate_limited",
        }
    }
}

#[repr(C)]
#[derive(Default)]
pub struct Counters {
    pub queries_udp: AtomicU64,
    pub queries_tcp: AtomicU64,
    pub qtype: [AtomicU64; QTYPES.len()],
    pub rcode: [AtomicU64; RCODES.len()],
    pub answered: AtomicU64,
    pub delayed: AtomicU64,
    pub refused_by_policy: AtomicU64,
    pub truncated: AtomicU64,
    /// Truncated replies sent instead of rate-limited responses.
    pub slipped: AtomicU64,
    pub dropped: [AtomicU64; DropReason::ALL.len()],
}

impl Counters {
    pub fn query(&self, tcp: bool, qtype: Option<u16>) {
        if tcp { &self.queries_tcp } else { &self.queries_udp }.fetch_add(1, Relaxed);
        let i = QTYPES
            .iter()
            .position(|(t, _)| Some(*t) == qtype)
            .unwrap_or(QTYPES.len() - 1);
        self.qtype[i].fetch_add(1, Relaxed);
    }

    pub fn response(&self, rcode: u16, truncated: bool) {
        let i = RCODES.iter().position(|(r, _)| *r == rcode).unwrap_or(RCODES.len() - 1);
        self.rcode[i].fetch_add(1, Relaxed);
        if truncated {
            self.truncated.fetch_add(1, Relaxed);
        }
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
    }
}

/// Leader-only state: written only by the worker holding the current tick.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct LeaderState {
    pub evaluator: Evaluator,
    pub probe: ProbeTracker,
    pub file: FileTracker,
    /// Bit set of active conditions (see `Condition`), to log changes once.
    pub conditions: u32,
}

#[repr(C)]
pub struct ServiceSlot {
    name_len: AtomicU32,
    name: UnsafeCell<[u8; MAX_NAME]>,

    // Published by the leader, read by every worker per query.
    pub state: AtomicU32,
    pub load_milli: AtomicU32,
    pub delay_us: AtomicU32,
    pub drop_ppm: AtomicU32,
    pub readings: [AtomicI32; Source::ALL.len()],

    // Leadership: a worker whose compare-and-swap moves `next_tick_ms`
    // forward evaluates this tick; likewise for starting a probe.
    pub next_tick_ms: AtomicU64,
    pub next_probe_ms: AtomicU64,

    // Probe results, handed from the probing worker to the next leader.
    pub probe_seq: AtomicU64,
    pub probe_ok: AtomicU32,
    pub probe_load_milli: AtomicI32,
    pub probe_consumed: AtomicU64,

    pub leader: UnsafeCell<LeaderState>,
    pub counters: Counters,
}

// SAFETY: `name` is written only while the table is set up by one process
// (nginx's master, before workers exist); `leader` only by the holder of the
// current tick (see `try_lead`). Everything else is atomic.
unsafe impl Sync for ServiceSlot {}

impl ServiceSlot {
    pub fn name(&self) -> &[u8] {
        let len = (self.name_len.load(Relaxed) as usize).min(MAX_NAME);
        // SAFETY: see the `Sync` impl; the name is immutable while in use.
        unsafe { &(&*self.name.get())[..len] }
    }

    /// Claims the lead for the tick due at or before `now_ms`; the next one
    /// is due `interval_ms` later. Only one worker wins each tick.
    pub fn try_lead(&self, now_ms: u64, interval_ms: u64) -> bool {
        let due = self.next_tick_ms.load(Relaxed);
        now_ms >= due
            && self
                .next_tick_ms
                .compare_exchange(due, now_ms + interval_ms, Relaxed, Relaxed)
                .is_ok()
    }

    /// Claims the next probe, like `try_lead`.
    pub fn try_probe(&self, now_ms: u64, interval_ms: u64) -> bool {
        let due = self.next_probe_ms.load(Relaxed);
        now_ms >= due
            && self
                .next_probe_ms
                .compare_exchange(due, now_ms + interval_ms, Relaxed, Relaxed)
                .is_ok()
    }

    /// Hands a finished probe's result to the leader.
    pub fn post_probe_result(&self, ok: bool, load: Option<f64>) {
        self.probe_ok.store(u32::from(ok), Relaxed);
        self.probe_load_milli.store(
            load.map_or(-1, |l| (l.clamp(0.0, 1.0) * 1000.0).round() as i32),
            Relaxed,
        );
        self.probe_seq.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// The probe result posted since the last call, if any (leader only).
    pub fn take_probe_result(&self) -> Option<(bool, Option<f64>)> {
        let seq = self.probe_seq.load(std::sync::atomic::Ordering::Acquire);
        if seq == self.probe_consumed.load(Relaxed) {
            return None;
        }
        self.probe_consumed.store(seq, Relaxed);
        let load = self.probe_load_milli.load(Relaxed);
        Some((
            self.probe_ok.load(Relaxed) == 1,
            (load >= 0).then(|| f64::from(load) / 1000.0),
        ))
    }

    /// Leader state.
    ///
    /// # Safety
    /// Only the caller that won `try_lead` for the current tick may use it,
    /// and only until it returns to the event loop.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn leader(&self) -> &mut LeaderState {
        &mut *self.leader.get()
    }

    fn reset(&self) {
        // SAFETY: called only while one process sets up the table.
        unsafe {
            std::ptr::write_bytes(
                self as *const ServiceSlot as *mut u8,
                0,
                std::mem::size_of::<ServiceSlot>(),
            )
        };
    }
}

#[repr(C)]
pub struct Table {
    magic: AtomicU64,
    /// DNS cookie secret for services without a secret file: made once
    /// when the table is created, so every worker, and every configuration
    /// after a reload, agrees on it.
    cookie_secret: UnsafeCell<[u8; 16]>,
    pub slots: [ServiceSlot; MAX_SERVICES],
    /// Response rate limiting counts (see `rrl`), shared by all services.
    pub rrl: [AtomicU64; super::rrl::BUCKETS],
}

// SAFETY: `cookie_secret` is written only by `init`, by one process.
unsafe impl Sync for Table {}

#[derive(Debug, PartialEq, Eq)]
pub struct TableFull;

impl Table {
    /// Prepares zeroed (or previously used) memory as a table.
    ///
    /// # Safety
    /// `memory` must be valid for `size_of::<Table>()` bytes, aligned, and
    /// not used by another process while this runs.
    pub unsafe fn init<'a>(memory: *mut u8, fresh_secret: [u8; 16]) -> &'a Table {
        let table = &*(memory as *const Table);
        if table.magic.load(Relaxed) != LAYOUT_MAGIC {
            std::ptr::write_bytes(memory, 0, std::mem::size_of::<Table>());
            *table.cookie_secret.get() = fresh_secret;
            table.magic.store(LAYOUT_MAGIC, Relaxed);
        }
        table
    }

    pub fn cookie_secret(&self) -> [u8; 16] {
        // SAFETY: see the `Sync` impl.
        unsafe { *self.cookie_secret.get() }
    }

    /// Gives each configured service name a slot: the slot it had (so
    /// counters and health survive a reload), else a free one, else one of
    /// a service no longer configured.
    ///
    /// # Safety
    /// Only while no other process uses the table's names (nginx's master
    /// during configuration, before workers of this configuration exist).
    pub unsafe fn assign(&self, names: &[&[u8]]) -> Result<Vec<usize>, TableFull> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let name = &name[..name.len().min(MAX_NAME)];
            if let Some(i) = self.slots.iter().position(|s| s.name() == name) {
                out.push(i);
                continue;
            }
            let free =
                self.slots.iter().enumerate().position(|(i, s)| {
                    !out.contains(&i) && (s.name().is_empty() || !names.iter().any(|n| *n == s.name()))
                });
            let Some(i) = free else { return Err(TableFull) };
            let slot = &self.slots[i];
            slot.reset();
            (&mut *slot.name.get())[..name.len()].copy_from_slice(name);
            slot.name_len.store(name.len() as u32, Relaxed);
            out.push(i);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> (Vec<u64>, &'static Table) {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [7; 16]) };
        let table: &'static Table = unsafe { &*(table as *const Table) };
        (memory, table)
    }

    #[test]
    fn slots_survive_reassignment() {
        let (_memory, table) = table();
        let first = unsafe { table.assign(&[b"www.example.com", b"api.example.com"]) }.unwrap();
        table.slots[first[1]].counters.queries_udp.fetch_add(5, Relaxed);
        let second = unsafe { table.assign(&[b"api.example.com", b"new.example.com"]) }.unwrap();
        assert_eq!(second[0], first[1]);
        assert_eq!(table.slots[second[0]].counters.queries_udp.load(Relaxed), 5);
        assert_eq!(table.slots[second[1]].name(), b"new.example.com");
        let many: Vec<Vec<u8>> = (0..MAX_SERVICES + 1)
            .map(|i| format!("s{i}.example").into_bytes())
            .collect();
        let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        assert_eq!(unsafe { table.assign(&refs) }, Err(TableFull));
    }

    #[test]
    fn the_cookie_secret_is_kept_when_the_table_is_reused() {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let first = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [1; 16]) }.cookie_secret();
        let again = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [2; 16]) }.cookie_secret();
        assert_eq!((first, again), ([1; 16], [1; 16]));
    }

    #[test]
    fn one_leader_per_tick() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        assert!(slot.try_lead(1000, 250));
        assert!(!slot.try_lead(1000, 250));
        assert!(!slot.try_lead(1249, 250));
        assert!(slot.try_lead(1250, 250));
    }

    #[test]
    fn probe_results_are_consumed_once() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        assert_eq!(slot.take_probe_result(), None);
        slot.post_probe_result(true, Some(0.5));
        assert_eq!(slot.take_probe_result(), Some((true, Some(0.5))));
        assert_eq!(slot.take_probe_result(), None);
        slot.post_probe_result(false, None);
        assert_eq!(slot.take_probe_result(), Some((false, None)));
    }
}
