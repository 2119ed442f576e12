//! A zone built from fuzzer-chosen settings, signed or not, answers a
//! fuzzer-chosen query: never panics, never writes past the buffer, and
//! every response starts with the query's ID and fits the transport's
//! limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ngx_stream_dns_service_module::dns::config::{parse_addresses, parse_host, ZoneConfig};
use ngx_stream_dns_service_module::dns::dnssec::{PublicKey, SigningKey, SigningSettings, ZoneKeys};
use ngx_stream_dns_service_module::dns::keyfile::{parse_private_key, parse_public_key};
use ngx_stream_dns_service_module::dns::{Name, QueryContext, Transport, Zone};
use std::sync::Arc;

/// The engine's Ed25519 test key (deterministic signatures), for whatever
/// apex the fuzzer picked.
fn test_key(apex: &Name) -> SigningKey {
    let public = include_str!("../../src/dns/testdata/Kwww.example.com.+015+54010.key");
    let private = include_str!("../../src/dns/testdata/Kwww.example.com.+015+54010.private");
    let public = parse_public_key(public, "test.key").unwrap();
    let (_, private) = parse_private_key(private, "test.private").unwrap();
    let public = PublicKey::new(apex.clone(), public.flags(), public.algorithm(), public.key().to_vec()).unwrap();
    SigningKey::new(public, &private).unwrap()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (settings, query) = data.split_at(8);
    let mut config = ZoneConfig::new(
        parse_host(["www.example.com", "a.b", "x", "svc.example.net"][settings[0] as usize % 4]).unwrap(),
    );
    config.nameservers = (0..1 + settings[1] % 4)
        .map(|i| parse_host(&format!("ns{i}.example.org")).unwrap())
        .collect();
    let addresses: Vec<String> = (0..settings[2] % 48)
        .map(|i| {
            if i % 3 == 0 {
                format!("2001:db8::{i:x}")
            } else {
                format!("10.0.{}.{i}", settings[3])
            }
        })
        .collect();
    if !addresses.is_empty() {
        config.addresses = parse_addresses(addresses.iter().map(String::as_str)).unwrap();
    }
    config.ttl = 1 + u32::from(settings[4]) * 7;
    config.ttl_jitter = u32::from(settings[5]) % config.ttl;
    config.edns_payload = 512 + u16::from(settings[6]) * 14;
    config.nsid = (settings[7] & 1 == 1).then(|| vec![b'n'; usize::from(settings[7] >> 1)]);
    config.wildcard = settings[7] & 2 == 2;
    let Ok(mut zone) = Zone::build(&config) else { return };
    let local = if settings[3] & 1 == 0 {
        [127, 0, 0, 1].into()
    } else {
        std::net::IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])
    };
    if settings[7] & 4 == 4 {
        // Signed, with or without signatures for the local address (then
        // DO queries get SERVFAIL and name the address).
        let keys = Arc::new(ZoneKeys::new(&config.apex, vec![test_key(&config.apex)], vec![]).unwrap());
        let locals = if settings[7] & 8 == 8 { vec![local] } else { vec![] };
        let Ok(signed) = zone.sign_for(keys, SigningSettings::default(), &locals, 1_800_000_000) else {
            return;
        };
        zone.set_signed(signed).unwrap();
    }
    for transport in [Transport::Udp, Transport::Tcp] {
        let secrets = ngx_stream_dns_service_module::dns::cookie::CookieSecrets {
            current: [settings[1]; 16],
            previous: None,
        };
        let ctx = QueryContext {
            local_addr: Some(local),
            random: u32::from(settings[5]) * 31,
            client_addr: Some(local),
            now: u32::from(settings[4]) << 20,
            cookies: (settings[0] & 4 == 4).then_some(&secrets),
            ..QueryContext::new(transport)
        };
        let mut out = vec![0u8; zone.max_response_len()];
        if let Some(answered) = zone.respond(query, &ctx, &mut out) {
            assert!(answered.len >= 12 && answered.len <= out.len());
            assert_eq!(&out[..2], &query[..2]);
            assert_eq!(out[2] & 0x80, 0x80, "QR set");
            if transport == Transport::Udp {
                assert!(answered.len <= 4096);
            }
        }
    }
});
