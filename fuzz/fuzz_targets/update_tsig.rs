//! UPDATE and TSIG on arbitrary bytes: the TSIG check, the UPDATE parser
//! and its prerequisite/update evaluation (unauthenticated, to reach it),
//! and the whole path a worker runs (`Dynamic::handle`, with a key and a
//! shared slot) never panic, never write past the buffer, and every
//! response starts with the message's ID. The corpus holds messages signed
//! with the key below at `NOW`, so valid signatures are reached too.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ngx_stream_dns_service_module::dns::addrset::AddressSet;
use ngx_stream_dns_service_module::dns::config::{parse_addresses, parse_host, ZoneConfig};
use ngx_stream_dns_service_module::dns::tsig::{self, parse_key_file};
use ngx_stream_dns_service_module::dns::update::{self, ZoneView};
use ngx_stream_dns_service_module::dns::{QueryContext, Transport, Zone};
use ngx_stream_dns_service_module::dynamic::{Dynamic, Staged};
use ngx_stream_dns_service_module::health::address_slot::AddressSlot;

pub const KEY: &str =
    "key \"test-key\" { algorithm hmac-sha256; secret \"WyQHmL3tltEgNr/ZfPtK7zilSg+o8phItqA3x29foVg=\"; };";
pub const NOW: u32 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let keys = parse_key_file(KEY).unwrap();
    let _ = tsig::check(data, &keys, u64::from(NOW));
    let _ = tsig::verify_response(&keys[0], &[0; 32], data, u64::from(NOW));

    let mut config = ZoneConfig::new(parse_host("www.example.com").unwrap());
    config.nameservers = vec![parse_host("ns1-www.example.com").unwrap()];
    config.addresses = parse_addresses(["192.0.2.1", "2001:db8::1"]).unwrap();
    config.wildcard = data.first().is_some_and(|b| b & 1 == 1);
    let zone = Zone::build(&config).unwrap();
    if let Ok(u) = update::parse(data) {
        let view = ZoneView {
            apex: zone.apex().wire(),
            nameservers: &config.nameservers,
            wildcard: config.wildcard,
            extra_types: &[],
            addresses: AddressSet::from_slice(&["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()]).unwrap(),
        };
        let _ = u.check_zone(zone.apex().wire());
        if let Ok(set) = u.apply(&view) {
            assert!(set.len() <= 16);
        }
    }

    let staged = Staged {
        keys: Some(("test".into(), keys)),
        ..Staged::default()
    };
    let dynamic = Dynamic::new("www.example.com".into(), config.addresses.clone(), staged, None);
    let slot = AddressSlot::default();
    let mut out = vec![0u8; 4096];
    for transport in [Transport::Udp, Transport::Tcp] {
        let ctx = QueryContext {
            now: NOW,
            local_addr: Some("127.0.0.1".parse().unwrap()),
            client_addr: Some("127.0.0.2".parse().unwrap()),
            ..QueryContext::new(transport)
        };
        if let Some(h) = dynamic.handle(&zone, Some(&slot), data, &ctx, &mut out) {
            assert!(h.len <= out.len());
            if h.len > 0 {
                assert_eq!(&out[..2], &data[..2]);
            }
        }
    }
});
