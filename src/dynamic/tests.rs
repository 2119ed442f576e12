//! The UPDATE/TSIG path end to end on plain Rust: messages signed as a
//! client signs them, answered by `Dynamic::handle`, the response checked
//! as the client checks it, and the shared slot and state file inspected.

use super::*;
use crate::dns::config::{parse_addresses, parse_host};
use crate::dns::tsig::{parse_key_file, sign_request, verify_response, ResponseError};
use crate::dns::update::{code, CLASS_ANY, CLASS_NONE, OPCODE};
use crate::dns::wire::class;
use crate::dns::{Transport, ZoneConfig};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Mutex;

const KEY: &str =
    "key \"update-key\" { algorithm hmac-sha256; secret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ=\"; };";
const OTHER_SECRET: &str =
    "key \"update-key\" { algorithm hmac-sha256; secret \"b3RoZXItb3RoZXItb3RoZXItb3RoZXItb3RoZXItMTI=\"; };";
const NOW: u32 = 1_700_000_000; // also the fuzz corpus's signing time

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn collect(level: Level, args: std::fmt::Arguments<'_>) {
    LOG.lock().unwrap().push(format!("{level:?}: {args}"));
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn wire(name: &str) -> Vec<u8> {
    parse_host(name).unwrap().wire().to_vec()
}

fn zone(addresses: &str) -> Zone {
    let mut c = ZoneConfig::new(parse_host("www.example.com").unwrap());
    c.nameservers = vec![parse_host("ns1-www.example.com").unwrap()];
    c.addresses = parse_addresses(addresses.split(' ')).unwrap();
    Zone::build(&c).unwrap()
}

struct Fixture {
    dynamic: Dynamic,
    slot: Box<AddressSlot>,
    dir: std::path::PathBuf,
}

fn fixture(name: &str, configured: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("dns-dynamic-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let staged = Staged {
        keys: Some(("k".into(), parse_key_file(KEY).unwrap())),
        file: Some(dir.join("addresses").to_string_lossy().into_owned()),
        ..Staged::default()
    };
    let state = dir.join("state").to_string_lossy().into_owned();
    let mut dynamic = Dynamic::new(
        "www.example.com".into(),
        parse_addresses(configured.split(' ')).unwrap(),
        staged,
        Some(state),
    );
    dynamic.log = Some(collect);
    Fixture {
        dynamic,
        slot: Box::default(),
        dir,
    }
}

/// (name, type, class, ttl, rdata)
type Rec<'a> = (&'a str, u16, u16, u32, Vec<u8>);

fn message(opcode: u8, zone: &str, qtype: u16, prerequisites: &[Rec], updates: &[Rec]) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, opcode << 3, 0, 0, 1];
    m.extend((prerequisites.len() as u16).to_be_bytes());
    m.extend((updates.len() as u16).to_be_bytes());
    m.extend([0, 0]);
    m.extend(wire(zone));
    m.extend(qtype.to_be_bytes());
    m.extend(class::IN.to_be_bytes());
    for (name, t, c, ttl, data) in prerequisites.iter().chain(updates) {
        m.extend(wire(name));
        m.extend(t.to_be_bytes());
        m.extend(c.to_be_bytes());
        m.extend(ttl.to_be_bytes());
        m.extend((data.len() as u16).to_be_bytes());
        m.extend(data);
    }
    m
}

fn replace_with(addr: &str) -> Vec<u8> {
    let data = match ip(addr) {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    let t = if ip(addr).is_ipv4() { rtype::A } else { rtype::AAAA };
    message(
        OPCODE,
        "www.example.com",
        rtype::SOA,
        &[],
        &[
            ("www.example.com", t, CLASS_ANY, 0, vec![]),
            ("www.example.com", t, class::IN, 60, data),
        ],
    )
}

/// Signs `msg` with the key in `key_file` at `at`; returns it and its MAC.
fn sign(msg: &[u8], key_file: &str, at: u64) -> (Vec<u8>, Vec<u8>) {
    let keys = parse_key_file(key_file).unwrap();
    let mut out = vec![0u8; msg.len() + 200];
    out[..msg.len()].copy_from_slice(msg);
    let (len, mac) = sign_request(&keys[0], &mut out, msg.len(), at).unwrap();
    out.truncate(len);
    (out, mac[..32].to_vec())
}

fn qctx() -> QueryContext<'static> {
    QueryContext {
        local_addr: Some(ip("127.0.0.1")),
        client_addr: Some(ip("127.0.0.2")),
        now: NOW,
        ..QueryContext::new(Transport::Udp)
    }
}

impl Fixture {
    fn send(&self, zone: &Zone, msg: &[u8]) -> (Handled, Vec<u8>) {
        let mut out = vec![0u8; 4096];
        let h = self
            .dynamic
            .handle(zone, Some(&self.slot), msg, &qctx(), &mut out)
            .unwrap();
        out.truncate(h.len);
        (h, out)
    }

    fn count(&self, r: UpdateResult) -> u64 {
        self.slot.updates[r as usize].load(Relaxed)
    }

    fn state_file(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("state")).ok()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_signed_update_replaces_the_address_everywhere() {
    let f = fixture("accept", "192.0.2.1");
    let z = zone("192.0.2.1");
    let (msg, mac) = sign(&replace_with("192.0.2.7"), KEY, NOW.into());
    let (h, resp) = f.send(&z, &msg);
    assert_eq!((h.rcode, h.update, h.qtype), (0, true, Some(rtype::SOA)));
    // The client accepts the signed response.
    let key = &parse_key_file(KEY).unwrap()[0];
    assert_eq!(verify_response(key, &mac, &resp, NOW.into()), Ok(()));
    assert_eq!(&resp[..2], &[0xab, 0xcd]);
    // Published for every worker, and saved.
    let p = f.slot.read().unwrap();
    assert_eq!(
        (p.state.origin, p.state.addresses.to_string()),
        (Origin::Update, "192.0.2.7".into())
    );
    assert_eq!(p.by, Some(ip("127.0.0.2")));
    let saved = SavedState::parse(f.state_file().unwrap().as_bytes()).unwrap();
    assert_eq!(saved, p.state);
    assert_eq!(f.count(UpdateResult::Accepted), 1);
    assert!(LOG.lock().unwrap().iter().any(|l| l.contains(
        "addresses now 192.0.2.7 (were 192.0.2.1), by UPDATE from 127.0.0.2 signed with key \"update-key\""
    )));
    // What every worker then builds its templates from.
    assert_eq!(
        f.dynamic.addresses_for(Some(&p.state)),
        Addresses::List(vec![ip("192.0.2.7")])
    );
    // The same update again changes nothing.
    let (again, _) = sign(&replace_with("192.0.2.7"), KEY, NOW.into());
    assert_eq!(f.send(&z, &again).0.rcode, 0);
    assert_eq!((f.count(UpdateResult::Unchanged), f.slot.version()), (1, 1));
}

#[test]
fn unsigned_and_badly_signed_updates_change_nothing() {
    let f = fixture("reject", "192.0.2.1");
    let z = zone("192.0.2.1");
    let update = replace_with("192.0.2.7");
    // Unsigned: REFUSED.
    let (h, resp) = f.send(&z, &update);
    assert_eq!(h.rcode, rcode::REFUSED);
    assert_eq!(resp[3] & 0x0f, 5);
    // Another secret: NOTAUTH with BADSIG, unsigned.
    let (bad, mac) = sign(&update, OTHER_SECRET, NOW.into());
    let (h, resp) = f.send(&z, &bad);
    assert_eq!(h.rcode, tsig::NOTAUTH);
    let key = &parse_key_file(OTHER_SECRET).unwrap()[0];
    assert_eq!(
        verify_response(key, &mac, &resp, NOW.into()),
        Err(ResponseError::Server(tsig::error::BADSIG))
    );
    // Another key name: BADKEY.
    let (unknown, mac) = sign(&update, &KEY.replace("update-key", "nobody"), NOW.into());
    let (_, resp) = f.send(&z, &unknown);
    let key = &parse_key_file(&KEY.replace("update-key", "nobody")).unwrap()[0];
    assert_eq!(
        verify_response(key, &mac, &resp, NOW.into()),
        Err(ResponseError::Server(tsig::error::BADKEY))
    );
    // Signed 10 minutes ago: BADTIME, signed, with our time.
    let (stale, mac) = sign(&update, KEY, u64::from(NOW) - 600);
    let (_, resp) = f.send(&z, &stale);
    let key = &parse_key_file(KEY).unwrap()[0];
    assert_eq!(
        verify_response(key, &mac, &resp, u64::from(NOW) - 600),
        Err(ResponseError::Server(tsig::error::BADTIME))
    );
    // A mangled TSIG record: FORMERR.
    let (mut mangled, _) = sign(&update, KEY, NOW.into());
    mangled.push(0);
    assert_eq!(f.send(&z, &mangled).0.rcode, rcode::FORMERR);
    assert_eq!(f.slot.read(), None, "nothing published");
    assert_eq!(f.state_file(), None, "nothing saved");
    for (r, n) in [
        (UpdateResult::Unsigned, 1),
        (UpdateResult::BadSig, 1),
        (UpdateResult::BadKey, 1),
        (UpdateResult::BadTime, 1),
        (UpdateResult::Formerr, 1),
    ] {
        assert_eq!(f.count(r), n, "{r:?}");
    }
}

#[test]
fn signed_updates_outside_the_policy_get_their_rcode() {
    let f = fixture("policy", "192.0.2.1");
    let z = zone("192.0.2.1");
    let a = |s: &str| match ip(s) {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(_) => unreachable!(),
    };
    let cases: Vec<(Vec<u8>, u16)> = vec![
        // Another zone.
        (message(OPCODE, "example.com", rtype::SOA, &[], &[]), code::NOTAUTH),
        // Names below the apex, and other types.
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[],
                &[("x.www.example.com", rtype::A, class::IN, 60, a("192.0.2.9"))],
            ),
            rcode::REFUSED,
        ),
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[],
                &[("www.example.com", 16, class::IN, 60, b"\x01x".to_vec())],
            ),
            rcode::REFUSED,
        ),
        // Outside the zone.
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[],
                &[("www.example.org", rtype::A, class::IN, 60, a("192.0.2.9"))],
            ),
            code::NOTZONE,
        ),
        // Prerequisites: the A RRset must be 192.0.2.9 (it is not); no AAAA exists.
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[("www.example.com", rtype::A, class::IN, 0, a("192.0.2.9"))],
                &[],
            ),
            code::NXRRSET,
        ),
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[("www.example.com", rtype::AAAA, CLASS_ANY, 0, vec![])],
                &[],
            ),
            code::NXRRSET,
        ),
        (
            message(
                OPCODE,
                "www.example.com",
                rtype::SOA,
                &[("www.example.com", rtype::A, CLASS_NONE, 0, vec![])],
                &[],
            ),
            code::YXRRSET,
        ),
    ];
    let key = &parse_key_file(KEY).unwrap()[0];
    for (msg, want) in cases {
        let (signed, mac) = sign(&msg, KEY, NOW.into());
        let (h, resp) = f.send(&z, &signed);
        assert_eq!(h.rcode, want);
        assert_eq!(verify_response(key, &mac, &resp, NOW.into()), Ok(()), "signed {want}");
    }
    assert_eq!(f.slot.read(), None);
    // A prerequisite that holds lets the update through.
    let guarded = message(
        OPCODE,
        "www.example.com",
        rtype::SOA,
        &[("www.example.com", rtype::A, class::IN, 0, a("192.0.2.1"))],
        &[
            ("www.example.com", rtype::A, CLASS_NONE, 0, a("192.0.2.1")),
            ("www.example.com", rtype::A, class::IN, 9, a("192.0.2.8")),
        ],
    );
    let (signed, _) = sign(&guarded, KEY, NOW.into());
    assert_eq!(f.send(&z, &signed).0.rcode, 0);
    assert_eq!(f.slot.read().unwrap().state.addresses.to_string(), "192.0.2.8");
    assert_eq!(f.count(UpdateResult::Prerequisite), 3);
}

#[test]
fn nsupdates_signed_soa_query_gets_a_signed_answer() {
    let f = fixture("query", "192.0.2.1");
    let z = zone("192.0.2.1");
    let query = message(0, "www.example.com", rtype::SOA, &[], &[]);
    let (signed, mac) = sign(&query, KEY, NOW.into());
    let (h, resp) = f.send(&z, &signed);
    assert_eq!((h.update, h.rcode, h.qtype), (false, 0, Some(rtype::SOA)));
    let key = &parse_key_file(KEY).unwrap()[0];
    assert_eq!(verify_response(key, &mac, &resp, NOW.into()), Ok(()));
    assert_eq!(&resp[6..8], &[0, 1], "the SOA answer");
    assert_eq!(f.slot.signed_queries.load(Relaxed), 1);
    // Unsigned queries and other opcodes take the ordinary path.
    let mut out = [0u8; 512];
    assert!(f.dynamic.handle(&z, Some(&f.slot), &query, &qctx(), &mut out).is_none());
    let notify = message(4, "www.example.com", rtype::SOA, &[], &[]);
    assert!(f
        .dynamic
        .handle(&z, Some(&f.slot), &notify, &qctx(), &mut out)
        .is_none());
    // Without update keys, UPDATE is not handled here (NOTIMP downstream).
    let mut no_keys = fixture("nokeys", "192.0.2.1");
    no_keys.dynamic.keys.clear();
    assert!(no_keys
        .dynamic
        .handle(&z, None, &replace_with("192.0.2.7"), &qctx(), &mut out)
        .is_none());
}

#[test]
fn under_auto_an_update_starts_from_the_local_address() {
    let f = fixture("auto", "auto");
    let z = zone("auto");
    let add = message(
        OPCODE,
        "www.example.com",
        rtype::SOA,
        &[("www.example.com", rtype::A, CLASS_ANY, 0, vec![])],
        &[("www.example.com", rtype::AAAA, class::IN, 60, ip_bytes("2001:db8::7"))],
    );
    let (signed, _) = sign(&add, KEY, NOW.into());
    assert_eq!(f.send(&z, &signed).0.rcode, 0);
    assert_eq!(
        f.slot.read().unwrap().state.addresses.to_string(),
        "127.0.0.1 2001:db8::7"
    );
}

fn ip_bytes(s: &str) -> Vec<u8> {
    match ip(s) {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[test]
fn an_update_that_cannot_be_saved_is_not_applied() {
    let mut f = fixture("nosave", "192.0.2.1");
    f.dynamic.state_path = Some(f.dir.join("missing-dir/state").to_string_lossy().into_owned());
    let (msg, _) = sign(&replace_with("192.0.2.7"), KEY, NOW.into());
    assert_eq!(f.send(&zone("192.0.2.1"), &msg).0.rcode, rcode::SERVFAIL);
    assert_eq!(f.slot.read(), None);
    assert_eq!(f.count(UpdateResult::Failed), 1);
    // Nor while another process holds the set's writer lock.
    f.dynamic.state_path = Some(f.dir.join("state").to_string_lossy().into_owned());
    let holder = f.slot.try_write(std::os::unix::process::parent_id()).unwrap();
    assert_eq!(f.send(&zone("192.0.2.1"), &msg).0.rcode, rcode::SERVFAIL);
    drop(holder);
    assert_eq!(f.send(&zone("192.0.2.1"), &msg).0.rcode, rcode::NOERROR);
    assert_eq!(f.count(UpdateResult::Failed), 2);
}

#[test]
fn files_decide_the_set_at_load() {
    let f = fixture("files", "192.0.2.1");
    let file = f.dynamic.file.clone().unwrap();
    // Nothing yet: the configured addresses; the slot stays empty.
    assert_eq!(f.dynamic.initial(5).0, None);
    assert_eq!(f.dynamic.publish_initial(&f.slot, 5), None);
    // A good address file.
    std::fs::write(&file, "203.0.113.7\n").unwrap();
    let (state, warnings) = f.dynamic.initial(5);
    assert!(warnings.is_empty());
    assert_eq!(state.unwrap().addresses.to_string(), "203.0.113.7");
    assert_eq!(f.dynamic.publish_initial(&f.slot, 5), Some(1));
    // Unchanged files publish nothing new.
    assert_eq!(f.dynamic.publish_initial(&f.slot, 6), None);
    // A saved UPDATE after that file: it stands.
    let saved = SavedState {
        origin: Origin::Update,
        changed: 7,
        addresses: AddressSet::from_slice(&[ip("192.0.2.7")]).unwrap(),
        file: Some(AddressSet::from_slice(&[ip("203.0.113.7")]).unwrap()),
    };
    f.dynamic.save(&saved).unwrap();
    assert_eq!(f.dynamic.initial(8).0, Some(saved));
    // A bad file is reported and does not count.
    std::fs::write(&file, "not an address\n").unwrap();
    let (state, warnings) = f.dynamic.initial(8);
    assert_eq!(state, Some(saved));
    assert!(warnings[0].contains("is not an IPv4 or IPv6 address"), "{warnings:?}");
    // A garbled state file is reported and ignored.
    std::fs::write(f.dir.join("state"), "origin maybe\n").unwrap();
    let (_, warnings) = f.dynamic.initial(8);
    assert!(
        warnings.iter().any(|w| w.contains("origin is config, file or update")),
        "{warnings:?}"
    );
    // A FIFO is not read (it would block).
    let fifo = f.dir.join("fifo");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert!(read_small_file(&fifo.to_string_lossy()).is_err());
    // The files gone: back to the configuration, published as such.
    std::fs::remove_file(&file).unwrap();
    std::fs::remove_file(f.dir.join("state")).unwrap();
    assert_eq!(f.dynamic.publish_initial(&f.slot, 9), Some(2));
    let p = f.slot.read().unwrap();
    assert_eq!(p.state.origin, Origin::Config);
    assert_eq!(
        f.dynamic.addresses_for(Some(&p.state)),
        parse_addresses(["192.0.2.1"]).unwrap()
    );
}

#[test]
fn the_map_applies_to_the_local_address() {
    let mut f = fixture("map", "auto");
    f.dynamic.map = AddressMap::parse(["127.0.0.1=203.0.113.7"]).unwrap();
    let mapped = f.dynamic.map_context(&qctx());
    assert_eq!(mapped.local_addr, Some(ip("203.0.113.7")));
    assert_eq!(mapped.client_addr, Some(ip("127.0.0.2")));
}

#[test]
fn glue_update_arguments() {
    let g = parse_glue_update(&["server=192.0.2.53", "name=ns1-www.example.com", "key=parent.key"]).unwrap();
    assert_eq!(g.server, "192.0.2.53:53".parse().unwrap());
    assert_eq!(
        (g.zone.to_string(), g.ttl, g.key.as_str()),
        ("example.com".into(), DEFAULT_GLUE_TTL, "parent.key")
    );
    let g = parse_glue_update(&[
        "server=[2001:db8::53]:5300",
        "name=ns1-www.example.com",
        "zone=www.example.com.invalid",
        "key=k",
    ]);
    assert!(g.unwrap_err().contains("is not below zone"));
    let g = parse_glue_update(&[
        "server=127.0.0.1:5300",
        "name=ns1.example.com",
        "key=k",
        "zone=example.com",
        "ttl=1h",
    ])
    .unwrap();
    assert_eq!((g.server.port(), g.ttl), (5300, 3600));
    assert!(parse_glue_update(&["name=ns1.example.com", "key=k"])
        .unwrap_err()
        .contains("server="));
    assert!(parse_glue_update(&["server=x", "name=ns1.example.com", "key=k"]).is_err());
    assert!(parse_glue_update(&["server=127.0.0.1", "name=ns1.example.com"])
        .unwrap_err()
        .contains("key="));
    assert!(parse_glue_update(&["server=127.0.0.1", "name=com", "key=k"]).is_err());
    assert!(parse_glue_update(&["port=1"]).is_err());
}

#[test]
fn the_status_says_what_is_given_out_and_why() {
    let f = fixture("status", "auto");
    let json = f.dynamic.status_json(&f.slot);
    assert!(
        json.starts_with("{\"origin\":\"config\",\"current\":\"auto\","),
        "{json}"
    );
    let _: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (msg, _) = sign(&replace_with("192.0.2.7"), KEY, NOW.into());
    f.send(&zone("auto"), &msg);
    let json: serde_json::Value = serde_json::from_str(&f.dynamic.status_json(&f.slot)).unwrap();
    assert_eq!(json["origin"], "update");
    assert_eq!(json["current"], serde_json::json!(["192.0.2.7"]));
    assert_eq!(json["updated_by"], "127.0.0.2");
    assert_eq!(json["updates"]["accepted"], 1);
    assert!(json["file"]["path"].as_str().unwrap().ends_with("addresses"));
    let prom = f.dynamic.prometheus(&f.slot);
    assert!(
        prom.contains("dns_service_address{service=\"www.example.com\",origin=\"update\",address=\"192.0.2.7\"} 1"),
        "{prom}"
    );
    assert!(prom.contains("dns_service_updates_total{service=\"www.example.com\",result=\"accepted\"} 1"));
    assert_eq!(
        f.dynamic.pushable(f.slot.read().as_ref()).unwrap().to_string(),
        "192.0.2.7"
    );
    assert_eq!(fixture("status2", "auto").dynamic.pushable(None), None);
}

/// The corpus of the `update_tsig` fuzz target (seeds, and reproducers of
/// any crash ever found) through the same path under `cargo test`; the
/// seeds are signed with the fuzz target's key at its `NOW`.
#[test]
fn the_update_fuzz_corpus_stays_clean() {
    const FUZZ_KEY: &str =
        "key \"test-key\" { algorithm hmac-sha256; secret \"WyQHmL3tltEgNr/ZfPtK7zilSg+o8phItqA3x29foVg=\"; };";
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/update_tsig");
    let staged = Staged {
        keys: Some(("fuzz".into(), parse_key_file(FUZZ_KEY).unwrap())),
        ..Staged::default()
    };
    let z = zone("192.0.2.1 2001:db8::1");
    let dynamic = Dynamic::new("www.example.com".into(), z.config().addresses.clone(), staged, None);
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let data = std::fs::read(entry.path()).unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let slot = AddressSlot::default();
        let mut out = vec![0u8; 4096];
        let h = dynamic.handle(&z, Some(&slot), &data, &qctx(), &mut out);
        let expected = match name.as_str() {
            "signed_replace" | "signed_prerequisites" | "signed_soa_query" => Some(rcode::NOERROR),
            "signed_refused" | "unsigned_replace" => Some(rcode::REFUSED),
            _ => None,
        };
        if let Some(code) = expected {
            assert_eq!(h.map(|h| h.rcode), Some(code), "{name}");
        }
        if let Some(h) = h {
            assert!(h.len <= out.len());
            if h.len > 0 {
                assert_eq!(&out[..2], &data[..2]);
            }
        }
        seen += 1;
    }
    assert!(seen >= 5, "the seeds are in fuzz/corpus/update_tsig");
}

/// Through `Service::answer`: a silent service (drained, down, over its
/// high mark) drops queries but still takes UPDATEs, and they are not
/// counted as queries.
#[test]
fn updates_come_before_the_shedding_policy() {
    use crate::health::policy::{Silence, PPM};
    use crate::health::shared::Table;
    use crate::serve::{Outcome, Reason, Service, Settings, Shared};
    let f = fixture("shed", "192.0.2.1");
    let z = zone("192.0.2.1");
    let mut memory = vec![0u64; std::mem::size_of::<crate::health::shared::Table>() / 8 + 1];
    let table = unsafe { Table::init(memory.as_mut_ptr() as *mut u8, [7; 16], [8; 16]) };
    table.slots[0].drop_ppm.store(PPM, Relaxed);
    let settings = Settings {
        rate_limit: None,
        silence: Silence::Drop,
        delay_queue: 16,
    };
    let service = Service {
        zone: &std::cell::RefCell::new(z),
        settings: &settings,
        shared: Some(Shared { table, index: 0 }),
        dynamic: Some(&f.dynamic),
    };
    let mut out = vec![0u8; 4096];
    let query = message(0, "www.example.com", rtype::A, &[], &[]);
    let served = service.answer(&query, &qctx(), &mut out, 0, None);
    assert_eq!((served.outcome, served.reason), (Outcome::Nothing, Reason::Silent));
    let (update, _) = sign(&replace_with("192.0.2.7"), KEY, NOW.into());
    let mut last = crate::serve::LastQuery::default();
    let served = service.answer(&update, &qctx(), &mut out, 0, Some(&mut last));
    assert_eq!(
        served.reason,
        Reason::Updated,
        "accepted: the worker applies it at once"
    );
    assert!(matches!(served.outcome, Outcome::Send(_)));
    assert_eq!((last.rcode, last.qtype), (Some(0), Some(rtype::SOA)));
    assert_eq!(
        table.addresses[0].read().unwrap().state.addresses.to_string(),
        "192.0.2.7"
    );
    let counters = &table.slots[0].counters;
    assert_eq!(
        counters.queries_udp.load(Relaxed),
        1,
        "only the query counts as a query"
    );
}
