//! The table all workers share (it lives in an nginx shared memory zone):
//! per service, the published state and shedding shape, the readings of
//! each source, leader bookkeeping and counters. All-zero bytes are a valid
//! empty table, and the layout is plain `repr(C)` data and atomics, so the
//! table can be placed in memory that several processes map.
//!
//! Processes of several configurations use the table at once: after a
//! reload, the workers of the previous configuration live on until their
//! connections end. Everything they may touch is atomic; the one exception,
//! the leader state, is reached only through the lead lock (see `Lead`).

use super::address_slot::AddressSlot;
use super::history::{Changes, History, HistoryCursor};
use super::rrl::RateTable;
use super::sources::FileTracker;
use super::state::{Evaluator, ProbeTracker};
use std::cell::UnsafeCell;
use std::ops::Deref;
use std::sync::atomic::{
    AtomicI32, AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

pub const MAX_SERVICES: usize = 64;
pub const MAX_NAME: usize = 256;
/// Probe results a slot holds until the leader takes them: more than one
/// tick's worth for probe intervals down to 16 per tick.
pub const PROBE_RING: usize = 16;
/// Changes whenever the layout changes, so a zone kept across a reload that
/// loads a different module build is reinitialized rather than misread.
pub const LAYOUT_MAGIC: u64 = 0x646e_7373_0004_0000 | std::mem::size_of::<ServiceSlot>() as u64;

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
/// Response codes counted separately; everything else is `other`.
pub const RCODES: [(u16, &str); 8] = [
    (0, "NOERROR"),
    (3, "NXDOMAIN"),
    (2, "SERVFAIL"),
    (5, "REFUSED"),
    (1, "FORMERR"),
    (4, "NOTIMP"),
    (16, "BADVERS"),
    (u16::MAX, "other"),
];

/// Where `rcode` is counted in `Counters::rcode`: its own entry of
/// `RCODES`, or the last one, `other`.
pub fn rcode_index(rcode: u16) -> usize {
    RCODES.iter().position(|(r, _)| *r == rcode).unwrap_or(RCODES.len() - 1)
}

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
    /// Responses the kernel refused to send (an unreachable client, a
    /// full socket buffer).
    pub send_failed: AtomicU64,
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
        self.rcode[rcode_index(rcode)].fetch_add(1, Relaxed);
        if truncated {
            self.truncated.fetch_add(1, Relaxed);
        }
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason as usize].fetch_add(1, Relaxed);
    }

    fn reset(&self) {
        // Taken apart so that a counter added later cannot be left out.
        let Counters {
            queries_udp,
            queries_tcp,
            qtype,
            rcode,
            answered,
            delayed,
            refused_by_policy,
            truncated,
            slipped,
            send_failed,
            dropped,
        } = self;
        let single = [
            queries_udp,
            queries_tcp,
            answered,
            delayed,
            refused_by_policy,
            truncated,
            slipped,
            send_failed,
        ];
        for counter in single.into_iter().chain(qtype).chain(rcode).chain(dropped) {
            counter.store(0, Relaxed);
        }
    }
}

/// Leader-only state, reached only through a `Lead`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct LeaderState {
    pub evaluator: Evaluator,
    pub probe: ProbeTracker,
    pub file: FileTracker,
    /// Bit set of active conditions (see `Condition`), to log changes once.
    pub conditions: u32,
    pub history: HistoryCursor,
}

/// A 128-bit secret in shared memory, as two atomic words.
#[repr(C)]
#[derive(Default)]
pub struct SharedSecret([AtomicU64; 2]);

impl SharedSecret {
    pub(super) fn store(&self, secret: [u8; 16]) {
        for (word, half) in self.0.iter().zip(secret.chunks_exact(8)) {
            word.store(u64::from_le_bytes(half.try_into().unwrap_or_default()), Relaxed);
        }
    }

    pub(super) fn load(&self) -> [u8; 16] {
        let mut secret = [0; 16];
        for (half, word) in secret.chunks_exact_mut(8).zip(&self.0) {
            half.copy_from_slice(&word.load(Relaxed).to_le_bytes());
        }
        secret
    }
}

/// A service name, as a slot holds it.
pub struct SlotName {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl Deref for SlotName {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// One probe's verdict, handed from the probing worker to the leader.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbeResult {
    pub ok: bool,
    /// The load figure the application reported, from 0.0 to 1.0.
    pub load: Option<f64>,
}

impl ProbeResult {
    /// One ring entry, a single atomic word so that a reader never mixes
    /// two probes: the tag of result number `seq` (high 32 bits), ok (bit
    /// 16) and the load in thousandths plus one (low 16 bits; 0: none).
    fn pack(self, seq: u64) -> u64 {
        let load = self.load.map_or(0, |l| (l.clamp(0.0, 1.0) * 1000.0).round() as u64 + 1);
        u64::from(entry_tag(seq)) << 32 | u64::from(self.ok) << 16 | load
    }

    fn unpack(entry: u64) -> (u32, ProbeResult) {
        let load = entry as u16;
        let result = ProbeResult {
            ok: entry >> 16 & 1 == 1,
            load: (load > 0).then(|| f64::from(load - 1) / 1000.0),
        };
        ((entry >> 32) as u32, result)
    }
}

/// The tag of the ring entry holding result number `seq`: never 0, which
/// marks an entry never written, until the count wraps.
fn entry_tag(seq: u64) -> u32 {
    (seq as u32).wrapping_add(1)
}

/// The probe results posted since the leader last took them.
#[derive(Debug, Default, PartialEq)]
pub struct ProbeResults {
    /// Oldest first.
    pub results: Vec<ProbeResult>,
    /// Results overwritten before they were taken (more than `PROBE_RING`
    /// probes between two takes).
    pub lost: u64,
}

#[repr(C)]
pub struct ServiceSlot {
    /// The configuration generation that last gave this slot to its
    /// service (0: never used); see `Table::assign`.
    generation: AtomicU64,
    name_len: AtomicU32,
    name: [AtomicU64; MAX_NAME / 8],

    // Published by the leader, read by every worker per query.
    pub state: AtomicU32,
    pub load_milli: AtomicU32,
    pub delay_us: AtomicU32,
    pub drop_ppm: AtomicU32,
    pub refuse_ppm: AtomicU32,
    pub readings: [AtomicI32; Source::ALL.len()],
    /// When each source last gave its reading (Unix ms; 0: never).
    pub reading_at_ms: [AtomicU64; Source::ALL.len()],

    /// When the next evaluation is due (see `try_lead`).
    pub next_tick_ms: AtomicU64,
    /// The pid of the process that holds the lead (0: nobody).
    lead_pid: AtomicU32,
    /// When the next probe is due (see `try_probe`).
    pub next_probe_ms: AtomicU64,

    // Probe results, from the probing workers to the leader: result number
    // n goes to entry n % PROBE_RING.
    probes_posted: AtomicU64,
    probes_taken: AtomicU64,
    probe_ring: [AtomicU64; PROBE_RING],

    leader: UnsafeCell<LeaderState>,
    pub counters: Counters,
    /// For the status page, written by the leader (see `history`).
    pub history: History,
    pub changes: Changes,
}

// SAFETY: `leader` is reached only through a `Lead`, of which at most one
// exists at a time across all processes (the lock word `lead_pid` names
// its holder) and which lends the state out only by `&mut self`.
// Everything else is atomic.
unsafe impl Sync for ServiceSlot {}

impl ServiceSlot {
    pub fn name(&self) -> SlotName {
        let mut bytes = [0; MAX_NAME];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(&self.name) {
            chunk.copy_from_slice(&word.load(Relaxed).to_le_bytes());
        }
        let len = (self.name_len.load(Relaxed) as usize).min(MAX_NAME);
        SlotName { bytes, len }
    }

    fn set_name(&self, name: &[u8]) {
        let mut bytes = [0; MAX_NAME];
        bytes[..name.len()].copy_from_slice(name);
        for (word, chunk) in self.name.iter().zip(bytes.chunks_exact(8)) {
            word.store(u64::from_le_bytes(chunk.try_into().unwrap_or_default()), Relaxed);
        }
        self.name_len.store(name.len() as u32, Relaxed);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Relaxed)
    }

    /// Claims the lead for the tick due at or before `now_ms`, for process
    /// `pid` (not 0); the next tick is due `interval_ms` later. The lead is
    /// exclusive and lasts until the returned `Lead` is dropped, however
    /// long the leader takes: a leader that stalls past the next tick delays
    /// it rather than sharing the leader state. The lead of a process that
    /// no longer exists is taken over.
    pub fn try_lead(&self, now_ms: u64, interval_ms: u64, pid: u32) -> Option<Lead<'_>> {
        self.try_lead_checking(now_ms, interval_ms, pid, process_exists)
    }

    /// `try_lead`, asking `exists` whether the holder of a taken lead lives.
    fn try_lead_checking(
        &self,
        now_ms: u64,
        interval_ms: u64,
        pid: u32,
        exists: impl Fn(u32) -> bool,
    ) -> Option<Lead<'_>> {
        if now_ms < self.next_tick_ms.load(Relaxed) {
            return None;
        }
        let lead = self.lock(pid, exists)?;
        // Another worker may have held the lead for this tick in between.
        if now_ms < self.next_tick_ms.load(Relaxed) {
            return None;
        }
        self.next_tick_ms.store(now_ms + interval_ms, Relaxed);
        Some(lead)
    }

    /// Takes the lead lock for `pid`, whatever the tick.
    fn lock(&self, pid: u32, exists: impl Fn(u32) -> bool) -> Option<Lead<'_>> {
        debug_assert_ne!(pid, 0, "0 marks a free lead");
        let taken = match self.lead_pid.compare_exchange(0, pid, Acquire, Relaxed) {
            Ok(_) => true,
            // A holder that died (a crashed worker) would keep it for ever;
            // our own pid means this process holds it already.
            Err(holder) => {
                holder != pid
                    && !exists(holder)
                    && self.lead_pid.compare_exchange(holder, pid, Acquire, Relaxed).is_ok()
            }
        };
        taken.then(|| Lead { slot: self, pid })
    }

    /// Claims the next probe: one worker per interval starts it.
    pub fn try_probe(&self, now_ms: u64, interval_ms: u64) -> bool {
        let due = self.next_probe_ms.load(Relaxed);
        now_ms >= due
            && self
                .next_probe_ms
                .compare_exchange(due, now_ms + interval_ms, Relaxed, Relaxed)
                .is_ok()
    }

    /// Hands a finished probe's result to the leader. Probes may finish in
    /// several workers at once: each result gets its own number and entry.
    pub fn post_probe_result(&self, ok: bool, load: Option<f64>) {
        let seq = self.probes_posted.fetch_add(1, Relaxed);
        // The entry carries everything it means: no ordering is needed.
        self.probe_ring[seq as usize % PROBE_RING].store(ProbeResult { ok, load }.pack(seq), Relaxed);
    }
}

/// Whether process `pid` exists: `kill(pid, 0)` sends no signal and fails
/// with ESRCH only when there is no such process.
pub(super) fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks; a positive pid names one process, never a group.
    pid > 0
        && (unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH))
}

/// The lead of one service, from `ServiceSlot::try_lead` until dropped:
/// while it is held no other process evaluates the service, and the leader
/// state is reachable only through it.
#[must_use]
pub struct Lead<'a> {
    slot: &'a ServiceSlot,
    pid: u32,
}

impl Lead<'_> {
    pub fn leader_state(&mut self) -> &mut LeaderState {
        // SAFETY: see the `Sync` impl of `ServiceSlot`.
        unsafe { &mut *self.slot.leader.get() }
    }

    /// Every probe result posted since the last take, oldest first. A
    /// result numbered but not yet written (its worker is inside
    /// `post_probe_result`) ends the take: it and the ones after it come
    /// with the next take, or count as lost once the ring has moved past.
    pub fn take_probe_results(&mut self) -> ProbeResults {
        let slot = self.slot;
        let posted = slot.probes_posted.load(Relaxed);
        let taken = slot.probes_taken.load(Relaxed);
        let oldest_kept = taken.max(posted.saturating_sub(PROBE_RING as u64));
        let mut taking = ProbeResults {
            results: Vec::new(),
            lost: oldest_kept - taken,
        };
        let mut next = oldest_kept;
        while next < posted {
            let (tag, result) = ProbeResult::unpack(slot.probe_ring[next as usize % PROBE_RING].load(Relaxed));
            let ahead = tag.wrapping_sub(entry_tag(next)) as i32;
            if ahead < 0 {
                break;
            }
            if ahead == 0 {
                taking.results.push(result);
            } else {
                // Overwritten by a later result since `posted` was read.
                taking.lost += 1;
            }
            next += 1;
        }
        slot.probes_taken.store(next, Relaxed);
        taking
    }

    /// Empties the slot for another service. Atomic stores, field by field,
    /// and the leader state under this lead: a process that still reads the
    /// slot sees each field old or new, never torn.
    fn reset_slot(&mut self) {
        // Taken apart so that a field added later cannot be left out.
        let ServiceSlot {
            generation,
            name_len,
            name,
            state,
            load_milli,
            delay_us,
            drop_ppm,
            refuse_ppm,
            readings,
            reading_at_ms,
            next_tick_ms,
            lead_pid: _, // held by this lead, freed when it drops
            next_probe_ms,
            probes_posted,
            probes_taken,
            probe_ring,
            leader: _, // below, through this lead
            counters,
            history,
            changes,
        } = self.slot;
        let words = [generation, next_tick_ms, next_probe_ms, probes_posted, probes_taken];
        for word in words.into_iter().chain(name).chain(probe_ring).chain(reading_at_ms) {
            word.store(0, Relaxed);
        }
        for word in [name_len, state, load_milli, delay_us, drop_ppm, refuse_ppm] {
            word.store(0, Relaxed);
        }
        for reading in readings {
            reading.store(0, Relaxed);
        }
        counters.reset();
        history.clear();
        changes.clear();
        *self.leader_state() = LeaderState::default();
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // Frees the lead only if it is still this process's.
        let _ = self.slot.lead_pid.compare_exchange(self.pid, 0, Release, Relaxed);
    }
}

#[repr(C)]
pub struct Table {
    magic: AtomicU64,
    /// The configuration generation: each successful `assign` starts one.
    generation: AtomicU64,
    /// DNS cookie secret for services without a secret file: made once
    /// when the table is created, so every worker, and every configuration
    /// after a reload, agrees on it.
    cookie_secret: SharedSecret,
    pub slots: [ServiceSlot; MAX_SERVICES],
    /// Response rate limiting counts (see `rrl`), shared by all services.
    pub rrl: RateTable,
    /// The addresses each service gives out (by slot index), when they
    /// come from an address file or UPDATE (see `address_slot`).
    pub addresses: [AddressSlot; MAX_SERVICES],
}

#[derive(Debug, PartialEq, Eq)]
pub struct TableFull;

impl Table {
    /// Prepares zeroed (or previously used) memory as a table. A new table
    /// keeps `cookie_secret` and `rrl_key` (both fresh random secrets); a
    /// table kept across a reload keeps the ones it has.
    ///
    /// # Safety
    /// `memory` must be valid for `size_of::<Table>()` bytes, aligned, and
    /// not used by another process while this runs.
    pub unsafe fn init<'a>(memory: *mut u8, cookie_secret: [u8; 16], rrl_key: [u8; 16]) -> &'a Table {
        let table = &*(memory as *const Table);
        if table.magic.load(Relaxed) != LAYOUT_MAGIC {
            std::ptr::write_bytes(memory, 0, std::mem::size_of::<Table>());
            table.cookie_secret.store(cookie_secret);
            table.rrl.key.store(rrl_key);
            table.magic.store(LAYOUT_MAGIC, Relaxed);
        }
        table
    }

    pub fn cookie_secret(&self) -> [u8; 16] {
        self.cookie_secret.load()
    }

    /// Gives each configured service name a slot, as the next configuration
    /// generation. A service keeps the slot it had (so counters and health
    /// survive a reload); a new one takes an empty slot, else a retired one.
    ///
    /// A slot is retired when its service is no longer configured. After a
    /// reload the workers of the previous configuration live on until their
    /// connections end, still counting into its slots, so a retired slot is
    /// reused only when its generation is at least two behind: after the
    /// reload that dropped its service, one more reload. This takes the
    /// workers of a configuration to be gone by the reload after next,
    /// which nginx does not promise (a long TCP connection keeps its worker),
    /// so a slot whose lead is held by a live process is not reused either.
    ///
    /// Only one process may assign at a time (nginx's master, loading a
    /// configuration). `TableFull` leaves the generation as it was; slots
    /// given out before it stay marked with the generation that failed,
    /// which only delays their reuse.
    pub fn assign(&self, names: &[&[u8]]) -> Result<Vec<usize>, TableFull> {
        let generation = self.generation.load(Relaxed) + 1;
        let names: Vec<&[u8]> = names.iter().map(|n| &n[..n.len().min(MAX_NAME)]).collect();
        // Mark the slots that services keep first, so that none of them
        // looks retired when new services are placed.
        let kept: Vec<Option<usize>> = names.iter().map(|name| self.slot_named(name)).collect();
        for &index in kept.iter().flatten() {
            self.slots[index].generation.store(generation, Relaxed);
        }
        let mut assigned = Vec::with_capacity(names.len());
        for (name, kept) in names.iter().zip(kept) {
            // A name listed twice finds the slot placed for it just before.
            let index = match kept.or_else(|| self.slot_named(name)) {
                Some(index) => index,
                None => self.place(name, generation)?,
            };
            assigned.push(index);
        }
        self.generation.store(generation, Relaxed);
        Ok(assigned)
    }

    /// The slot, in use or retired, of service `name`.
    fn slot_named(&self, name: &[u8]) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.generation() != 0 && *slot.name() == *name)
    }

    /// Gives `name` a slot for `generation`: an empty one, else the one
    /// retired longest (see `assign`).
    fn place(&self, name: &[u8], generation: u64) -> Result<usize, TableFull> {
        let mut reusable: Vec<usize> = (0..MAX_SERVICES)
            .filter(|&index| {
                let last = self.slots[index].generation();
                last == 0 || generation.saturating_sub(last) >= 2
            })
            .collect();
        // Empty slots have generation 0, so they come first.
        reusable.sort_by_key(|&index| self.slots[index].generation());
        let pid = std::process::id();
        for index in reusable {
            let slot = &self.slots[index];
            if let Some(mut lead) = slot.lock(pid, process_exists) {
                lead.reset_slot();
                self.addresses[index].reset();
                slot.set_name(name);
                slot.generation.store(generation, Relaxed);
                return Ok(index);
            }
        }
        Err(TableFull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::state::Reading;

    /// Pids of two live processes, for tests that choose who is alive.
    const ME: u32 = 100;
    const OTHER: u32 = 200;

    fn table() -> (Vec<u64>, &'static Table) {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [7; 16], [8; 16]) };
        let table: &'static Table = unsafe { &*(table as *const Table) };
        (memory, table)
    }

    fn service_names(count: usize) -> Vec<Vec<u8>> {
        (0..count).map(|i| format!("s{i}.example").into_bytes()).collect()
    }

    #[test]
    fn every_named_rcode_is_counted_under_its_name() {
        let c = Counters::default();
        for (code, count) in [(0, 3), (2, 2), (3, 1), (5, 4), (1, 1), (4, 1), (16, 1), (6, 2), (9, 1)] {
            for _ in 0..count {
                c.response(code, false);
            }
        }
        let counted: Vec<(&str, u64)> = RCODES
            .iter()
            .enumerate()
            .map(|(i, (_, name))| (*name, c.rcode[i].load(Relaxed)))
            .collect();
        assert_eq!(
            counted,
            [
                ("NOERROR", 3),
                ("NXDOMAIN", 1),
                ("SERVFAIL", 2),
                ("REFUSED", 4),
                ("FORMERR", 1),
                ("NOTIMP", 1),
                ("BADVERS", 1),
                ("other", 3),
            ],
            "SERVFAIL has its own counter; YXDOMAIN and NOTAUTH are other"
        );
    }

    #[test]
    fn slots_survive_reassignment() {
        let (_memory, table) = table();
        let first = table.assign(&[b"www.example.com", b"api.example.com"]).unwrap();
        table.slots[first[1]].counters.queries_udp.fetch_add(5, Relaxed);
        let second = table.assign(&[b"api.example.com", b"new.example.com"]).unwrap();
        assert_eq!(second[0], first[1]);
        assert_eq!(table.slots[second[0]].counters.queries_udp.load(Relaxed), 5);
        assert_eq!(&*table.slots[second[1]].name(), b"new.example.com");
        let long = [b'x'; MAX_NAME + 10];
        let kept = table.assign(&[&long]).unwrap();
        assert_eq!(&*table.slots[kept[0]].name(), &long[..MAX_NAME]);
        let many = service_names(MAX_SERVICES + 1);
        let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        assert_eq!(table.assign(&refs), Err(TableFull));
    }

    #[test]
    fn empty_slots_are_preferred_to_retired_ones() {
        let (_memory, table) = table();
        let ab = table.assign(&[b"a.example", b"b.example"]).unwrap();
        table.assign(&[b"a.example"]).unwrap();
        table.assign(&[b"a.example"]).unwrap();
        let ac = table.assign(&[b"a.example", b"c.example"]).unwrap();
        assert_eq!(ac[0], ab[0]);
        assert_ne!(ac[1], ab[1]);
        assert_eq!(&*table.slots[ab[1]].name(), b"b.example");
    }

    #[test]
    fn a_retired_slot_is_reused_only_after_another_reload() {
        let (_memory, table) = table();
        let names = service_names(MAX_SERVICES);
        let all: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let gone = table.assign(&all).unwrap()[0];
        let slot = &table.slots[gone];
        slot.counters.queries_udp.fetch_add(5, Relaxed);
        slot.post_probe_result(true, None);
        slot.try_lead(0, 250, ME).unwrap().leader_state().conditions = 1;

        // Replacing s0 at once: its workers may still count into its slot.
        let mut replaced = all.clone();
        replaced[0] = b"new.example";
        assert_eq!(table.assign(&replaced), Err(TableFull));
        table.assign(&all[1..]).unwrap();
        // One reload later its slot is reused, emptied.
        assert_eq!(table.assign(&replaced).unwrap()[0], gone);
        assert_eq!(&*slot.name(), b"new.example");
        assert_eq!(slot.counters.queries_udp.load(Relaxed), 0);
        let mut lead = slot.try_lead(0, 250, ME).unwrap();
        assert_eq!(lead.leader_state().conditions, 0);
        assert_eq!(lead.take_probe_results(), ProbeResults::default());
    }

    #[test]
    fn a_retired_slot_whose_lead_is_held_is_not_reused() {
        let (_memory, table) = table();
        let names = service_names(MAX_SERVICES);
        let all: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let gone = table.assign(&all).unwrap()[0];
        table.assign(&all[1..]).unwrap();
        table.assign(&all[1..]).unwrap();
        // A live process (the one that started this test) leads it.
        let parent = std::os::unix::process::parent_id();
        std::mem::forget(table.slots[gone].try_lead(0, 250, parent).unwrap());
        let mut replaced = all.clone();
        replaced[0] = b"new.example";
        assert_eq!(table.assign(&replaced), Err(TableFull));
        table.slots[gone].lead_pid.store(0, Relaxed);
        assert_eq!(table.assign(&replaced).unwrap()[0], gone);
    }

    #[test]
    fn the_cookie_secret_is_kept_when_the_table_is_reused() {
        let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
        let first = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [1; 16], [3; 16]) };
        let first = (first.cookie_secret(), first.rrl.key.load());
        let again = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [2; 16], [4; 16]) };
        let again = (again.cookie_secret(), again.rrl.key.load());
        assert_eq!((first, again), (([1; 16], [3; 16]), ([1; 16], [3; 16])));
    }

    #[test]
    fn one_leader_per_tick() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        assert!(slot.try_lead(1000, 250, ME).is_some());
        assert!(slot.try_lead(1000, 250, OTHER).is_none());
        assert!(slot.try_lead(1249, 250, OTHER).is_none());
        assert!(slot.try_lead(1250, 250, OTHER).is_some());
    }

    #[test]
    fn a_stalled_leader_keeps_the_lead() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        let alive = |_: u32| true;
        let mut stalled = slot.try_lead_checking(1000, 250, ME, alive).unwrap();
        stalled.leader_state().conditions = 7;
        // Ticks come due while the leader is stalled: nobody else leads.
        assert!(slot.try_lead_checking(1250, 250, OTHER, alive).is_none());
        assert!(slot.try_lead_checking(9000, 250, OTHER, alive).is_none());
        drop(stalled);
        let mut next = slot.try_lead_checking(9000, 250, OTHER, alive).unwrap();
        assert_eq!(next.leader_state().conditions, 7);
        drop(next);
        assert!(
            slot.try_lead_checking(9000, 250, ME, alive).is_none(),
            "one evaluation per interval"
        );
    }

    #[test]
    fn the_lead_of_a_dead_process_is_taken_over() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        // The leader dies holding the lead.
        std::mem::forget(slot.try_lead(1000, 250, ME).unwrap());
        assert!(slot.try_lead_checking(1250, 250, OTHER, |_| true).is_none());
        assert!(slot.try_lead_checking(1250, 250, OTHER, |pid| pid != ME).is_some());
    }

    #[test]
    fn the_process_check_tells_a_dead_pid() {
        assert!(process_exists(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!process_exists(pid));
    }

    #[test]
    fn the_leader_gets_every_probe_result_in_order() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        let mut lead = slot.try_lead(0, 250, ME).unwrap();
        assert_eq!(lead.take_probe_results(), ProbeResults::default());
        slot.post_probe_result(true, Some(0.5));
        slot.post_probe_result(false, None);
        slot.post_probe_result(true, None);
        let results = vec![
            ProbeResult {
                ok: true,
                load: Some(0.5),
            },
            ProbeResult { ok: false, load: None },
            ProbeResult { ok: true, load: None },
        ];
        assert_eq!(lead.take_probe_results(), ProbeResults { results, lost: 0 });
        assert_eq!(lead.take_probe_results(), ProbeResults::default());
    }

    #[test]
    fn rise_and_fall_count_probes_not_ticks() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        // What the leader does each tick with the probes that finished.
        let tick = |now| {
            let mut lead = slot.try_lead(now, 250, ME).unwrap();
            let taken = lead.take_probe_results();
            let probe = &mut lead.leader_state().probe;
            for result in taken.results {
                probe.record(result.ok, result.load, 3, 3);
            }
            probe.reading()
        };
        slot.post_probe_result(true, Some(0.25));
        assert_eq!(tick(0), Reading::Load(0.25));
        // Probes every 100 ms: three failures between two ticks.
        for _ in 0..3 {
            slot.post_probe_result(false, None);
        }
        assert_eq!(tick(250), Reading::Down);
    }

    #[test]
    fn results_beyond_the_ring_are_lost_oldest_first() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        for i in 0..PROBE_RING + 4 {
            slot.post_probe_result(true, Some(i as f64 / 1000.0));
        }
        let taken = slot.try_lead(0, 250, ME).unwrap().take_probe_results();
        assert_eq!(taken.lost, 4);
        assert_eq!(taken.results.len(), PROBE_RING);
        assert_eq!(taken.results[0].load, Some(0.004));
        assert_eq!(taken.results[PROBE_RING - 1].load, Some(0.019));
    }

    #[test]
    fn a_result_still_being_written_waits_for_the_next_take() {
        let (_memory, table) = table();
        let slot = &table.slots[0];
        let mut lead = slot.try_lead(0, 250, ME).unwrap();
        // A worker inside `post_probe_result`: numbered, not yet written.
        let seq = slot.probes_posted.fetch_add(1, Relaxed);
        slot.post_probe_result(false, None);
        assert_eq!(lead.take_probe_results(), ProbeResults::default());
        let late = ProbeResult { ok: true, load: None };
        slot.probe_ring[seq as usize % PROBE_RING].store(late.pack(seq), Relaxed);
        let results = lead.take_probe_results().results;
        assert_eq!(results, [late, ProbeResult { ok: false, load: None }]);
    }
}
