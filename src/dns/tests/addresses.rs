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
