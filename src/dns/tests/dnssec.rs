//! DNSSEC tests. Every signed answer is checked end to end by the `domain`
//! crate's DNSSEC validator (RFC 4033–4035, 5155, 6840), an independent
//! implementation: it fetches the DNSKEY RRset from the engine itself,
//! trusts it through a trust anchor, verifies each RRSIG with its own
//! canonical form and `ring`, and checks the NSEC proofs of NXDOMAIN,
//! NODATA and wildcard answers. The keys are made here with `ring`, and
//! read from files `dnssec-keygen` wrote.

use super::{ask, config, q, respond, tcp, udp_from, Q};
use crate::dns::config::{parse_addresses, ZoneConfig};
use crate::dns::dnssec::{Algorithm, PublicKey, SigningKey, SigningSettings, ZoneKeys};
use crate::dns::keyfile;
use crate::dns::zone::{QueryContext, Transport, Zone};
use crate::dns::{DnssecError, Name};
use bytes::Bytes;
use domain::base::iana::{DigestAlgorithm, Rcode, Rtype, SecurityAlgorithm};
use domain::base::{Message, ParsedName};
use domain::dnssec::validator::anchor::TrustAnchors;
use domain::dnssec::validator::base::DnskeyExt;
use domain::dnssec::validator::context::{ValidationContext, ValidationState};
use domain::net::client::request::{ComposeRequest, Error as RequestError, GetResponse, RequestMessage, SendRequest};
use domain::rdata::{AllRecordData, Cdnskey, Cds, Dnskey, Nsec, Rrsig};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

const DAY: u64 = 86400;

fn apex() -> Name {
    Name::parse_host("www.example.com").unwrap()
}

pub(super) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A fresh ECDSA P-256 key. ring makes it as a PKCS#8 document, whose
/// ECPrivateKey holds the private scalar after `02 01 01 04 20` and which
/// ends with the public point; a key file holds the same two values.
pub(super) fn ecdsa_key() -> SigningKey {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
    let der = pkcs8.as_ref();
    let at = der.windows(5).position(|w| w == [2, 1, 1, 4, 32]).unwrap() + 5;
    let point = &der[der.len() - 64..];
    let public = PublicKey::new(apex(), 257, Algorithm::EcdsaP256Sha256, point.to_vec()).unwrap();
    SigningKey::new(public, &der[at..at + 32]).unwrap()
}

fn ed25519_key() -> SigningKey {
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).unwrap();
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    let public = PublicKey::new(apex(), 257, Algorithm::Ed25519, pair.public_key().as_ref().to_vec()).unwrap();
    SigningKey::new(public, &seed).unwrap()
}

fn testdata_key(prefix: &str) -> SigningKey {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/dns/testdata")
        .join(prefix);
    keyfile::load_signing_key(&path, &apex()).unwrap()
}

/// `config` signed at `at` with `signing`, also publishing `published`,
/// with signatures for the local addresses `locals` (`dns_address auto`).
pub(super) fn sign(
    config: &ZoneConfig,
    signing: Vec<SigningKey>,
    published: Vec<PublicKey>,
    at: u64,
    locals: &[&str],
) -> (Zone, Vec<PublicKey>) {
    let mut zone = Zone::build(config).unwrap();
    let anchors: Vec<PublicKey> = signing.iter().map(|k| k.public().clone()).collect();
    let keys = Arc::new(ZoneKeys::new(&config.apex, signing, published).unwrap());
    let locals: Vec<IpAddr> = locals.iter().map(|a| a.parse().unwrap()).collect();
    let signed = zone.sign_for(keys, SigningSettings::default(), &locals, at).unwrap();
    zone.set_signed(signed).unwrap();
    (zone, anchors)
}

fn signed_zone(config: &ZoneConfig) -> (Zone, Vec<PublicKey>) {
    sign(config, vec![ecdsa_key()], vec![], now(), &["127.0.0.1", "2001:db8::53"])
}

pub(super) fn dnssec(name: &'static str, rtype: Rtype) -> Q {
    q(name, rtype).edns(1232, 0, true, vec![])
}

// ---- The independent validator, driven without a network ------------------

/// The validator's upstream: the engine itself, over TCP (no truncation),
/// as if the queries arrived on `local`.
struct EngineUpstream {
    zone: Arc<Zone>,
    local: IpAddr,
}

#[derive(Debug)]
struct Ready(Option<Message<Bytes>>);

impl GetResponse for Ready {
    fn get_response(
        &mut self,
    ) -> Pin<Box<dyn Future<Output = Result<Message<Bytes>, RequestError>> + Send + Sync + '_>> {
        let response = self.0.take().ok_or(RequestError::ConnectionClosed);
        Box::pin(async move { response })
    }
}

impl SendRequest<RequestMessage<Vec<u8>>> for EngineUpstream {
    fn send_request(&self, mut request: RequestMessage<Vec<u8>>) -> Box<dyn GetResponse + Send + Sync> {
        request.set_dnssec_ok(true);
        let query = request.to_vec().unwrap();
        let ctx = QueryContext {
            local_addr: Some(self.local),
            ..QueryContext::new(Transport::Tcp)
        };
        let response = respond(&self.zone, &query, &ctx).map(|wire| Message::from_octets(Bytes::from(wire)).unwrap());
        Box::new(Ready(response))
    }
}

/// Runs a future that never waits on I/O (the upstream answers at once).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// What the validator makes of `message`, trusting the DNSKEYs `anchors`
/// (as a resolver does through the parent's DS records).
fn validate_message(zone: &Arc<Zone>, anchors: &[PublicKey], local: &str, message: Vec<u8>) -> ValidationState {
    let mut trust = TrustAnchors::empty();
    for key in anchors {
        trust.add_u8(key.dnskey_record().as_bytes()).unwrap();
    }
    let upstream = EngineUpstream {
        zone: zone.clone(),
        local: local.parse().unwrap(),
    };
    let context = ValidationContext::new(trust, upstream);
    let mut message = Message::from_octets(Bytes::from(message)).unwrap();
    let (state, _) = block_on(context.validate_msg::<Bytes, Vec<u8>>(&mut message)).unwrap();
    state
}

/// Asks `query` over UDP on `local`, checks the response is complete, and
/// validates it.
fn validated(zone: &Arc<Zone>, anchors: &[PublicKey], query: &Q, local: &str) -> (ValidationState, Message<Vec<u8>>) {
    let wire = respond(zone, &query.wire(), &udp_from(local)).expect("a response");
    let msg = Message::from_octets(wire.clone()).unwrap();
    assert!(!msg.header().tc(), "{} fits 1232 octets", query.name);
    assert!(!msg.header().ad(), "an authoritative server never sets AD");
    (validate_message(zone, anchors, local, wire), msg)
}

pub(super) fn assert_secure(zone: &Arc<Zone>, anchors: &[PublicKey], query: &Q, local: &str) -> Message<Vec<u8>> {
    let (state, msg) = validated(zone, anchors, query, local);
    assert_eq!(
        state,
        ValidationState::Secure,
        "{} {} on {local}: {msg:?}",
        query.name,
        query.rtype
    );
    msg
}

/// An RRSIG record as `domain` parsed it.
struct Sig {
    owner: String,
    type_covered: Rtype,
    labels: u8,
    original_ttl: u32,
    expiration: u32,
    key_tag: u16,
    signer: String,
    ttl: u32,
}

fn rrsigs(section: domain::base::message::RecordSection<'_, Vec<u8>>) -> Vec<Sig> {
    section
        .limit_to::<Rrsig<&[u8], ParsedName<&[u8]>>>()
        .map(|r| {
            let r = r.unwrap();
            let d = r.data();
            Sig {
                owner: r.owner().to_string(),
                type_covered: d.type_covered(),
                labels: d.labels(),
                original_ttl: d.original_ttl().as_secs(),
                expiration: d.expiration().into_int(),
                key_tag: d.key_tag(),
                signer: d.signer_name().to_string(),
                ttl: r.ttl().as_secs(),
            }
        })
        .collect()
}

/// An NSEC record as `domain` parsed it.
struct NsecInfo {
    owner: String,
    next: String,
    types: Vec<Rtype>,
    bitmap: Vec<u8>,
    ttl: u32,
}

fn nsecs(msg: &Message<Vec<u8>>) -> Vec<NsecInfo> {
    msg.authority()
        .unwrap()
        .limit_to::<Nsec<&[u8], ParsedName<&[u8]>>>()
        .map(|r| {
            let r = r.unwrap();
            let d = r.data();
            NsecInfo {
                owner: r.owner().to_string(),
                next: d.next_name().to_string(),
                types: d.types().iter().collect(),
                bitmap: d.types().as_slice().to_vec(),
                ttl: r.ttl().as_secs(),
            }
        })
        .collect()
}

// ---- Signed answers validate ------------------------------------------------

/// Every kind of answer a signed zone gives, for each key kind: ECDSA and
/// Ed25519 keys made here, keys `dnssec-keygen` and `ldns-keygen` wrote,
/// and two keys at once.
#[test]
fn every_signed_answer_validates() {
    let key_sets: Vec<Vec<SigningKey>> = vec![
        vec![ecdsa_key()],
        vec![ed25519_key()],
        vec![testdata_key("Kwww.example.com.+013+19397")],
        vec![testdata_key("Kwww.example.com.+015+54010")],
        vec![testdata_key("Kwww.example.com.+013+49098")],
        vec![ecdsa_key(), ed25519_key()],
    ];
    for signing in key_sets {
        let key_count = signing.len();
        let (zone, anchors) = sign(&config(), signing, vec![], now(), &["127.0.0.1", "2001:db8::53"]);
        let zone = Arc::new(zone);
        let secure = |query: Q, local: &str| assert_secure(&zone, &anchors, &query, local);

        let msg = secure(dnssec("www.example.com", Rtype::A), "127.0.0.1");
        assert_eq!(msg.header_counts().ancount() as usize, 1 + key_count);
        let sigs = rrsigs(msg.answer().unwrap());
        assert_eq!(sigs.len(), key_count);
        let sig = &sigs[0];
        assert_eq!(sig.owner, "www.example.com");
        assert_eq!(sig.type_covered, Rtype::A);
        assert_eq!(sig.labels, 3);
        assert_eq!(sig.original_ttl, 10);
        assert_eq!(sig.ttl, 10, "RRSIG TTL = the RRset's");
        assert_eq!(sig.signer, "www.example.com");
        assert!(anchors.iter().any(|k| k.key_tag() == sig.key_tag));

        let msg = secure(dnssec("www.example.com", Rtype::AAAA), "2001:db8::53");
        assert_eq!(msg.header_counts().ancount() as usize, 1 + key_count);
        for rtype in [Rtype::NS, Rtype::SOA, Rtype::DNSKEY] {
            let msg = secure(dnssec("www.example.com", rtype), "127.0.0.1");
            assert!(msg.header_counts().ancount() > 0, "{rtype}");
            assert_eq!(rrsigs(msg.answer().unwrap()).len(), key_count, "{rtype}");
        }
        // ANY gets the A RRset and its RRSIGs (RFC 8482); the validator
        // checks it as the answer to A that it is.
        let any = respond(
            &zone,
            &dnssec("www.example.com", Rtype::ANY).wire(),
            &udp_from("127.0.0.1"),
        )
        .unwrap();
        assert_eq!(
            rrsigs(Message::from_octets(any.clone()).unwrap().answer().unwrap()).len(),
            key_count
        );
        assert_eq!(
            validate_message(&zone, &anchors, "127.0.0.1", with_qtype(any, Rtype::A)),
            ValidationState::Secure
        );
        for rtype in [Rtype::CDS, Rtype::CDNSKEY] {
            let msg = secure(dnssec("www.example.com", rtype), "127.0.0.1");
            assert_eq!(msg.header_counts().ancount() as usize, 2 * key_count, "{rtype}");
        }

        // Negative answers: SOA and NSEC, each with RRSIGs, proving it.
        let msg = secure(dnssec("nope.www.example.com", Rtype::A), "127.0.0.1");
        assert_eq!(msg.header().rcode(), Rcode::NXDOMAIN);
        let msg = secure(dnssec("a.b.www.example.com", Rtype::TXT), "127.0.0.1");
        assert_eq!(msg.header().rcode(), Rcode::NXDOMAIN);
        for rtype in [Rtype::MX, Rtype::TXT, Rtype::from_int(65280)] {
            let msg = secure(dnssec("www.example.com", rtype), "127.0.0.1");
            assert_eq!(
                (msg.header().rcode(), msg.header_counts().ancount()),
                (Rcode::NOERROR, 0)
            );
            assert_eq!(
                msg.header_counts().nscount() as usize,
                2 + 2 * key_count,
                "SOA, NSEC and RRSIGs"
            );
        }
        // Over IPv4 `auto` has no AAAA: NODATA, and the NSEC says so.
        let msg = secure(dnssec("www.example.com", Rtype::AAAA), "127.0.0.1");
        assert_eq!(msg.header_counts().ancount(), 0);
        let types = &nsecs(&msg)[0].types;
        assert!(types.contains(&Rtype::A) && !types.contains(&Rtype::AAAA), "{types:?}");
        let msg = secure(dnssec("www.example.com", Rtype::A), "2001:db8::53");
        assert_eq!(msg.header_counts().ancount(), 0);
    }
}

#[test]
fn nsec_records_prove_denial() {
    let mut c = config();
    c.soa_minimum = 5;
    c.ttl = 60;
    let (zone, anchors) = signed_zone(&c);
    let zone = Arc::new(zone);
    let msg = assert_secure(&zone, &anchors, &dnssec("x.www.example.com", Rtype::A), "127.0.0.1");
    let nsec = nsecs(&msg);
    assert_eq!(nsec.len(), 1);
    let nsec = &nsec[0];
    assert_eq!(nsec.owner, "www.example.com");
    assert_eq!(nsec.next, "www.example.com", "one name: the chain is the apex alone");
    assert_eq!(nsec.ttl, 5, "NSEC TTL = min(SOA TTL, minimum)");
    let types = &nsec.types;
    for rtype in [
        Rtype::A,
        Rtype::NS,
        Rtype::SOA,
        Rtype::RRSIG,
        Rtype::NSEC,
        Rtype::DNSKEY,
        Rtype::CDS,
        Rtype::CDNSKEY,
    ] {
        assert!(types.contains(&rtype), "{rtype}");
    }
    assert!(!types.contains(&Rtype::DS) && !types.contains(&Rtype::AAAA));
    // The SOA's RRSIG keeps the SOA RRset's TTL as original TTL while the
    // SOA itself has the negative TTL.
    let sigs = rrsigs(msg.authority().unwrap());
    let soa_sig = sigs.iter().find(|s| s.type_covered == Rtype::SOA).unwrap();
    assert_eq!((soa_sig.original_ttl, soa_sig.ttl), (60, 5));
}

/// DS records belong to the parent (RFC 4035 §3.1.4.1): at the apex, a
/// proven NODATA.
#[test]
fn ds_at_the_apex_is_signed_nodata() {
    let (zone, anchors) = signed_zone(&config());
    let zone = Arc::new(zone);
    let query = dnssec("www.example.com", Rtype::DS);
    let wire = respond(&zone, &query.wire(), &udp_from("127.0.0.1")).unwrap();
    let msg = Message::from_octets(wire.clone()).unwrap();
    assert_eq!(
        (msg.header().rcode(), msg.header_counts().ancount()),
        (Rcode::NOERROR, 0)
    );
    assert!(msg.header().aa());
    let nsec = nsecs(&msg);
    assert_eq!(nsec.len(), 1);
    assert!(!nsec[0].types.contains(&Rtype::DS));
    // A validator looks for the DS in the parent zone, so it does not take
    // this NODATA for DS from the child; the same records must prove
    // NODATA for any type the NSEC leaves out, which it checks.
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", with_qtype(wire, Rtype::MX)),
        ValidationState::Secure
    );
}

#[test]
fn cds_and_cdnskey_describe_the_keys() {
    let key = testdata_key("Kwww.example.com.+013+19397");
    let (zone, anchors) = sign(&config(), vec![key], vec![], now(), &["127.0.0.1"]);
    let zone = Arc::new(zone);
    let msg = assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::DNSKEY), "127.0.0.1");
    let dnskeys: Vec<Dnskey<Vec<u8>>> = msg
        .answer()
        .unwrap()
        .limit_to::<Dnskey<&[u8]>>()
        .map(|r| {
            let r = r.unwrap();
            let d = r.data();
            Dnskey::new(d.flags(), d.protocol(), d.algorithm(), d.public_key().to_vec()).unwrap()
        })
        .collect();
    assert_eq!(dnskeys.len(), 1);
    assert_eq!(dnskeys[0].key_tag(), 19397);
    assert_eq!(dnskeys[0].flags(), 257);

    let records = |rtype: Rtype| -> Vec<AllRecordData<Vec<u8>, String>> {
        let msg = assert_secure(&zone, &anchors, &dnssec("www.example.com", rtype), "127.0.0.1");
        msg.answer()
            .unwrap()
            .filter_map(|r| {
                let r = r.unwrap();
                if r.rtype() != rtype {
                    return None;
                }
                let record = r.into_any_record::<AllRecordData<_, _>>().unwrap();
                Some(match record.data() {
                    AllRecordData::Cds(c) => AllRecordData::Cds(
                        Cds::new(c.key_tag(), c.algorithm(), c.digest_type(), c.digest().to_vec()).unwrap(),
                    ),
                    AllRecordData::Cdnskey(k) => AllRecordData::Cdnskey(
                        Cdnskey::new(k.flags(), k.protocol(), k.algorithm(), k.public_key().to_vec()).unwrap(),
                    ),
                    other => panic!("{other:?}"),
                })
            })
            .collect()
    };
    // Key tag, algorithm 13, digest type 2, and domain's own SHA-256 digest
    // of the DNSKEY, which is what `dnssec-dsfromkey -2` printed.
    let digest = dnskeys[0]
        .digest(
            &"www.example.com.".parse::<domain::base::Name<Vec<u8>>>().unwrap(),
            DigestAlgorithm::SHA256,
        )
        .unwrap();
    let cds = records(Rtype::CDS);
    let [AllRecordData::Cds(cds)] = cds.as_slice() else {
        panic!("one CDS: {cds:?}");
    };
    assert_eq!(
        (cds.key_tag(), cds.algorithm(), cds.digest_type()),
        (19397, SecurityAlgorithm::ECDSAP256SHA256, DigestAlgorithm::SHA256)
    );
    assert_eq!(cds.digest().as_slice(), digest.as_ref());
    assert_eq!(
        hex(cds.digest()),
        "E4EFB17D9AB20645E02ADD0EF47364C54DF45DC381FD97F3B531547E18BA9C18"
    );
    let cdnskey = records(Rtype::CDNSKEY);
    let [AllRecordData::Cdnskey(cdnskey)] = cdnskey.as_slice() else {
        panic!("one CDNSKEY: {cdnskey:?}");
    };
    assert_eq!(
        (cdnskey.flags(), cdnskey.algorithm(), cdnskey.public_key()),
        (257, SecurityAlgorithm::ECDSAP256SHA256, dnskeys[0].public_key())
    );
}

/// `wire` with the type of its question changed, for answers whose query
/// type the validator treats specially (ANY, DS).
fn with_qtype(mut wire: Vec<u8>, rtype: Rtype) -> Vec<u8> {
    let mut at = 12;
    while wire[at] != 0 {
        at += 1 + wire[at] as usize;
    }
    wire[at + 1..at + 3].copy_from_slice(&rtype.to_int().to_be_bytes());
    wire
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[test]
fn wildcard_answers_validate() {
    let mut c = config();
    c.wildcard = true;
    let (zone, anchors) = signed_zone(&c);
    let zone = Arc::new(zone);
    let secure =
        |name: &'static str, rtype: Rtype, local: &str| assert_secure(&zone, &anchors, &dnssec(name, rtype), local);

    let msg = secure("Host1.www.example.com", Rtype::A, "127.0.0.1");
    let sigs = rrsigs(msg.answer().unwrap());
    assert_eq!(sigs[0].owner, "Host1.www.example.com");
    assert_eq!(sigs[0].labels, 3, "labels of *.www.example.com without the *");
    let nsec = nsecs(&msg);
    assert_eq!(nsec.len(), 1, "the NSEC proving the name itself does not exist");
    assert_eq!(
        (nsec[0].owner.as_str(), nsec[0].next.as_str()),
        ("*.www.example.com", "www.example.com")
    );
    secure("a.b.c.www.example.com", Rtype::AAAA, "2001:db8::53");
    let any = respond(
        &zone,
        &dnssec("x.www.example.com", Rtype::ANY).wire(),
        &udp_from("127.0.0.1"),
    )
    .unwrap();
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", with_qtype(any, Rtype::A)),
        ValidationState::Secure
    );
    // A name that sorts before `*.www.example.com` is covered by the apex's
    // NSEC (apex → *), not the wildcard's.
    let msg = secure("!x.www.example.com", Rtype::A, "127.0.0.1");
    let nsec = nsecs(&msg);
    assert_eq!(
        (nsec[0].owner.as_str(), nsec[0].next.as_str()),
        ("www.example.com", "*.www.example.com")
    );
    // Wildcard NODATA: the name's covering NSEC and the wildcard's.
    secure("host1.www.example.com", Rtype::MX, "127.0.0.1");
    secure("host1.www.example.com", Rtype::AAAA, "127.0.0.1");
    secure("host1.www.example.com", Rtype::DS, "127.0.0.1");
    let msg = secure("#.www.example.com", Rtype::TXT, "127.0.0.1");
    assert_eq!(nsecs(&msg).len(), 2);
    // Below `*.www.example.com` the wildcard does not apply (RFC 4592).
    let msg = secure("x.*.www.example.com", Rtype::A, "127.0.0.1");
    assert_eq!(msg.header().rcode(), Rcode::NXDOMAIN);
    // The apex is unchanged, its NODATA proven by the apex NSEC.
    secure("www.example.com", Rtype::A, "127.0.0.1");
    let msg = secure("www.example.com", Rtype::MX, "127.0.0.1");
    assert_eq!(nsecs(&msg)[0].next, "*.www.example.com");
    // The wildcard name itself.
    secure("*.www.example.com", Rtype::A, "127.0.0.1");
}

#[test]
fn fixed_addresses_validate() {
    let mut c = config();
    c.addresses = parse_addresses(["192.0.2.1", "192.0.2.2", "2001:db8::1"]).unwrap();
    c.ttl = 300;
    for wildcard in [false, true] {
        c.wildcard = wildcard;
        let (zone, anchors) = sign(&c, vec![ed25519_key()], vec![], now(), &[]);
        let zone = Arc::new(zone);
        let msg = assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::A), "127.0.0.9");
        assert_eq!(msg.header_counts().ancount(), 3, "two addresses and one RRSIG");
        assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::AAAA), "127.0.0.9");
        let msg = assert_secure(&zone, &anchors, &dnssec("nope.www.example.com", Rtype::AAAA), "::1");
        let expected = if wildcard { Rcode::NOERROR } else { Rcode::NXDOMAIN };
        assert_eq!(msg.header().rcode(), expected);
        assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::TXT), "::1");
    }
}

/// RFC 8901 model 2: each host signs with its own key and publishes the
/// others'; a resolver trusting any one of them (a DS each in the parent)
/// validates this host's answers as long as this host's key is among them.
#[test]
fn multi_signer_publishes_other_hosts_keys() {
    let this_host = ecdsa_key();
    let other_host = ed25519_key().public().clone();
    let third_host = testdata_key("Kwww.example.com.+013+49098").public().clone();
    let published = vec![other_host.clone(), third_host.clone(), this_host.public().clone()];
    let (zone, own) = sign(&config(), vec![this_host], published, now(), &["127.0.0.1"]);
    let zone = Arc::new(zone);
    let all: Vec<PublicKey> = own.iter().cloned().chain([other_host.clone(), third_host]).collect();
    let msg = assert_secure(&zone, &all, &dnssec("www.example.com", Rtype::DNSKEY), "127.0.0.1");
    assert_eq!(
        msg.answer().unwrap().limit_to::<Dnskey<&[u8]>>().count(),
        3,
        "own key listed once"
    );
    assert_eq!(rrsigs(msg.answer().unwrap()).len(), 1, "signed by this host's key only");
    let cds = assert_secure(&zone, &all, &dnssec("www.example.com", Rtype::CDS), "127.0.0.1");
    assert_eq!(cds.header_counts().ancount(), 4, "a CDS for every key, and one RRSIG");
    assert_secure(&zone, &all, &dnssec("www.example.com", Rtype::A), "127.0.0.1");
    assert_secure(&zone, &all, &dnssec("x.www.example.com", Rtype::A), "127.0.0.1");
    // A resolver that only trusts another host's key: that key signs
    // nothing here.
    let (state, _) = validated(&zone, &[other_host], &dnssec("www.example.com", Rtype::A), "127.0.0.1");
    assert_eq!(state, ValidationState::Bogus);
}

// ---- What must not validate ------------------------------------------------

#[test]
fn expired_future_mismatched_and_tampered_answers_are_bogus() {
    let queries = [
        dnssec("www.example.com", Rtype::A),
        dnssec("www.example.com", Rtype::MX),
        dnssec("nope.www.example.com", Rtype::A),
    ];
    // Signed 30 days ago: expired 16 days ago.
    let (expired, anchors) = sign(&config(), vec![ecdsa_key()], vec![], now() - 30 * DAY, &["127.0.0.1"]);
    // Signed for a time two days ahead: not valid yet.
    let (future, future_anchors) = sign(&config(), vec![ed25519_key()], vec![], now() + 2 * DAY, &["127.0.0.1"]);
    for (zone, anchors) in [(expired, anchors), (future, future_anchors)] {
        let zone = Arc::new(zone);
        for query in &queries {
            assert_eq!(
                validated(&zone, &anchors, query, "127.0.0.1").0,
                ValidationState::Bogus,
                "{}",
                query.name
            );
        }
    }
    // Signed with one key, the resolver trusts another (a DS that does not
    // match).
    let (zone, _) = signed_zone(&config());
    let zone = Arc::new(zone);
    let stranger = vec![ecdsa_key().public().clone()];
    for query in &queries {
        assert_eq!(
            validated(&zone, &stranger, query, "127.0.0.1").0,
            ValidationState::Bogus
        );
    }
    // Tampered: a changed address, a changed NSEC bit map.
    let (zone, anchors) = signed_zone(&config());
    let zone = Arc::new(zone);
    let mut wire = respond(&zone, &queries[0].wire(), &udp_from("127.0.0.1")).unwrap();
    let at = wire.windows(4).position(|w| w == [127, 0, 0, 1]).unwrap();
    wire[at + 3] = 2;
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", wire),
        ValidationState::Bogus
    );
    let mut wire = respond(&zone, &queries[1].wire(), &udp_from("127.0.0.1")).unwrap();
    let msg = Message::from_octets(wire.clone()).unwrap();
    let bitmap = nsecs(&msg)[0].bitmap.clone();
    let at = wire.windows(bitmap.len()).position(|w| w == bitmap).unwrap();
    wire[at + 3] |= 0x01; // MX (15) at the end of the first octet
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", wire),
        ValidationState::Bogus
    );
    // A wildcard answer whose NSEC does not cover the name: the answer to
    // `!x` (covered by apex → *) passed off as one for `zx`, which sorts
    // after `*` (the answer's owners point at the question).
    let mut c = config();
    c.wildcard = true;
    let (zone, anchors) = signed_zone(&c);
    let zone = Arc::new(zone);
    let query = dnssec("!x.www.example.com", Rtype::A);
    let mut wire = respond(&zone, &query.wire(), &udp_from("127.0.0.1")).unwrap();
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", wire.clone()),
        ValidationState::Secure
    );
    assert_eq!(&wire[12..15], b"\x02!x");
    wire[13] = b'z';
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", wire),
        ValidationState::Bogus
    );
}

// ---- Protocol ---------------------------------------------------------------

#[test]
fn records_only_with_the_do_bit() {
    let (zone, _) = signed_zone(&config());
    let plain = ask(
        &zone,
        &q("www.example.com", Rtype::A).edns(1232, 0, false, vec![]),
        &udp_from("127.0.0.1"),
    );
    assert_eq!(plain.header_counts().ancount(), 1);
    assert!(rrsigs(plain.answer().unwrap()).is_empty());
    let nodata = ask(&zone, &q("www.example.com", Rtype::MX), &udp_from("127.0.0.1"));
    assert_eq!(nodata.header_counts().nscount(), 1, "SOA only");
    // The DNSSEC records exist in a signed zone whether or not DO is set.
    let keys = ask(&zone, &q("www.example.com", Rtype::DNSKEY), &udp_from("127.0.0.1"));
    assert_eq!(keys.header_counts().ancount(), 1, "the DNSKEY, no RRSIG");
    let nsec = ask(&zone, &q("www.example.com", Rtype::NSEC), &udp_from("127.0.0.1"));
    assert_eq!(nsec.header_counts().ancount(), 1);
    let signed_nsec = ask(&zone, &dnssec("www.example.com", Rtype::NSEC), &udp_from("127.0.0.1"));
    assert_eq!(signed_nsec.header_counts().ancount(), 2);
    let rrsig = ask(&zone, &dnssec("www.example.com", Rtype::RRSIG), &udp_from("127.0.0.1"));
    assert_eq!(rrsigs(rrsig.answer().unwrap()).len(), 1);
    // An unsigned zone ignores DO, and has no DNSKEY.
    let unsigned = Zone::build(&config()).unwrap();
    let msg = ask(&unsigned, &dnssec("www.example.com", Rtype::A), &udp_from("127.0.0.1"));
    assert_eq!(msg.header_counts().ancount(), 1);
    assert!(msg.opt().unwrap().dnssec_ok(), "DO echoed");
    let msg = ask(
        &unsigned,
        &dnssec("www.example.com", Rtype::DNSKEY),
        &udp_from("127.0.0.1"),
    );
    assert_eq!((msg.header_counts().ancount(), msg.header_counts().nscount()), (0, 1));
    // CD copied, AD never set, DO echoed.
    let mut wire = dnssec("www.example.com", Rtype::A).wire();
    wire[3] |= 0x30; // AD and CD
    let response = respond(&zone, &wire, &udp_from("127.0.0.1")).unwrap();
    assert_eq!(response[3] & 0x30, 0x10);
}

#[test]
fn signed_answers_truncate_over_small_udp() {
    let mut c = config();
    let list: Vec<String> = (1..=20).map(|i| format!("10.0.0.{i}")).collect();
    c.addresses = parse_addresses(list.iter().map(String::as_str)).unwrap();
    let (zone, anchors) = sign(&c, vec![ecdsa_key(), ed25519_key()], vec![], now(), &[]);
    let small = q("www.example.com", Rtype::A).edns(512, 0, true, vec![]);
    let msg = ask(&zone, &small, &udp_from("127.0.0.1"));
    assert!(msg.header().tc(), "20 A + 2 RRSIG do not fit 512 octets");
    assert_eq!(msg.header_counts().ancount(), 0);
    let unsigned = q("www.example.com", Rtype::A).edns(512, 0, false, vec![]);
    assert!(
        !ask(&zone, &unsigned, &udp_from("127.0.0.1")).header().tc(),
        "without DO it fits"
    );
    let msg = ask(&zone, &small, &tcp());
    assert!(!msg.header().tc());
    assert_eq!(msg.header_counts().ancount(), 22);
    let zone = Arc::new(zone);
    let wire = respond(&zone, &small.wire(), &tcp()).unwrap();
    assert_eq!(
        validate_message(&zone, &anchors, "127.0.0.1", wire),
        ValidationState::Secure
    );
    // The buffer `max_response_len` gives holds every signed answer.
    let mut out = vec![0u8; zone.max_response_len()];
    let name = "a".repeat(63);
    let long: &'static str = Box::leak(format!("{name}.{name}.{name}.www.example.com").into_boxed_str());
    for query in [
        dnssec(long, Rtype::A),
        dnssec("www.example.com", Rtype::A),
        dnssec("www.example.com", Rtype::DNSKEY),
    ] {
        let answered = zone.respond(&query.wire(), &tcp(), &mut out).unwrap();
        assert!(!answered.truncated);
    }
}

/// Jitter lowers the TTL of the records and of their RRSIGs alike; the
/// RRSIG's original TTL stays the configured one, which validators allow
/// (RFC 4035 §5.3.3).
#[test]
fn ttl_jitter_keeps_original_ttl() {
    let mut c = config();
    c.ttl = 100;
    c.ttl_jitter = 50;
    let (zone, anchors) = sign(&c, vec![ecdsa_key()], vec![], now(), &["127.0.0.1"]);
    let zone = Arc::new(zone);
    for random in [3u32, 40, 1234567] {
        let ctx = QueryContext {
            random,
            ..udp_from("127.0.0.1")
        };
        let wire = respond(&zone, &dnssec("www.example.com", Rtype::A).wire(), &ctx).unwrap();
        let msg = Message::from_octets(wire.clone()).unwrap();
        let ttl = msg.answer().unwrap().next().unwrap().unwrap().ttl().as_secs();
        let sigs = rrsigs(msg.answer().unwrap());
        assert!((50..100).contains(&ttl), "{ttl}");
        assert_eq!((sigs[0].original_ttl, sigs[0].ttl), (100, ttl));
        assert_eq!(
            validate_message(&zone, &anchors, "127.0.0.1", wire),
            ValidationState::Secure
        );
    }
}

// ---- Local addresses, re-signing --------------------------------------------

#[test]
fn addresses_first_seen_later_are_signed_on_demand() {
    let mut c = config();
    c.wildcard = true;
    let mut zone = Zone::build(&c).unwrap();
    let key = ecdsa_key();
    let anchors = vec![key.public().clone()];
    let keys = Arc::new(ZoneKeys::new(&c.apex, vec![key], vec![]).unwrap());
    let settings = SigningSettings {
        max_addresses: 2,
        ..SigningSettings::default()
    };
    let signed = zone
        .sign_for(keys, settings, &["127.0.0.1".parse().unwrap()], now())
        .unwrap();
    zone.set_signed(signed).unwrap();
    let max = zone.max_response_len();

    // A DO query on an address not signed for: SERVFAIL, and the caller is
    // told which address to sign for. Without DO it is answered as usual.
    let new: IpAddr = "192.0.2.77".parse().unwrap();
    let query = dnssec("www.example.com", Rtype::A).wire();
    let mut out = vec![0u8; 4096];
    let answered = zone.respond(&query, &udp_from("192.0.2.77"), &mut out).unwrap();
    assert_eq!((answered.rcode, answered.missing_signatures), (2, Some(new)));
    let plain = q("www.example.com", Rtype::A).wire();
    let answered = zone.respond(&plain, &udp_from("192.0.2.77"), &mut out).unwrap();
    assert_eq!((answered.rcode, answered.missing_signatures), (0, None));
    // AAAA over IPv4 needs no signatures for the address: NODATA.
    let answered = zone
        .respond(
            &dnssec("www.example.com", Rtype::AAAA).wire(),
            &udp_from("192.0.2.77"),
            &mut out,
        )
        .unwrap();
    assert_eq!((answered.rcode, answered.missing_signatures), (0, None));

    zone.add_signed_address(new).unwrap();
    zone.add_signed_address(new).unwrap();
    assert_eq!(
        zone.max_response_len(),
        max,
        "an address signed later fits the same buffers"
    );
    let zone_arc = Arc::new(zone.clone());
    assert_secure(&zone_arc, &anchors, &dnssec("www.example.com", Rtype::A), "192.0.2.77");
    assert_secure(
        &zone_arc,
        &anchors,
        &dnssec("x.www.example.com", Rtype::A),
        "192.0.2.77",
    );
    // IPv4-mapped IPv6 is the IPv4 address.
    assert_secure(
        &zone_arc,
        &anchors,
        &dnssec("www.example.com", Rtype::A),
        "::ffff:192.0.2.77",
    );
    // The table is bounded.
    assert_eq!(
        zone.add_signed_address("2001:db8::9".parse().unwrap()),
        Err(DnssecError::TableFull(2))
    );
    let signed: Vec<IpAddr> = zone.signed().unwrap().local_addresses().collect();
    assert_eq!(signed, ["127.0.0.1".parse::<IpAddr>().unwrap(), new]);

    // Fixed addresses need no table.
    let mut fixed = config();
    fixed.addresses = parse_addresses(["192.0.2.1"]).unwrap();
    let (mut fixed, _) = sign(&fixed, vec![ecdsa_key()], vec![], now(), &[]);
    assert_eq!(fixed.add_signed_address(new), Err(DnssecError::FixedAddresses));
}

#[test]
fn resigning_makes_fresh_signatures() {
    let signed_at = now() - 8 * DAY;
    let (mut zone, anchors) = sign(&config(), vec![ecdsa_key()], vec![], signed_at, &["127.0.0.1"]);
    zone.add_signed_address("192.0.2.8".parse().unwrap()).unwrap();
    assert_eq!(
        zone.next_refresh(),
        Some(signed_at + 7 * DAY),
        "refresh at half the validity"
    );
    let signed = zone.signed().unwrap();
    assert_eq!(signed.validity(), (signed_at - 3600, signed_at + 14 * DAY));
    let expiration = |zone: &Zone| {
        let msg = ask(zone, &dnssec("www.example.com", Rtype::SOA), &udp_from("127.0.0.1"));
        rrsigs(msg.answer().unwrap())[0].expiration
    };
    assert_eq!(u64::from(expiration(&zone)), signed_at + 14 * DAY);

    let t = now();
    let fresh = zone.signed().unwrap().resign(t).unwrap();
    assert_eq!(fresh.local_addresses().count(), 2, "the addresses signed for are kept");
    let old = zone.set_signed(fresh).unwrap();
    assert!(old.is_some());
    assert_eq!(zone.next_refresh(), Some(t + 7 * DAY));
    assert_eq!(u64::from(expiration(&zone)), t + 14 * DAY);
    let zone = Arc::new(zone);
    assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::A), "192.0.2.8");
    assert_secure(&zone, &anchors, &dnssec("www.example.com", Rtype::DNSKEY), "192.0.2.8");

    // Templates of one zone cannot be installed in another.
    let mut other_config = config();
    other_config.ttl = 20;
    let mut other = Zone::build(&other_config).unwrap();
    let foreign = zone.signed().unwrap().resign(t).unwrap();
    assert_eq!(other.set_signed(foreign).unwrap_err(), DnssecError::OtherZone);
}

#[test]
fn zone_keys_are_checked() {
    assert_eq!(
        ZoneKeys::new(&apex(), vec![], vec![]).unwrap_err(),
        DnssecError::NoSigningKey
    );
    let other = Name::parse_host("api.example.com").unwrap();
    assert!(matches!(
        ZoneKeys::new(&other, vec![ecdsa_key()], vec![]),
        Err(DnssecError::WrongOwner { .. })
    ));
    let key = ecdsa_key();
    let public = key.public().clone();
    let not_zone = PublicKey::new(apex(), 1, public.algorithm(), public.key().to_vec()).unwrap();
    assert!(matches!(
        ZoneKeys::new(&apex(), vec![key], vec![not_zone]),
        Err(DnssecError::NotZoneKey(_))
    ));
    // A private key that is not the public key's.
    let a = ed25519_key();
    let b = ed25519_key();
    assert!(SigningKey::new(a.public().clone(), &[7; 32]).is_none());
    assert!(PublicKey::new(apex(), 257, Algorithm::Ed25519, b.public().key()[..31].to_vec()).is_none());
}

// ---- The hot path stays allocation-free and robust --------------------------

/// Counts heap allocations made by the current thread, so that a test can
/// check `respond` makes none.
pub(super) mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        pub static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            System.alloc(layout)
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout)
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            System.realloc(ptr, layout, new_size)
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    pub fn count() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }
}

#[test]
fn respond_does_not_allocate() {
    let mut c = config();
    c.wildcard = true;
    let (zone, _) = signed_zone(&c);
    let queries: Vec<Vec<u8>> = [
        dnssec("www.example.com", Rtype::A),
        dnssec("www.example.com", Rtype::AAAA),
        dnssec("www.example.com", Rtype::DNSKEY),
        dnssec("www.example.com", Rtype::DS),
        dnssec("x.www.example.com", Rtype::A),
        dnssec("!.www.example.com", Rtype::MX),
        dnssec("x.*.www.example.com", Rtype::A),
        q("www.example.com", Rtype::A),
        dnssec("www.example.com", Rtype::A).edns(512, 0, true, vec![]),
    ]
    .iter()
    .map(Q::wire)
    .collect();
    let mut out = vec![0u8; zone.max_response_len()];
    let contexts = [
        udp_from("127.0.0.1"),
        udp_from("2001:db8::53"),
        udp_from("192.0.2.99"),
        tcp(),
    ];
    let control = counting::count();
    drop(std::hint::black_box(vec![0u8; 16]));
    assert!(counting::count() > control, "the counter counts");
    let before = counting::count();
    for query in &queries {
        for ctx in &contexts {
            zone.respond(query, ctx, &mut out).unwrap();
        }
    }
    assert_eq!(counting::count() - before, 0, "respond allocated");
}

/// The property test of the unsigned engine, on a signed zone with the
/// wildcard: no panic, and every response parses.
#[test]
fn random_queries_to_a_signed_zone_give_well_formed_answers() {
    let mut c = config();
    c.wildcard = true;
    let (zone, _) = signed_zone(&c);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let seeds: Vec<Vec<u8>> = [
        dnssec("www.example.com", Rtype::A),
        dnssec("x.www.example.com", Rtype::AAAA),
        dnssec("www.example.com", Rtype::DNSKEY),
        dnssec("a.*.www.example.com", Rtype::NSEC),
    ]
    .iter()
    .map(Q::wire)
    .collect();
    let mut out = vec![0u8; zone.max_response_len()];
    for i in 0..5000 {
        let mut msg = seeds[i % seeds.len()].clone();
        for _ in 0..(next() % 3 + 1) {
            let at = (next() as usize) % msg.len();
            msg[at] = next() as u8;
        }
        let local = if next() % 2 == 0 { "127.0.0.1" } else { "2001:db8::53" };
        let ctx = QueryContext {
            random: next() as u32,
            transport: if next() % 2 == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            ..udp_from(local)
        };
        if let Some(answered) = zone.respond(&msg, &ctx, &mut out) {
            let parsed = Message::from_octets(out[..answered.len].to_vec()).expect("header");
            for section in [parsed.answer(), parsed.authority(), parsed.additional()] {
                for record in section.expect("sections parse") {
                    record.expect("record parses");
                }
            }
        }
    }
}
