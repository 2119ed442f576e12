//! A zone answering with other addresses (`Zone::with_addresses`, what each
//! worker does when an address file or an UPDATE changes them): same
//! zone otherwise, and a signed zone signed again, checked by the `domain`
//! crate's validator.

use super::dnssec::{assert_secure, dnssec, ecdsa_key, now, sign};
use super::{a_records, ask, config, q, udp_from};
use crate::dns::config::parse_addresses;
use crate::dns::zone::Zone;
use domain::base::iana::Rtype;
use std::sync::Arc;

#[test]
fn other_addresses_same_zone() {
    let mut c = config();
    c.addresses = parse_addresses(["192.0.2.1"]).unwrap();
    let zone = Zone::build(&c).unwrap();
    let moved = zone
        .with_addresses(parse_addresses(["192.0.2.7", "192.0.2.8"]).unwrap(), now())
        .unwrap();
    let msg = ask(&moved, &q("www.example.com", Rtype::A), &udp_from("127.0.0.1"));
    let addrs: Vec<String> = a_records(&msg).into_iter().map(|(a, _)| a).collect();
    assert_eq!(addrs, ["192.0.2.7", "192.0.2.8"]);
    assert_eq!(moved.config().nameservers, zone.config().nameservers);
    assert!(moved.signed().is_none());
    // No address at all: NODATA, with the SOA.
    let none = zone
        .with_addresses(parse_addresses(Vec::<&str>::new()).unwrap(), now())
        .unwrap();
    let msg = ask(&none, &q("www.example.com", Rtype::A), &udp_from("127.0.0.1"));
    assert_eq!((msg.header_counts().ancount(), msg.header_counts().nscount()), (0, 1));
    // Back to the local address.
    let auto = moved.with_addresses(parse_addresses(["auto"]).unwrap(), now()).unwrap();
    let msg = ask(&auto, &q("www.example.com", Rtype::A), &udp_from("127.0.0.9"));
    assert_eq!(a_records(&msg)[0].0, "127.0.0.9");
}

#[test]
fn a_signed_zone_is_signed_again() {
    let mut c = config();
    c.addresses = parse_addresses(["192.0.2.1"]).unwrap();
    let (zone, anchors) = sign(&c, vec![ecdsa_key()], vec![], now(), &[]);
    let moved = zone
        .with_addresses(parse_addresses(["192.0.2.7", "2001:db8::7"]).unwrap(), now())
        .unwrap();
    let moved = Arc::new(moved);
    let msg = assert_secure(&moved, &anchors, &dnssec("www.example.com", Rtype::A), "127.0.0.1");
    assert_eq!(a_records(&msg)[0].0, "192.0.2.7");
    assert_secure(&moved, &anchors, &dnssec("www.example.com", Rtype::AAAA), "127.0.0.1");
    assert_secure(&moved, &anchors, &dnssec("www.example.com", Rtype::SOA), "127.0.0.1");
    assert_secure(&moved, &anchors, &dnssec("nope.www.example.com", Rtype::A), "127.0.0.1");
    // Through a list and back to `auto`: the local addresses are signed on
    // demand again, as after a start (`Answered::missing_signatures`).
    let mut a = config();
    a.addresses = parse_addresses(["auto"]).unwrap();
    let (zone, anchors) = sign(&a, vec![ecdsa_key()], vec![], now(), &["127.0.0.1"]);
    let kept = Arc::new(zone.with_addresses(parse_addresses(["auto"]).unwrap(), now()).unwrap());
    assert_secure(&kept, &anchors, &dnssec("www.example.com", Rtype::A), "127.0.0.1");
    let listed = zone
        .with_addresses(parse_addresses(["192.0.2.9"]).unwrap(), now())
        .unwrap();
    let mut back = listed
        .with_addresses(parse_addresses(["auto"]).unwrap(), now())
        .unwrap();
    let mut out = vec![0u8; back.max_response_len()];
    let query = dnssec("www.example.com", Rtype::A).wire();
    let answered = back.respond(&query, &udp_from("127.0.0.1"), &mut out).unwrap();
    assert_eq!(answered.missing_signatures, Some("127.0.0.1".parse().unwrap()));
    back.add_signed_address("127.0.0.1".parse().unwrap()).unwrap();
    let back = Arc::new(back);
    let msg = assert_secure(&back, &anchors, &dnssec("www.example.com", Rtype::A), "127.0.0.1");
    assert_eq!(a_records(&msg)[0].0, "127.0.0.1");
}

/// With an address map and update keys, queries (plain, with EDNS, and
/// TSIG-signed ones) still take the path without allocation.
#[test]
fn dynamic_services_answer_without_allocating() {
    use super::dnssec::counting;
    use crate::dns::addrset::AddressMap;
    use crate::dns::tsig::{parse_key_file, sign_request};
    use crate::dns::zone::{QueryContext, Transport};
    use crate::dynamic::{Dynamic, Staged};
    use crate::health::policy::Silence;
    use crate::health::shared::Table;
    use crate::serve::{Service, Settings, Shared};

    let key = "key \"k\" { algorithm hmac-sha256; secret \"c2VjcmV0\"; };";
    let mut c = config();
    c.addresses = parse_addresses(["auto"]).unwrap();
    let zone = Zone::build(&c).unwrap();
    let staged = Staged {
        keys: Some(("k".into(), parse_key_file(key).unwrap())),
        map: Some(AddressMap::parse(["127.0.0.1=203.0.113.7"]).unwrap()),
        ..Staged::default()
    };
    let dynamic = Dynamic::new("www.example.com".into(), c.addresses.clone(), staged, None);
    let mut memory = vec![0u64; std::mem::size_of::<Table>() / 8 + 1];
    let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [7; 16], [8; 16]) };
    let settings = Settings {
        rate_limit: None,
        silence: Silence::Refuse,
        delay_queue: 16,
    };
    let service = Service {
        zone: &std::cell::RefCell::new(zone),
        settings: &settings,
        shared: Some(Shared { table, index: 0 }),
        dynamic: Some(&dynamic),
    };
    let now = 1_700_000_000;
    let signed = {
        let mut m = q("www.example.com", Rtype::SOA).wire();
        m.resize(m.len() + 200, 0);
        let len = m.len() - 200;
        let (len, _) = sign_request(&parse_key_file(key).unwrap()[0], &mut m, len, now.into()).unwrap();
        m.truncate(len);
        m
    };
    let queries = [
        q("www.example.com", Rtype::A).wire(),
        q("www.example.com", Rtype::A).edns(1232, 0, false, vec![]).wire(),
        signed,
    ];
    let ctx = QueryContext {
        local_addr: Some("127.0.0.1".parse().unwrap()),
        client_addr: Some("127.0.0.2".parse().unwrap()),
        now,
        ..QueryContext::new(Transport::Udp)
    };
    let mut out = vec![0u8; service.max_response_len()];
    // The answer carries the public address, and the signed query an answer.
    let served = service.answer(&queries[0], &ctx, &mut out, 0, None);
    let crate::serve::Outcome::Send(len) = served.outcome else {
        panic!("answered")
    };
    assert_eq!(&out[len - 4..len], &[203, 0, 113, 7]);
    let served = service.answer(&queries[2], &ctx, &mut out, 0, None);
    assert_eq!(served.reason, crate::serve::Reason::Managed);
    let before = counting::count();
    for query in &queries {
        for _ in 0..10 {
            service.answer(query, &ctx, &mut out, 0, None);
        }
    }
    assert_eq!(counting::count() - before, 0, "a query allocated");
}
