//! Engine micro-benchmark: parse + select + patch per query, for each class
//! of query, without nginx. The `-do` classes ask a zone signed with a test
//! key with the DO bit: they copy signed templates, and sign nothing. `cargo bench --bench engine` prints ns per query;
//! `scripts/engine-instructions` runs it under callgrind for instruction
//! counts, which are repeatable on a noisy machine.
//!
//! Usage: engine [ITERATIONS] [CLASS]

use ngx_stream_dns_service_module::dns::config::{parse_host, ZoneConfig};
use ngx_stream_dns_service_module::dns::{keyfile, QueryContext, SigningSettings, Transport, Zone, ZoneKeys};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// `query` with EDNS and the DO bit.
fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut msg = query(name, qtype, true);
    let flags_at = msg.len() - 4;
    msg[flags_at] = 0x80;
    msg
}

/// `zone` signed with the engine's test key, for queries on 127.0.0.1.
fn signed(config: &ZoneConfig) -> Zone {
    let key_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dns/testdata/Kwww.example.com.+013+19397");
    let key = keyfile::load_signing_key(&key_file, &config.apex).unwrap();
    let keys = Arc::new(ZoneKeys::new(&config.apex, vec![key], vec![]).unwrap());
    let mut zone = Zone::build(config).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let signed = zone
        .sign_for(keys, SigningSettings::default(), &[[127, 0, 0, 1].into()], now)
        .unwrap();
    zone.set_signed(signed).unwrap();
    zone
}

fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut msg = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    for label in name.split('.') {
        msg.push(label.len() as u8);
        msg.extend(label.as_bytes());
    }
    msg.push(0);
    msg.extend(qtype.to_be_bytes());
    msg.extend(1u16.to_be_bytes());
    if edns {
        msg.extend([0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    msg
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let iterations: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let only = args.get(1).cloned();

    let mut config = ZoneConfig::new(parse_host("www.example.com").unwrap());
    config.nameservers = ["ns1-www.example.com", "ns2-www.example.com", "ns3-www.example.com"]
        .iter()
        .map(|n| parse_host(n).unwrap())
        .collect();
    let zone = Zone::build(&config).unwrap();
    let signed_zone = signed(&config);
    let ctx = QueryContext {
        local_addr: Some([127, 0, 0, 1].into()),
        random: 7,
        ..QueryContext::new(Transport::Udp)
    };

    let classes: Vec<(&str, &Zone, Vec<u8>)> = vec![
        ("apex-A", &zone, query("www.example.com", 1, false)),
        ("apex-A-mixed-case-edns", &zone, query("wWw.ExAmPlE.com", 1, true)),
        ("apex-AAAA-nodata", &zone, query("www.example.com", 28, false)),
        ("apex-NS", &zone, query("www.example.com", 2, false)),
        ("apex-SOA", &zone, query("www.example.com", 6, false)),
        ("nxdomain", &zone, query("host7.www.example.com", 1, false)),
        ("refused", &zone, query("www.example.org", 1, false)),
        ("signed-apex-A-edns", &signed_zone, query("www.example.com", 1, true)),
        ("apex-A-do", &signed_zone, query_do("www.example.com", 1)),
        ("apex-AAAA-nodata-do", &signed_zone, query_do("www.example.com", 28)),
        ("apex-DNSKEY-do", &signed_zone, query_do("www.example.com", 48)),
        ("nxdomain-do", &signed_zone, query_do("host7.www.example.com", 1)),
    ];
    let mut out = vec![0u8; 4096];
    println!("| query class | ns/query | response bytes |");
    println!("|---|---|---|");
    for (name, zone, msg) in &classes {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let mut len = 0;
        let start = Instant::now();
        for _ in 0..iterations {
            let answered = zone.respond(black_box(msg), black_box(&ctx), black_box(&mut out));
            len = answered.map_or(0, |a| a.len);
        }
        let ns = start.elapsed().as_nanos() as f64 / iterations as f64;
        println!("| {name} | {ns:.1} | {len} |");
    }
}
