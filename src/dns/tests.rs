//! Engine tests. Responses are decoded with the `domain` crate, an
//! independent DNS implementation, rather than with the engine's own code.

use super::config::{parse_addresses, parse_host, ZoneConfig};
use super::wire::rcode;
use super::zone::{QueryContext, Transport, Zone};
use domain::base::iana::{Class, Opcode, OptRcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name as DName, ParsedName};
use domain::rdata::{Aaaa, Ns, Soa, A};
use octseq::OctetsBuilder;
use std::net::IpAddr;
use std::str::FromStr;

mod addresses;
mod dnssec;

const NS: [&str; 3] = ["ns1-www.example.com", "ns2-www.example.com", "ns3-www.example.com"];

fn config() -> ZoneConfig {
    let mut c = ZoneConfig::new(parse_host("www.example.com").unwrap());
    c.nameservers = NS.iter().map(|n| parse_host(n).unwrap()).collect();
    c
}

fn udp_from(addr: &str) -> QueryContext<'static> {
    QueryContext {
        local_addr: Some(addr.parse().unwrap()),
        random: 7,
        ..QueryContext::new(Transport::Udp)
    }
}

fn udp() -> QueryContext<'static> {
    udp_from("127.0.0.1")
}

fn tcp() -> QueryContext<'static> {
    QueryContext {
        transport: Transport::Tcp,
        ..udp()
    }
}

struct Q {
    name: &'static str,
    rtype: Rtype,
    class: Class,
    rd: bool,
    opcode: Opcode,
    edns: Option<(u16, u8, bool, Vec<(u16, Vec<u8>)>)>,
}

fn q(name: &'static str, rtype: Rtype) -> Q {
    Q {
        name,
        rtype,
        class: Class::IN,
        rd: false,
        opcode: Opcode::QUERY,
        edns: None,
    }
}

impl Q {
    fn edns(mut self, payload: u16, version: u8, dnssec_ok: bool, options: Vec<(u16, Vec<u8>)>) -> Q {
        self.edns = Some((payload, version, dnssec_ok, options));
        self
    }

    fn wire(&self) -> Vec<u8> {
        let mut msg = MessageBuilder::new_vec();
        msg.header_mut().set_id(0xbeef);
        msg.header_mut().set_rd(self.rd);
        msg.header_mut().set_opcode(self.opcode);
        let mut question = msg.question();
        question
            .push((DName::<Vec<u8>>::from_str(self.name).unwrap(), self.rtype, self.class))
            .unwrap();
        let mut additional = question.additional();
        if let Some((payload, version, dnssec_ok, options)) = &self.edns {
            additional
                .opt(|opt| {
                    opt.set_udp_payload_size(*payload);
                    opt.set_version(*version);
                    opt.set_dnssec_ok(*dnssec_ok);
                    for (code, data) in options {
                        opt.push_raw_option((*code).into(), data.len() as u16, |t| t.append_slice(data))?;
                    }
                    Ok(())
                })
                .unwrap();
        }
        additional.finish()
    }
}

fn respond(zone: &Zone, msg: &[u8], ctx: &QueryContext) -> Option<Vec<u8>> {
    let mut out = vec![0u8; 65535];
    let answered = zone.respond(msg, ctx, &mut out)?;
    out.truncate(answered.len);
    Some(out)
}

fn ask(zone: &Zone, query: &Q, ctx: &QueryContext) -> Message<Vec<u8>> {
    let wire = respond(zone, &query.wire(), ctx).expect("a response");
    Message::from_octets(wire).unwrap()
}

fn a_records(msg: &Message<Vec<u8>>) -> Vec<(String, u32)> {
    msg.answer()
        .unwrap()
        .limit_to::<A>()
        .map(|r| {
            let r = r.unwrap();
            (r.data().addr().to_string(), r.ttl().as_secs())
        })
        .collect()
}

fn soa_of(section: domain::base::message::RecordSection<'_, Vec<u8>>) -> Vec<(Soa<ParsedName<&[u8]>>, u32)> {
    section
        .limit_to::<Soa<ParsedName<_>>>()
        .map(|r| {
            let r = r.unwrap();
            (r.data().clone(), r.ttl().as_secs())
        })
        .collect()
}

#[test]
fn apex_a_auto_uses_local_address() {
    let zone = Zone::build(&config()).unwrap();
    let msg = ask(&zone, &q("www.example.com", Rtype::A), &udp());
    let h = msg.header();
    assert!(h.qr() && h.aa() && !h.ra() && !h.tc() && !h.rd());
    assert_eq!(h.id(), 0xbeef);
    assert_eq!(h.rcode(), Rcode::NOERROR);
    assert_eq!(a_records(&msg), vec![("127.0.0.1".to_string(), 10)]);
    let other = ask(&zone, &q("www.example.com", Rtype::A), &udp_from("192.0.2.77"));
    assert_eq!(a_records(&other), vec![("192.0.2.77".to_string(), 10)]);
}

#[test]
fn apex_aaaa_auto_is_nodata_over_ipv4_and_answers_over_ipv6() {
    let zone = Zone::build(&config()).unwrap();
    let msg = ask(&zone, &q("www.example.com", Rtype::AAAA), &udp());
    assert_eq!(msg.header().rcode(), Rcode::NOERROR);
    assert_eq!(msg.header_counts().ancount(), 0);
    assert_eq!(soa_of(msg.authority().unwrap()).len(), 1);
    let v6 = ask(&zone, &q("www.example.com", Rtype::AAAA), &udp_from("2001:db8::53"));
    let addrs: Vec<String> = v6
        .answer()
        .unwrap()
        .limit_to::<Aaaa>()
        .map(|r| r.unwrap().data().addr().to_string())
        .collect();
    assert_eq!(addrs, vec!["2001:db8::53"]);
    let mapped = ask(&zone, &q("www.example.com", Rtype::A), &udp_from("::ffff:192.0.2.9"));
    assert_eq!(a_records(&mapped), vec![("192.0.2.9".to_string(), 10)]);
}

#[test]
fn explicit_addresses() {
    let mut c = config();
    c.addresses = parse_addresses(["192.0.2.1", "192.0.2.2", "2001:db8::1"]).unwrap();
    c.ttl = 300;
    let zone = Zone::build(&c).unwrap();
    let msg = ask(&zone, &q("www.example.com", Rtype::A), &udp_from("127.0.0.5"));
    assert_eq!(
        a_records(&msg),
        vec![("192.0.2.1".into(), 300), ("192.0.2.2".into(), 300)]
    );
    let msg = ask(&zone, &q("www.example.com", Rtype::AAAA), &udp());
    assert_eq!(msg.header_counts().ancount(), 1);
}

#[test]
fn apex_ns_soa_any() {
    let zone = Zone::build(&config()).unwrap();
    let msg = ask(&zone, &q("www.example.com", Rtype::NS), &udp());
    let names: Vec<String> = msg
        .answer()
        .unwrap()
        .limit_to::<Ns<ParsedName<_>>>()
        .map(|r| r.unwrap().data().nsdname().to_string())
        .collect();
    assert_eq!(names, NS);
    assert!(msg.header().aa());

    let msg = ask(&zone, &q("www.example.com", Rtype::SOA), &udp());
    let soa = soa_of(msg.answer().unwrap());
    assert_eq!(soa.len(), 1);
    let (soa, ttl) = &soa[0];
    assert_eq!(*ttl, 10);
    assert_eq!(soa.mname().to_string(), "ns1-www.example.com");
    assert_eq!(soa.rname().to_string(), "hostmaster.www.example.com");
    assert_eq!(soa.serial().into_int(), zone.serial());
    assert_eq!(
        (
            soa.refresh().as_secs(),
            soa.retry().as_secs(),
            soa.expire().as_secs(),
            soa.minimum().as_secs()
        ),
        (3600, 600, 604800, 10)
    );

    // RFC 8482: one RRset only.
    let msg = ask(&zone, &q("www.example.com", Rtype::ANY), &udp());
    assert_eq!(msg.header_counts().ancount(), 1);
    assert_eq!(a_records(&msg).len(), 1);
    assert!(msg.header().aa());
}

#[test]
fn negative_answers() {
    let mut c = config();
    c.soa_minimum = 5;
    let zone = Zone::build(&c).unwrap();
    for rtype in [Rtype::MX, Rtype::TXT, Rtype::DS, Rtype::from_int(65280)] {
        let msg = ask(&zone, &q("www.example.com", rtype), &udp());
        assert_eq!(msg.header().rcode(), Rcode::NOERROR);
        assert_eq!(msg.header_counts().ancount(), 0);
        let soa = soa_of(msg.authority().unwrap());
        assert_eq!(soa[0].1, 5, "negative TTL = min(TTL, minimum)");
        assert!(msg.header().aa());
    }
    for name in ["foo.www.example.com", "a.b.WWW.example.COM"] {
        let msg = ask(&zone, &q(name, Rtype::A), &udp());
        assert_eq!(msg.header().rcode(), Rcode::NXDOMAIN);
        assert!(msg.header().aa());
        let soa = soa_of(msg.authority().unwrap());
        assert_eq!(soa.len(), 1);
        assert_eq!(soa[0].0.mname().to_string(), "ns1-www.example.com");
        let owner = msg.authority().unwrap().next().unwrap().unwrap().owner().to_string();
        assert_eq!(owner.to_lowercase(), "www.example.com");
    }
}

#[test]
fn refused_outside_zone_and_other_classes() {
    let zone = Zone::build(&config()).unwrap();
    for name in ["example.com", "www.example.org", "xwww.example.com", "com", "."] {
        let msg = ask(&zone, &q(name, Rtype::A), &udp());
        assert_eq!(msg.header().rcode(), Rcode::REFUSED, "{name}");
        assert!(!msg.header().aa());
        assert_eq!(msg.header_counts().qdcount(), 1);
        assert_eq!(msg.header_counts().ancount() + msg.header_counts().nscount(), 0);
    }
    let mut chaos = q("www.example.com", Rtype::TXT);
    chaos.class = Class::CH;
    assert_eq!(ask(&zone, &chaos, &udp()).header().rcode(), Rcode::REFUSED);
    assert_eq!(
        ask(&zone, &q("www.example.com", Rtype::AXFR), &tcp()).header().rcode(),
        Rcode::REFUSED
    );
}

#[test]
fn letter_case_rd_cd_and_opcode() {
    let zone = Zone::build(&config()).unwrap();
    let mut query = q("wWw.ExAmPlE.cOm", Rtype::A);
    query.rd = true;
    let wire = respond(&zone, &query.wire(), &udp()).unwrap();
    assert_eq!(&wire[12..29], b"\x03wWw\x07ExAmPlE\x03cOm\x00");
    let msg = Message::from_octets(wire).unwrap();
    assert!(msg.header().rd());
    assert_eq!(a_records(&msg).len(), 1);

    let mut with_cd = query.wire();
    with_cd[3] |= 0x10;
    let wire = respond(&zone, &with_cd, &udp()).unwrap();
    assert_eq!(wire[3] & 0x10, 0x10, "CD copied");

    for opcode in [Opcode::NOTIFY, Opcode::UPDATE, Opcode::STATUS, Opcode::IQUERY] {
        let mut query = q("www.example.com", Rtype::SOA);
        query.opcode = opcode;
        let msg = ask(&zone, &query, &udp());
        assert_eq!(msg.header().rcode(), Rcode::NOTIMP);
        assert_eq!(msg.header().opcode(), opcode);
    }
}

#[test]
fn malformed_queries() {
    let zone = Zone::build(&config()).unwrap();
    let good = q("www.example.com", Rtype::A).wire();
    // QR=1 and short packets: silence.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(respond(&zone, &response, &udp()).is_none());
    assert!(respond(&zone, &good[..11], &udp()).is_none());
    // QDCOUNT 0 / 2 and truncated questions: FORMERR.
    for (qdcount, len) in [(0u8, good.len()), (2, good.len()), (1, 17), (1, 30)] {
        let mut bad = good[..len].to_vec();
        bad[5] = qdcount;
        let wire = respond(&zone, &bad, &udp()).expect("FORMERR");
        assert_eq!(wire[3] & 0x0f, rcode::FORMERR as u8);
        assert_eq!(&wire[0..2], &[0xbe, 0xef]);
    }
    // qtype OPT is not a question.
    assert_eq!(
        ask(&zone, &q("www.example.com", Rtype::OPT), &udp()).header().rcode(),
        Rcode::FORMERR
    );
}

#[test]
fn edns_echo_badvers_nsid() {
    let mut c = config();
    c.nsid = Some(b"test-host-1".to_vec());
    let zone = Zone::build(&c).unwrap();
    let msg = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(4096, 0, true, vec![(65001, vec![1, 2])]),
        &udp(),
    );
    let opt = msg.opt().expect("OPT echoed");
    assert_eq!(opt.udp_payload_size(), 1232);
    assert_eq!(opt.version(), 0);
    assert!(opt.dnssec_ok());
    assert_eq!(a_records(&msg).len(), 1);
    assert_eq!(
        opt.opt().iter::<domain::base::opt::AllOptData<_, _>>().count(),
        0,
        "no NSID unless asked"
    );

    let msg = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(1232, 0, false, vec![(3, vec![])]),
        &udp(),
    );
    let opt = msg.opt().unwrap();
    assert!(!opt.dnssec_ok());
    let nsid: Vec<Vec<u8>> = opt
        .opt()
        .iter::<domain::base::opt::Nsid<_>>()
        .map(|o| o.unwrap().as_slice().to_vec())
        .collect();
    assert_eq!(nsid, vec![b"test-host-1".to_vec()]);

    let msg = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(1232, 1, false, vec![]),
        &udp(),
    );
    let opt = msg.opt().expect("OPT in BADVERS");
    assert_eq!(opt.rcode(msg.header()), OptRcode::BADVERS);
    assert_eq!(opt.version(), 0);
    assert_eq!(msg.header_counts().ancount(), 0);

    let plain = ask(&zone, &q("www.example.com", Rtype::A), &udp());
    assert!(plain.opt().is_none(), "no OPT without EDNS in the query");
}

fn many_addresses() -> Zone {
    let mut c = config();
    let list: Vec<String> = (1..=40).map(|i| format!("10.0.0.{i}")).collect();
    c.addresses = parse_addresses(list.iter().map(String::as_str)).unwrap();
    Zone::build(&c).unwrap()
}

#[test]
fn truncation() {
    let zone = many_addresses();
    let msg = ask(&zone, &q("www.example.com", Rtype::A), &udp());
    assert!(msg.header().tc());
    assert!(msg.header().aa());
    assert_eq!(msg.header_counts().ancount(), 0);
    assert_eq!(msg.header_counts().qdcount(), 1);
    let msg = ask(&zone, &q("www.example.com", Rtype::A), &tcp());
    assert!(!msg.header().tc());
    assert_eq!(a_records(&msg).len(), 40);
    let msg = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(1232, 0, false, vec![]),
        &udp(),
    );
    assert!(!msg.header().tc());
    assert_eq!(a_records(&msg).len(), 40);
    // A client payload below 512 still gets 512 (RFC 6891 §6.2.5).
    let msg = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(100, 0, false, vec![]),
        &udp(),
    );
    assert!(msg.header().tc());
    assert!(msg.opt().is_some());
    // A too-small output buffer truncates instead of overflowing.
    let mut small = [0u8; 64];
    let query = q("www.example.com", Rtype::A).wire();
    let answered = zone.respond(&query, &tcp(), &mut small).unwrap();
    assert!(answered.truncated);
    let mut tiny = [0u8; 20];
    assert!(zone.respond(&query, &tcp(), &mut tiny).is_none());
}

#[test]
fn ttl_jitter_stays_in_range() {
    let mut c = config();
    c.ttl = 100;
    c.ttl_jitter = 50;
    let zone = Zone::build(&c).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for random in 0..200u32 {
        let ctx = QueryContext {
            random: random.wrapping_mul(2654435761),
            ..udp()
        };
        let msg = ask(&zone, &q("www.example.com", Rtype::A), &ctx);
        let ttl = a_records(&msg)[0].1;
        assert!((50..=100).contains(&ttl), "{ttl}");
        seen.insert(ttl);
    }
    assert!(seen.len() > 10);
}

#[test]
fn max_response_len_bounds_every_answer() {
    let zone = many_addresses();
    let mut out = vec![0u8; zone.max_response_len()];
    let name = "a".repeat(63);
    let long = format!("{name}.{name}.{name}.www.example.com");
    let long: &'static str = Box::leak(long.into_boxed_str());
    for query in [
        q(long, Rtype::A).edns(4096, 0, true, vec![(3, vec![])]),
        q("www.example.com", Rtype::A),
    ] {
        let answered = zone.respond(&query.wire(), &tcp(), &mut out).unwrap();
        assert!(!answered.truncated);
    }
}

/// Property-style check over many random and mutated queries: the engine
/// never panics, never writes past `len`, and every response it produces is
/// a well-formed DNS message answering the query's ID.
#[test]
fn random_queries_give_well_formed_answers() {
    let zone = many_addresses();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let seeds: Vec<Vec<u8>> = vec![
        q("www.example.com", Rtype::A).wire(),
        q("x.www.example.com", Rtype::AAAA)
            .edns(4096, 0, true, vec![(3, vec![])])
            .wire(),
        q("www.example.org", Rtype::NS).wire(),
    ];
    let mut out = vec![0u8; 65535];
    for i in 0..20000 {
        let mut msg = seeds[i % seeds.len()].clone();
        match next() % 4 {
            0 => {
                let len = (next() % 64) as usize;
                msg = (0..len).map(|_| next() as u8).collect();
            }
            1 => {
                for _ in 0..(next() % 4 + 1) {
                    let at = (next() as usize) % msg.len();
                    msg[at] = next() as u8;
                }
            }
            2 => {
                let len = (next() as usize) % (msg.len() + 1);
                msg.truncate(len);
            }
            _ => msg.extend((0..next() % 16).map(|_| next() as u8)),
        }
        let transport = if next() % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let ctx = QueryContext {
            local_addr: Some(IpAddr::from([127, 0, 0, 1])),
            random: next() as u32,
            ..QueryContext::new(transport)
        };
        if let Some(answered) = zone.respond(&msg, &ctx, &mut out) {
            let wire = out[..answered.len].to_vec();
            if transport == Transport::Udp {
                assert!(wire.len() <= 4096);
            }
            let parsed = Message::from_octets(wire).expect("header");
            assert!(parsed.header().qr());
            assert_eq!(parsed.header().id(), u16::from_be_bytes([msg[0], msg[1]]));
            for section in [parsed.answer(), parsed.authority(), parsed.additional()] {
                for record in section.expect("sections parse") {
                    record.expect("record parses");
                }
            }
        }
    }
}

#[test]
fn refuse_keeps_id_and_question() {
    let zone = Zone::build(&config()).unwrap();
    let mut out = [0u8; 512];
    let query = q("www.example.com", Rtype::A).edns(1232, 0, false, vec![]).wire();
    let answered = zone.refuse(&query, &udp(), &mut out).unwrap();
    let msg = Message::from_octets(out[..answered.len].to_vec()).unwrap();
    assert_eq!(msg.header().rcode(), Rcode::REFUSED);
    assert_eq!(msg.header().id(), 0xbeef);
    assert!(!msg.header().aa());
    assert_eq!(msg.header_counts().qdcount(), 1);
    assert!(msg.opt().is_some());
}

#[test]
fn wildcard_answers_names_below_the_apex() {
    let mut c = config();
    c.wildcard = true;
    let zone = Zone::build(&c).unwrap();
    let msg = ask(&zone, &q("Host1.www.example.com", Rtype::A), &udp());
    assert_eq!(msg.header().rcode(), Rcode::NOERROR);
    assert!(msg.header().aa());
    let records: Vec<_> = msg.answer().unwrap().limit_to::<A>().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].owner().to_string(), "Host1.www.example.com");
    assert_eq!(records[0].data().addr().to_string(), "127.0.0.1");
    let msg = ask(&zone, &q("x.y.www.example.com", Rtype::MX), &udp());
    assert_eq!(msg.header().rcode(), Rcode::NOERROR);
    assert_eq!(msg.header_counts().ancount(), 0);
    let soa_owner = msg.authority().unwrap().next().unwrap().unwrap().owner().to_string();
    assert_eq!(soa_owner, "www.example.com");
    // `*.www.example.com` itself is answered as the wildcard; the names
    // below it are not (it is their closest encloser, RFC 4592 §2.2.1).
    let msg = ask(&zone, &q("*.www.example.com", Rtype::A), &udp());
    assert_eq!(a_records(&msg).len(), 1);
    let msg = ask(&zone, &q("x.*.www.example.com", Rtype::A), &udp());
    assert_eq!(msg.header().rcode(), Rcode::NXDOMAIN);
    // The apex and outside names are unchanged.
    assert_eq!(a_records(&ask(&zone, &q("www.example.com", Rtype::A), &udp())).len(), 1);
    assert_eq!(
        ask(&zone, &q("www.example.org", Rtype::A), &udp()).header().rcode(),
        Rcode::REFUSED
    );
}

#[test]
fn dns_cookies() {
    use super::cookie::{server_cookie, CookieSecrets};
    let zone = Zone::build(&config()).unwrap();
    let secrets = CookieSecrets {
        current: *b"0123456789abcdef",
        previous: None,
    };
    let ip: IpAddr = "192.0.2.33".parse().unwrap();
    let ctx = QueryContext {
        client_addr: Some(ip),
        now: 1_800_000_000,
        cookies: Some(&secrets),
        ..udp()
    };
    let cookie_of = |msg: &Message<Vec<u8>>| -> Option<Vec<u8>> {
        msg.opt()?
            .opt()
            .iter::<domain::base::opt::AllOptData<_, _>>()
            .find_map(|o| match o.unwrap() {
                domain::base::opt::AllOptData::Cookie(c) => {
                    let mut v = c.client().as_ref().to_vec();
                    v.extend(c.server().map(|s| s.as_ref().to_vec()).unwrap_or_default());
                    Some(v)
                }
                _ => None,
            })
    };
    // Client cookie only: answered, with client + server cookie.
    let query = q("www.example.com", Rtype::A).edns(1232, 0, false, vec![(10, b"clientck".to_vec())]);
    let mut out = vec![0u8; 4096];
    let answered = zone.respond(&query.wire(), &ctx, &mut out).unwrap();
    assert_eq!(answered.cookie, Some(super::cookie::CookieStatus::ClientOnly));
    let msg = Message::from_octets(out[..answered.len].to_vec()).unwrap();
    assert_eq!(a_records(&msg).len(), 1);
    let cookie = cookie_of(&msg).expect("cookie in the response");
    assert_eq!(&cookie[..8], b"clientck");
    assert_eq!(&cookie[8..], &server_cookie(&secrets.current, b"clientck", ip, ctx.now));
    // Sent back: valid.
    let back = q("www.example.com", Rtype::A).edns(1232, 0, false, vec![(10, cookie.clone())]);
    let answered = zone.respond(&back.wire(), &ctx, &mut out).unwrap();
    assert_eq!(answered.cookie, Some(super::cookie::CookieStatus::Valid));
    // From another address: invalid, but still answered normally.
    let other = QueryContext {
        client_addr: Some("192.0.2.34".parse().unwrap()),
        ..ctx
    };
    let answered = zone.respond(&back.wire(), &other, &mut out).unwrap();
    assert_eq!(answered.cookie, Some(super::cookie::CookieStatus::Invalid));
    assert_eq!(answered.rcode, 0);
    // A malformed cookie option: FORMERR.
    let bad = q("www.example.com", Rtype::A).edns(1232, 0, false, vec![(10, b"short".to_vec())]);
    assert_eq!(ask(&zone, &bad, &ctx).header().rcode(), Rcode::FORMERR);
    // Cookie-only query (no question): NOERROR with a cookie, BADCOOKIE when
    // the server cookie is invalid, FORMERR without a cookie.
    let only = |cookie: Vec<u8>| {
        let mut wire = q("www.example.com", Rtype::A)
            .edns(1232, 0, false, vec![(10, cookie)])
            .wire();
        let qlen = 17 + 4;
        wire.drain(12..12 + qlen);
        wire[5] = 0;
        wire
    };
    let answered = zone.respond(&only(b"clientck".to_vec()), &ctx, &mut out).unwrap();
    assert_eq!((answered.rcode, answered.qtype), (0, None));
    let msg = Message::from_octets(out[..answered.len].to_vec()).unwrap();
    assert!(cookie_of(&msg).is_some());
    let answered = zone.respond(&only(cookie.clone()), &other, &mut out).unwrap();
    assert_eq!(answered.rcode, 23, "BADCOOKIE");
    let msg = Message::from_octets(out[..answered.len].to_vec()).unwrap();
    assert_eq!(msg.opt().unwrap().rcode(msg.header()), OptRcode::BADCOOKIE);
    let mut no_cookie = q("www.example.com", Rtype::A).wire();
    no_cookie.truncate(12);
    no_cookie[5] = 0;
    assert_eq!(respond(&zone, &no_cookie, &ctx).map(|w| w[3] & 0x0f), Some(1));
    // Cookies off: the option is ignored.
    let answered = zone.respond(&query.wire(), &udp(), &mut out).unwrap();
    assert_eq!(answered.cookie, None);
    assert!(cookie_of(&Message::from_octets(out[..answered.len].to_vec()).unwrap()).is_none());
}

/// Every input kept in the fuzz corpora (seeds, and reproducers of any
/// crash ever found) goes through the same checks under `cargo test`.
#[test]
fn fuzz_corpora_stay_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let zone = many_addresses();
    let mut out = vec![0u8; zone.max_response_len()];
    let mut seen = 0;
    for target in ["query_parser", "answer_builder", "tcp_framing"] {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for entry in dir.flatten() {
            let data = std::fs::read(entry.path()).unwrap();
            seen += 1;
            let _ = super::query::parse(&data);
            let _ = super::framing::next_frame(&data);
            for transport in [Transport::Udp, Transport::Tcp] {
                if let Some(a) = zone.respond(
                    &data,
                    &QueryContext {
                        ..QueryContext::new(transport)
                    },
                    &mut out,
                ) {
                    assert!(a.len <= out.len());
                    assert_eq!(&out[..2], &data[..2]);
                }
            }
        }
    }
    assert!(seen > 0, "the corpora are in fuzz/corpus");
}

#[test]
fn slip_is_a_bare_truncated_reply() {
    let zone = Zone::build(&config()).unwrap();
    let mut out = [0u8; 512];
    let a = zone
        .slip(&q("www.example.com", Rtype::A).wire(), &udp(), &mut out)
        .unwrap();
    let msg = Message::from_octets(out[..a.len].to_vec()).unwrap();
    assert!(msg.header().tc() && msg.header().qr());
    assert_eq!(msg.header_counts().ancount(), 0);
    assert_eq!(msg.header_counts().qdcount(), 1);
}
