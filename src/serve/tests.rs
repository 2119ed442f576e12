//! Tests of the per-query decision.

use super::*;
use crate::dns::config::parse_host;
use crate::dns::ZoneConfig;
use crate::health::policy::PPM;
use crate::health::shared::{rcode_index, RCODES};
use std::cell::RefCell;

fn config() -> ZoneConfig {
    let mut c = ZoneConfig::new(parse_host("www.example.com").unwrap());
    c.nameservers = vec![parse_host("ns1-www.example.com").unwrap()];
    c
}

fn zone() -> RefCell<Zone> {
    RefCell::new(Zone::build(&config()).unwrap())
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

fn rcode_of(zone: &RefCell<Zone>, settings: &Settings, table: &Table, qctx: &QueryContext) -> (Served, u8) {
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

// ---- DNSSEC: signing for a local address first seen by a query -----------

/// `config` (with `dns_address auto`) signed with a test key, with
/// signatures for `locals` and room for `max_addresses`.
fn signed_zone(locals: &[&str], max_addresses: usize) -> RefCell<Zone> {
    let apex = parse_host("www.example.com").unwrap();
    let key_file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dns/testdata/Kwww.example.com.+013+19397");
    let key = crate::dns::keyfile::load_signing_key(&key_file, &apex).unwrap();
    let keys = std::sync::Arc::new(crate::dns::ZoneKeys::new(&apex, vec![key], vec![]).unwrap());
    let settings = crate::dns::SigningSettings {
        max_addresses,
        ..Default::default()
    };
    let locals: Vec<IpAddr> = locals.iter().map(|a| a.parse().unwrap()).collect();
    let mut zone = Zone::build(&config()).unwrap();
    let signed = zone.sign_for(keys, settings, &locals, 1_700_000_000).unwrap();
    zone.set_signed(signed).unwrap();
    RefCell::new(zone)
}

/// `www.example.com A` with EDNS and the DO bit.
fn dnssec_query() -> Vec<u8> {
    let mut q = query();
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
    q
}

fn on(local: &str) -> QueryContext<'static> {
    QueryContext {
        local_addr: Some(local.parse().unwrap()),
        ..udp(1)
    }
}

#[test]
fn a_dnssec_query_on_a_new_local_address_signs_it_and_is_answered() {
    let (_m, table) = table();
    let zone = signed_zone(&["127.0.0.1"], 64);
    let service = Service {
        zone: &zone,
        settings: &SETTINGS,
        shared: Some(Shared { table, index: 0 }),
        dynamic: None,
    };
    let mut out = [0u8; 1232];
    let served = service.answer(&dnssec_query(), &on("192.0.2.1"), &mut out, 0, None);
    assert_eq!(served.reason, Reason::Answered);
    assert_eq!(
        served.new_address,
        Some(NewAddress::Signed("192.0.2.1".parse().unwrap()))
    );
    assert_eq!(out[3] & 0x0f, 0, "NOERROR, not the first answer's SERVFAIL");
    assert_eq!(&out[6..8], &[0, 2], "the address and its RRSIG");
    let c = &table.slots[0].counters;
    assert_eq!(c.queries_udp.load(Relaxed), 1, "counted once");
    assert_eq!(c.rcode[0].load(Relaxed), 1);
    assert_eq!(c.rcode[rcode_index(2)].load(Relaxed), 0, "no SERVFAIL counted");

    let again = service.answer(&dnssec_query(), &on("192.0.2.1"), &mut out, 0, None);
    assert_eq!(again.new_address, None, "signed once");
    let known = service.answer(&dnssec_query(), &on("127.0.0.1"), &mut out, 0, None);
    assert_eq!(known.new_address, None, "signed at start");
    let plain = service.answer(&query(), &on("192.0.2.2"), &mut out, 0, None);
    assert_eq!(plain.new_address, None, "a query without DO needs no signatures");
    assert_eq!(
        zone.borrow().signed().unwrap().local_addresses().count(),
        2,
        "127.0.0.1 and 192.0.2.1"
    );
}

#[test]
fn a_full_table_of_signed_addresses_gives_servfail() {
    let (_m, table) = table();
    let zone = signed_zone(&["127.0.0.1"], 1);
    let service = Service {
        zone: &zone,
        settings: &SETTINGS,
        shared: Some(Shared { table, index: 0 }),
        dynamic: None,
    };
    let mut out = [0u8; 1232];
    let served = service.answer(&dnssec_query(), &on("192.0.2.1"), &mut out, 0, None);
    assert_eq!(
        served.new_address,
        Some(NewAddress::TableFull("192.0.2.1".parse().unwrap(), 1))
    );
    assert_eq!(served.reason, Reason::Answered);
    assert_eq!(out[3] & 0x0f, 2, "SERVFAIL");
    let c = &table.slots[0].counters;
    assert_eq!(c.rcode[rcode_index(2)].load(Relaxed), 1, "SERVFAIL counted as SERVFAIL");
    assert_eq!(c.rcode[RCODES.len() - 1].load(Relaxed), 0, "not as other");
    let known = service.answer(&dnssec_query(), &on("127.0.0.1"), &mut out, 0, None);
    assert_eq!(
        (known.new_address, out[3] & 0x0f),
        (None, 0),
        "the signed address still works"
    );
}

#[test]
fn a_silent_service_does_not_sign_refusals() {
    let (_m, table) = table();
    set_shape(table, 0, PPM);
    let zone = signed_zone(&["127.0.0.1"], 64);
    let service = Service {
        zone: &zone,
        settings: &SETTINGS,
        shared: Some(Shared { table, index: 0 }),
        dynamic: None,
    };
    let mut out = [0u8; 1232];
    let served = service.answer(&dnssec_query(), &on("127.0.0.1"), &mut out, 0, None);
    assert_eq!(served.reason, Reason::Refused);
    let Outcome::Send(len) = served.outcome else {
        panic!("REFUSED is sent")
    };
    assert_eq!(out[3] & 0x0f, 5);
    assert_eq!(&out[6..10], &[0, 0, 0, 0], "no answer or authority records");
    assert_eq!(&out[10..12], &[0, 1], "only the OPT record");
    assert!(len < 64, "no RRSIG anywhere ({len} octets)");
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
    assert_eq!(c.rcode[rcode_index(5)].load(Relaxed), 1, "REFUSED counted");
    assert_eq!(ActionTaken::Refused, Reason::ShedRefused.action());
}
