//! The per-worker tick: every worker runs it, and for each service the one
//! worker that wins the tick (see `ServiceSlot::try_lead`) reads the load
//! and health sources, evaluates the state and publishes the shedding shape
//! that all workers apply per query. Probes are started the same way, and
//! every worker renews its DNSSEC signatures when they are due.

use crate::conf::{LoadConf, MainConf, SrvConf};
use crate::health::history::{Cause, Change, Served};
use crate::health::settings::HostSource;
use crate::health::shared::{Lead, ServiceSlot, Source, Table};
use crate::health::sources::{self, FileCondition, FileRead};
use crate::health::state::{Reading, State};
use crate::log::{notice, warning};
use crate::util::guard;
use ngx::ffi::{ngx_add_timer, ngx_current_msec, ngx_cycle, ngx_cycle_t, ngx_event_t};
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

/// How often workers look at the sources (a load file change or a drain
/// takes effect within one tick plus one read).
pub const TICK_MS: u64 = 250;
/// Longest load file read (a figure or a word; anything longer is garbage).
const MAX_FILE: usize = 256;

static mut TICK_EVENT: ngx_event_t = unsafe { std::mem::zeroed() };

/// Runs the tick on the next turn of the event loop (an accepted UPDATE:
/// this worker answers with the new addresses at once; the others follow
/// on their own ticks).
pub unsafe fn soon() {
    let ev = ptr::addr_of_mut!(TICK_EVENT);
    if (*ev).timer_set() != 0 {
        // ngx_add_timer keeps a timer that moves less than its lazy delay.
        ngx::ffi::ngx_del_timer(ev);
        ngx_add_timer(ev, 1);
    }
}

/// Starts the tick in this worker.
pub unsafe fn start(cycle: *mut ngx_cycle_t) {
    let ev = ptr::addr_of_mut!(TICK_EVENT);
    (*ev).handler = Some(tick);
    (*ev).log = (*cycle).log;
    (*ev).data = ptr::null_mut();
    // A graceful shutdown does not wait for this timer.
    (*ev).set_cancelable(1);
    ngx_add_timer(ev, 1);
}

unsafe extern "C" fn tick(ev: *mut ngx_event_t) {
    guard((), || {
        let cycle = ngx_cycle as *mut ngx_cycle_t;
        if let Some(main) = MainConf::of_cycle(cycle) {
            crate::signing::refresh_all(main, ngx::ffi::ngx_time() as u64, (*cycle).log);
            if let Some(table) = main.table() {
                for &conf in &main.services {
                    run_service(&*conf, table, (*cycle).log);
                    crate::addresses::refresh(conf, table, (*cycle).log);
                }
            }
        }
    });
    if ngx::ffi::ngx_exiting == 0 && ngx::ffi::ngx_quit == 0 && ngx::ffi::ngx_terminate == 0 {
        ngx_add_timer(ev, TICK_MS as _);
    }
}

unsafe fn run_service(conf: &SrvConf, table: &Table, log: *mut ngx::ffi::ngx_log_t) {
    let Some(index) = conf.load.slot else { return };
    let slot = &table.slots[index];
    let now = ngx_current_msec as u64;
    if let Some(mut lead) = slot.try_lead(now, TICK_MS, std::process::id()) {
        evaluate(conf, slot, &mut lead, now, log);
        crate::addresses::lead(conf, table, index, now, log);
    }
    if let Some(probe) = &conf.load.probe {
        if slot.try_probe(now, probe.interval_ms) {
            crate::probe::start(probe, slot, log);
        }
    }
}

/// Bits of `LeaderState::conditions`: sources in trouble, each logged once
/// when it starts and once when it ends.
#[derive(Clone, Copy)]
enum Condition {
    FileMissing = 1,
    FileUnreadable = 2,
    FileUnparseable = 4,
    ProbeFailing = 8,
    UpstreamDown = 16,
    HostUnreadable = 32,
}

impl Condition {
    const ALL: [Condition; 6] = [
        Condition::FileMissing,
        Condition::FileUnreadable,
        Condition::FileUnparseable,
        Condition::ProbeFailing,
        Condition::UpstreamDown,
        Condition::HostUnreadable,
    ];

    /// The log line for the condition starting (`active`) or ending.
    fn describe(self, load: &LoadConf, active: bool) -> String {
        let file = load.file.as_ref().map_or("", |f| f.path.as_str());
        let upstream = load.upstream.as_ref().map_or("", |u| u.name.as_str());
        match (self, active) {
            (Condition::FileMissing, true) => format!("load file \"{file}\" is missing"),
            (Condition::FileMissing, false) => format!("load file \"{file}\" exists again"),
            (Condition::FileUnreadable, true) => format!("load file \"{file}\" cannot be read"),
            (Condition::FileUnreadable, false) => format!("load file \"{file}\" can be read again"),
            (Condition::FileUnparseable, true) => {
                format!("load file \"{file}\" holds neither a load figure nor drain/down/up")
            }
            (Condition::FileUnparseable, false) => format!("load file \"{file}\" is valid again"),
            (Condition::ProbeFailing, true) => "health probe is failing".to_string(),
            (Condition::ProbeFailing, false) => "health probe is passing again".to_string(),
            (Condition::UpstreamDown, true) => format!("upstream \"{upstream}\" has no usable peer"),
            (Condition::UpstreamDown, false) => format!("upstream \"{upstream}\" has usable peers again"),
            (Condition::HostUnreadable, true) => "host pressure cannot be read".to_string(),
            (Condition::HostUnreadable, false) => "host pressure can be read again".to_string(),
        }
    }
}

fn read_file(path: &str) -> FileRead {
    match crate::util::read_regular_file(path, MAX_FILE) {
        Ok(buf) if buf.len() <= MAX_FILE => FileRead::Content(sources::parse_load_file(&buf)),
        Ok(_) => FileRead::Content(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileRead::Missing,
        Err(_) => FileRead::Unreadable,
    }
}

fn read_host(source: HostSource) -> Option<f64> {
    match source {
        HostSource::Psi => sources::parse_psi(&std::fs::read_to_string("/proc/pressure/cpu").ok()?),
        HostSource::LoadAverage => {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            sources::parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?, cpus)
        }
    }
}

unsafe fn evaluate(conf: &SrvConf, slot: &ServiceSlot, lead: &mut Lead, now: u64, log: *mut ngx::ffi::ngx_log_t) {
    let load = &conf.load;
    let probe_results = lead.take_probe_results();
    let leader = lead.leader_state();
    let unix_ms = crate::util::unix_ms();
    let mut readings: Vec<(Reading, bool)> = Vec::with_capacity(4);
    // The same readings by source, for the status page's "because of".
    let mut by_source: Vec<(Source, Reading)> = Vec::with_capacity(4);
    let mut conditions = 0u32;
    // `fresh`: the source gave this reading now (a probe only when one finished).
    let mut publish = |source: Source, reading: Reading, fresh: bool| {
        slot.readings[source as usize].store(reading.to_i32(), Relaxed);
        if fresh {
            slot.reading_at_ms[source as usize].store(unix_ms, Relaxed);
        }
        by_source.push((source, reading));
    };

    if let Some(up) = &load.upstream {
        let reading = crate::upstream::read(load.upstream_peers, up.capacity).unwrap_or(Reading::Load(0.0));
        if reading == Reading::Down {
            conditions |= Condition::UpstreamDown as u32;
        }
        readings.push((reading, true));
        publish(Source::Upstream, reading, true);
    }
    if let Some(probe) = &load.probe {
        let finished = !probe_results.results.is_empty();
        for result in probe_results.results {
            leader.probe.record(result.ok, result.load, probe.rise, probe.fall);
        }
        if probe_results.lost > 0 {
            warning!(
                log,
                "dns_service {}: {} probe results were lost (the tick fell behind)",
                String::from_utf8_lossy(&slot.name()),
                probe_results.lost
            );
        }
        // Logged when the failures take the application down (after
        // `fall`), not for each isolated failure.
        if leader.probe.status == 2 {
            conditions |= Condition::ProbeFailing as u32;
        }
        let reading = leader.probe.reading();
        readings.push((reading, false));
        publish(Source::Probe, reading, finished);
    }
    if let Some(file) = &load.file {
        let (reading, condition) = leader
            .file
            .update(read_file(&file.path), now, file.grace_ms, file.missing_is_bad);
        conditions |= match condition {
            FileCondition::Good => 0,
            FileCondition::Missing => Condition::FileMissing as u32,
            FileCondition::Unreadable => Condition::FileUnreadable as u32,
            FileCondition::Unparseable => Condition::FileUnparseable as u32,
        };
        readings.push((reading, false));
        publish(Source::File, reading, true);
    }
    if let Some(host) = load.host {
        let figure = read_host(host);
        if figure.is_none() {
            conditions |= Condition::HostUnreadable as u32;
        }
        let reading = Reading::Load(figure.unwrap_or(0.0));
        readings.push((reading, true));
        publish(Source::Host, reading, true);
    }

    let before = State::from_u32(leader.evaluator.state);
    let published = State::from_u32(slot.state.load(Relaxed));
    let was_initialized = leader.evaluator.initialized != 0;
    let verdict = leader.evaluator.update(now, &readings, load.smoothing_ms, &load.policy);
    slot.state.store(verdict.state as u32, Relaxed);
    slot.load_milli.store((verdict.load * 1000.0).round() as u32, Relaxed);
    slot.delay_us.store(verdict.shape.delay_us, Relaxed);
    slot.drop_ppm.store(verdict.shape.drop_ppm, Relaxed);
    slot.refuse_ppm.store(verdict.shape.refuse_ppm, Relaxed);
    // For the status page: the change as workers saw it (the first
    // evaluation of a service too), and one history entry per second.
    if !was_initialized || published != verdict.state {
        slot.changes.post(&Change {
            at_ms: unix_ms,
            from: was_initialized.then_some(published),
            to: verdict.state,
            load: verdict.load,
            cause: Cause::of(verdict.state, &by_source),
        });
    }
    let served = Served::of(&slot.counters);
    leader
        .history
        .tick(&slot.history, unix_ms, verdict.state, verdict.load, served);

    let service = String::from_utf8_lossy(&slot.name()).into_owned();
    if !was_initialized || before != verdict.state {
        notice!(
            log,
            "dns_service {service}: state {} (load {:.3}, delay {} ms, drop {:.1}%, refuse {:.1}%)",
            verdict.state.name(),
            verdict.load,
            verdict.shape.delay_us / 1000,
            f64::from(verdict.shape.drop_ppm) / 1e4,
            f64::from(verdict.shape.refuse_ppm) / 1e4
        );
    }
    let changed = conditions ^ leader.conditions;
    for condition in Condition::ALL {
        let bit = condition as u32;
        if changed & bit == 0 {
            continue;
        }
        let started = conditions & bit != 0;
        // A missing file is a normal, quiet state unless it counts as bad.
        let message = condition.describe(load, started);
        if started && !matches!(condition, Condition::FileMissing) {
            warning!(log, "dns_service {service}: {message}");
        } else {
            notice!(log, "dns_service {service}: {message}");
        }
    }
    leader.conditions = conditions;
}
