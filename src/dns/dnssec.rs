//! DNSSEC (RFC 4033–4035) with no cryptography per query.
//!
//! The zone has one name (two with the wildcard), so everything it can
//! answer is known when the configuration is loaded: every RRset is signed
//! then, and a signed answer is one more template, copied and patched like
//! the unsigned ones. Signatures are remade from a timer
//! (`SignedZone::resign`) long before they expire.
//!
//! Authenticated denial is a precomputed NSEC chain of one link (the apex
//! pointing at itself) or, with the wildcard, two (apex → `*.<apex>` →
//! apex). With `dns_address auto` the A/AAAA RRset depends on the local
//! address a query arrived on, so it is signed per address, in a bounded
//! table filled at startup and, for addresses first seen later, on demand.
//! What the apex and the wildcard hold then depends on the address family
//! the query came over (an IPv4 host has an A RRset and no AAAA), so the
//! NSEC records are made for each set of address types.

use super::config::{parse_seconds, split_parameter, Addresses, ConfigError, ZoneConfig, MAX_TTL};
use super::name::Name;
use super::wire::{class, rcode, rtype};
use super::zone::{Cover, Owner, RecordsBuilder, Template, Wanted, ANSWER, AUTHORITY};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use thiserror::Error;

/// DNSKEY flags (RFC 4034 §2.1.1, RFC 5011 §7).
pub mod dnskey_flag {
    pub const ZONE: u16 = 0x0100;
    pub const REVOKE: u16 = 0x0080;
    /// Secure entry point: a key-signing or combined signing key.
    pub const SEP: u16 = 0x0001;
}

/// The DNSKEY protocol field is always 3 (RFC 4034 §2.1.2).
const PROTOCOL: u8 = 3;
/// DS digest type SHA-256 (RFC 4509), the one every validator supports.
const DIGEST_SHA256: u8 = 2;
/// Longest signature validity `SigningSettings` accepts.
pub const MAX_VALIDITY: u32 = 365 * 86400;
/// Largest table of local addresses signed for.
pub const MAX_SIGNED_ADDRESSES: usize = 4096;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DnssecError {
    #[error("no signing key")]
    NoSigningKey,
    #[error("key {tag} is for \"{owner}\", not for the zone \"{apex}\"")]
    WrongOwner { tag: u16, owner: String, apex: String },
    #[error("key {0} is not a zone key (DNSKEY flags without the zone bit, or revoked)")]
    NotZoneKey(u16),
    #[error("signing failed")]
    Signing,
    #[error("the table of signed local addresses is full ({0} addresses)")]
    TableFull(usize),
    #[error("the zone's addresses are fixed; signing per local address is for \"dns_address auto\"")]
    FixedAddresses,
    #[error("the zone is not signed")]
    NotSigned,
    #[error("the signed templates were made for another zone")]
    OtherZone,
    #[error("signed answers would exceed the 65535-octet DNS message limit; list fewer addresses")]
    TooLarge,
    #[error(transparent)]
    Settings(#[from] ConfigError),
}

/// The signing algorithms supported: the two RFC 8624 recommends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// 13, ECDSAP256SHA256 (RFC 6605).
    EcdsaP256Sha256,
    /// 15, ED25519 (RFC 8080).
    Ed25519,
}

impl Algorithm {
    pub fn from_number(number: u8) -> Option<Algorithm> {
        match number {
            13 => Some(Algorithm::EcdsaP256Sha256),
            15 => Some(Algorithm::Ed25519),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Algorithm::EcdsaP256Sha256 => 13,
            Algorithm::Ed25519 => 15,
        }
    }

    pub fn mnemonic(self) -> &'static str {
        match self {
            Algorithm::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// Length of the key in a DNSKEY: P-256's x and y, or the Ed25519 key.
    pub fn public_key_len(self) -> usize {
        match self {
            Algorithm::EcdsaP256Sha256 => 64,
            Algorithm::Ed25519 => 32,
        }
    }

    /// Length of the private key in a key file: the P-256 scalar, or the
    /// Ed25519 seed.
    pub fn private_key_len(self) -> usize {
        32
    }

    /// ECDSA's r and s, or an Ed25519 signature.
    pub fn signature_len(self) -> usize {
        64
    }
}

/// A DNSKEY of the zone: the public half of a signing key, or the key of
/// another signer published in the DNSKEY RRset (RFC 8901 model 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    owner: Name,
    flags: u16,
    algorithm: Algorithm,
    key: Vec<u8>,
}

impl PublicKey {
    /// `None` when `key` does not have the length `algorithm` uses.
    pub fn new(owner: Name, flags: u16, algorithm: Algorithm, key: Vec<u8>) -> Option<PublicKey> {
        (key.len() == algorithm.public_key_len()).then_some(PublicKey {
            owner,
            flags,
            algorithm,
            key,
        })
    }

    pub fn owner(&self) -> &Name {
        &self.owner
    }

    pub fn flags(&self) -> u16 {
        self.flags
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// DNSKEY (and CDNSKEY) record data.
    pub fn rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(4 + self.key.len());
        rdata.extend(self.flags.to_be_bytes());
        rdata.push(PROTOCOL);
        rdata.push(self.algorithm.number());
        rdata.extend(&self.key);
        rdata
    }

    /// The key tag that RRSIG and DS records name (RFC 4034 Appendix B).
    pub fn key_tag(&self) -> u16 {
        let mut sum: u32 = 0;
        for (i, &octet) in self.rdata().iter().enumerate() {
            sum += if i % 2 == 0 {
                u32::from(octet) << 8
            } else {
                u32::from(octet)
            };
        }
        sum += sum >> 16;
        sum as u16
    }

    /// SHA-256 of the owner and the DNSKEY data: the digest of the DS
    /// record the parent zone publishes (RFC 4509).
    pub fn ds_digest(&self) -> [u8; 32] {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(self.owner.wire());
        context.update(&self.rdata());
        let mut digest = [0; 32];
        digest.copy_from_slice(context.finish().as_ref());
        digest
    }

    /// DS (and CDS) record data with the SHA-256 digest.
    pub fn ds_rdata(&self) -> Vec<u8> {
        let mut rdata = Vec::with_capacity(36);
        rdata.extend(self.key_tag().to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(DIGEST_SHA256);
        rdata.extend(self.ds_digest());
        rdata
    }

    /// The DS record for the parent zone, as `dnssec-dsfromkey -2` prints it.
    pub fn ds_record(&self) -> String {
        let digest: String = self.ds_digest().iter().map(|b| format!("{b:02X}")).collect();
        format!(
            "{}. IN DS {} {} {DIGEST_SHA256} {digest}",
            self.owner,
            self.key_tag(),
            self.algorithm.number()
        )
    }

    /// The DNSKEY record in presentation format.
    pub fn dnskey_record(&self) -> String {
        format!(
            "{}. IN DNSKEY {} {PROTOCOL} {} {}",
            self.owner,
            self.flags,
            self.algorithm.number(),
            BASE64.encode(&self.key)
        )
    }

    /// A zone key that may sign: the zone bit set, not revoked.
    fn is_zone_key(&self) -> bool {
        self.flags & dnskey_flag::ZONE != 0 && self.flags & dnskey_flag::REVOKE == 0
    }
}

/// A key this host signs with: its DNSKEY and its private half.
pub struct SigningKey {
    public: PublicKey,
    private: PrivateKey,
}

enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl SigningKey {
    /// `private` is the key as BIND's and ldns's `.private` files hold it:
    /// the P-256 private scalar, or the Ed25519 seed. `None` when it is not
    /// the private half of `public`.
    pub fn new(public: PublicKey, private: &[u8]) -> Option<SigningKey> {
        let private = match public.algorithm {
            Algorithm::EcdsaP256Sha256 => {
                // ring takes the public point uncompressed, with its 0x04
                // prefix, and checks that it belongs to the scalar.
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend(&public.key);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    private,
                    &point,
                    &SystemRandom::new(),
                )
                .ok()?;
                PrivateKey::Ecdsa(pair)
            }
            Algorithm::Ed25519 => {
                PrivateKey::Ed25519(Ed25519KeyPair::from_seed_and_public_key(private, &public.key).ok()?)
            }
        };
        Some(SigningKey { public, private })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DnssecError> {
        match &self.private {
            PrivateKey::Ecdsa(pair) => pair
                .sign(&SystemRandom::new(), data)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| DnssecError::Signing),
            PrivateKey::Ed25519(pair) => Ok(pair.sign(data).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for SigningKey {
    /// Never the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("owner", &self.public.owner.to_string())
            .field("algorithm", &self.public.algorithm)
            .field("key_tag", &self.public.key_tag())
            .finish()
    }
}

/// The keys of a signed zone: those this host signs with, and the DNSKEY
/// RRset, which also holds the other signers' public keys.
#[derive(Debug)]
pub struct ZoneKeys {
    signing: Vec<SigningKey>,
    dnskeys: Vec<PublicKey>,
}

impl ZoneKeys {
    /// Checks that every key is a zone key of `apex`. A published key that
    /// is also a signing key is listed once, so every host of a
    /// multi-signer fleet may publish the same list of all hosts' keys.
    pub fn new(apex: &Name, signing: Vec<SigningKey>, published: Vec<PublicKey>) -> Result<ZoneKeys, DnssecError> {
        if signing.is_empty() {
            return Err(DnssecError::NoSigningKey);
        }
        let mut dnskeys: Vec<PublicKey> = Vec::new();
        for key in signing.iter().map(SigningKey::public).chain(&published) {
            if key.owner != *apex {
                return Err(DnssecError::WrongOwner {
                    tag: key.key_tag(),
                    owner: key.owner.to_string(),
                    apex: apex.to_string(),
                });
            }
            if !key.is_zone_key() {
                return Err(DnssecError::NotZoneKey(key.key_tag()));
            }
            if !dnskeys.contains(key) {
                dnskeys.push(key.clone());
            }
        }
        Ok(ZoneKeys { signing, dnskeys })
    }

    pub fn signing_keys(&self) -> &[SigningKey] {
        &self.signing
    }

    /// The DNSKEY RRset: the signing keys first, then the published ones.
    /// CDS and CDNSKEY name all of them: in this module every key is a
    /// combined signing key that the parent needs a DS for.
    pub fn dnskeys(&self) -> &[PublicKey] {
        &self.dnskeys
    }
}

/// How signatures are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningSettings {
    /// Seconds a signature is valid after it is made.
    pub validity: u32,
    /// Seconds the inception is set in the past, for validators whose
    /// clocks are behind.
    pub inception_skew: u32,
    /// Seconds after signing when the signatures are remade.
    pub refresh: u32,
    /// TTL of the DNSKEY, CDS and CDNSKEY RRsets.
    pub key_ttl: u32,
    /// Most local addresses signed for with `dns_address auto`.
    pub max_addresses: usize,
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            validity: 14 * 86400,
            inception_skew: 3600,
            refresh: 7 * 86400,
            key_ttl: 3600,
            max_addresses: 64,
        }
    }
}

impl SigningSettings {
    /// Parses `validity=14d inception_skew=1h refresh=7d key_ttl=1h
    /// max_addresses=64` (any of them, in any order; the rest keep their
    /// defaults). Without `refresh`, signatures are remade at half their
    /// validity.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<SigningSettings, ConfigError> {
        const KEYS: [&str; 5] = ["validity", "inception_skew", "refresh", "key_ttl", "max_addresses"];
        let mut settings = SigningSettings::default();
        let mut refresh = None;
        for arg in args {
            let (key, value) = split_parameter(arg, &KEYS)?;
            if key == "max_addresses" {
                settings.max_addresses = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_SIGNED_ADDRESSES).contains(n))
                    .ok_or_else(|| {
                        ConfigError::Signing(format!("max_addresses must be from 1 to {MAX_SIGNED_ADDRESSES}"))
                    })?;
                continue;
            }
            let seconds = parse_seconds(value)? as u32;
            match key {
                "validity" => settings.validity = seconds,
                "inception_skew" => settings.inception_skew = seconds,
                "refresh" => refresh = Some(seconds),
                _ => settings.key_ttl = seconds,
            }
        }
        settings.refresh = refresh.unwrap_or(settings.validity / 2);
        settings.check()?;
        Ok(settings)
    }

    /// The rules `parse` enforces, for settings made otherwise.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |reason: &str| Err(ConfigError::Signing(reason.to_string()));
        if !(3600..=MAX_VALIDITY).contains(&self.validity) {
            return bad("validity must be from 1h to 365d");
        }
        if self.inception_skew > self.validity {
            return bad("inception_skew must not exceed the validity");
        }
        if self.refresh < 60 || self.refresh >= self.validity {
            return bad("refresh must be at least 1m and shorter than the validity");
        }
        if !(1..=MAX_TTL).contains(&self.key_ttl) {
            return bad("key_ttl must be from 1s to 7d");
        }
        if !(1..=MAX_SIGNED_ADDRESSES).contains(&self.max_addresses) {
            return bad("max_addresses is out of range");
        }
        Ok(())
    }
}

/// Makes RRSIG record data for the zone's RRsets, all with one validity
/// period.
struct Signer<'a> {
    apex: &'a Name,
    keys: &'a ZoneKeys,
    inception: u32,
    expiration: u32,
    /// Zero signatures: for sizing templates without signing.
    dry_run: bool,
}

impl Signer<'_> {
    /// One RRSIG per signing key over the RRset of `rtype` owned by `owner`
    /// (the apex or `*.<apex>`) with data `rdatas` in canonical form (names
    /// uncompressed, in lower case) and TTL `ttl`.
    fn sign(&self, owner: Owner, rtype: u16, ttl: u32, rdatas: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, DnssecError> {
        let owner_wire = match owner {
            Owner::Wildcard => wildcard_wire(self.apex),
            _ => self.apex.wire().to_vec(),
        };
        // The wildcard's `*` is not counted (RFC 4034 §3.1.3): that is how
        // a validator tells an answer was expanded from it.
        let labels = self.apex.labels().count() as u8;
        // Canonical RR order, duplicates removed (RFC 4034 §6.3).
        let mut sorted: Vec<&Vec<u8>> = rdatas.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut rrsigs = Vec::with_capacity(self.keys.signing.len());
        for key in &self.keys.signing {
            let algorithm = key.public.algorithm;
            let mut rrsig = Vec::with_capacity(18 + self.apex.wire().len() + algorithm.signature_len());
            rrsig.extend(rtype.to_be_bytes());
            rrsig.push(algorithm.number());
            rrsig.push(labels);
            rrsig.extend(ttl.to_be_bytes());
            rrsig.extend(self.expiration.to_be_bytes());
            rrsig.extend(self.inception.to_be_bytes());
            rrsig.extend(key.public.key_tag().to_be_bytes());
            rrsig.extend(self.apex.wire());
            // What is signed (RFC 4034 §3.1.8.1): the RRSIG data so far,
            // then every RR with the original TTL.
            let mut signed = rrsig.clone();
            for rdata in &sorted {
                signed.extend(&owner_wire);
                signed.extend(rtype.to_be_bytes());
                signed.extend(class::IN.to_be_bytes());
                signed.extend(ttl.to_be_bytes());
                signed.extend((rdata.len() as u16).to_be_bytes());
                signed.extend(rdata.iter());
            }
            if self.dry_run {
                rrsig.resize(rrsig.len() + algorithm.signature_len(), 0);
            } else {
                rrsig.extend(key.sign(&signed)?);
            }
            rrsigs.push(rrsig);
        }
        Ok(rrsigs)
    }
}

/// An RRset's record data and its RRSIGs' data.
#[derive(Clone, Debug, Default)]
struct Signed {
    rdatas: Vec<Vec<u8>>,
    rrsigs: Vec<Vec<u8>>,
}

/// Bits of the address types at the apex (and at the wildcard), which
/// index the NSEC variants.
const HAS_A: usize = 1;
const HAS_AAAA: usize = 2;

/// Negative answers and NSEC records for one set of address types.
#[derive(Clone, Debug, Default)]
struct Denial {
    apex_nsec: Signed,
    /// With the wildcard.
    wildcard_nsec: Option<Signed>,
    nodata: Template,
    nxdomain: Template,
    /// NODATA at a name the wildcard answers for, by the NSEC that covers
    /// the name.
    wildcard_nodata: [Template; 2],
    /// The answer to an NSEC query at the apex, without and with RRSIGs.
    nsec: [Template; 2],
}

/// Signed answers with one address RRset.
#[derive(Clone, Debug, Default)]
struct AddressAnswers {
    apex: Template,
    /// Answers at names the wildcard answers for (owned by the query name),
    /// by the NSEC that covers the name.
    wildcard: [Template; 2],
}

/// The signed templates of a zone, for queries with the DO bit.
#[derive(Clone, Debug)]
pub struct SignedZone {
    config: Arc<ZoneConfig>,
    serial: u32,
    keys: Arc<ZoneKeys>,
    settings: SigningSettings,
    /// When the signatures were made (seconds since the epoch).
    signed_at: u64,
    auto: bool,
    /// The address types at the apex with fixed addresses.
    fixed_types: usize,
    soa: Template,
    ns: Template,
    /// DNSKEY, CDS and CDNSKEY answers, without and with RRSIGs.
    dnskey: [Template; 2],
    cds: [Template; 2],
    cdnskey: [Template; 2],
    /// The answer to an RRSIG query: the SOA's RRSIGs (one RRset, as for
    /// ANY, RFC 8482).
    rrsig: Template,
    /// By set of address types (`HAS_A | HAS_AAAA`).
    denials: [Denial; 4],
    /// Fixed addresses: the A and the AAAA answers.
    fixed: [Option<AddressAnswers>; 2],
    /// `dns_address auto`: the answers for each local address signed for.
    by_local: Vec<(IpAddr, AddressAnswers)>,
    max_records_len: usize,
}

/// Builds signed templates.
struct Maker<'a> {
    config: &'a ZoneConfig,
    serial: u32,
    signer: Signer<'a>,
}

impl Maker<'_> {
    /// NSEC records and the SOA in negative answers: min(SOA TTL, SOA
    /// minimum) (RFC 2308 §3, RFC 9077).
    fn negative_ttl(&self) -> u32 {
        self.config.ttl.min(self.config.soa_minimum)
    }

    fn sign(&self, owner: Owner, rtype: u16, ttl: u32, rdatas: Vec<Vec<u8>>) -> Result<Signed, DnssecError> {
        let rrsigs = self.signer.sign(owner, rtype, ttl, &rdatas)?;
        Ok(Signed { rdatas, rrsigs })
    }

    /// Records whose data is written as is (no names, or names that must
    /// not be compressed), then their RRSIGs when `signed`.
    #[allow(clippy::too_many_arguments)]
    fn put(
        b: &mut RecordsBuilder,
        owner: Owner,
        rtype: u16,
        ttl: u32,
        answer_ttl: bool,
        rrset: &Signed,
        signed: bool,
        section: usize,
    ) {
        for rdata in &rrset.rdatas {
            let at = b.record_owned(owner, rtype, ttl, answer_ttl);
            b.data(rdata);
            b.end_record(at);
            b.count(section);
        }
        if signed {
            Self::put_rrsigs(b, owner, ttl, answer_ttl, &rrset.rrsigs, section);
        }
    }

    /// RRSIG records carry the TTL of the RRset they cover (RFC 4034 §3),
    /// jittered with it.
    fn put_rrsigs(
        b: &mut RecordsBuilder,
        owner: Owner,
        ttl: u32,
        answer_ttl: bool,
        rrsigs: &[Vec<u8>],
        section: usize,
    ) {
        for rrsig in rrsigs {
            let at = b.record_owned(owner, rtype::RRSIG, ttl, answer_ttl);
            b.data(rrsig);
            b.end_record(at);
            b.count(section);
        }
    }

    fn soa_rdata(&self) -> Vec<u8> {
        let config = self.config;
        let mut rdata = config.nameservers[0].wire().to_vec();
        rdata.extend(config.contact().wire());
        for value in [
            self.serial,
            config.soa_refresh,
            config.soa_retry,
            config.soa_expire,
            config.soa_minimum,
        ] {
            rdata.extend(value.to_be_bytes());
        }
        rdata
    }

    fn soa_answer(&self, soa: &Signed) -> Template {
        let mut b = RecordsBuilder::new(true, rcode::NOERROR);
        b.soa(self.config, self.config.ttl, true, self.serial);
        b.count(ANSWER);
        Self::put_rrsigs(&mut b, Owner::Apex, self.config.ttl, true, &soa.rrsigs, ANSWER);
        b.finish()
    }

    fn ns_answer(&self, ns: &Signed) -> Template {
        let mut b = RecordsBuilder::new(true, rcode::NOERROR);
        b.ns(self.config, self.config.ttl);
        Self::put_rrsigs(&mut b, Owner::Apex, self.config.ttl, true, &ns.rrsigs, ANSWER);
        b.finish()
    }

    /// DNSKEY, CDS or CDNSKEY, without and with RRSIGs; their TTL is not
    /// jittered.
    fn key_answers(rtype: u16, ttl: u32, rrset: &Signed) -> [Template; 2] {
        [false, true].map(|signed| {
            let mut b = RecordsBuilder::new(true, rcode::NOERROR);
            Self::put(&mut b, Owner::Apex, rtype, ttl, false, rrset, signed, ANSWER);
            b.finish()
        })
    }

    fn rrsig_answer(&self, soa: &Signed) -> Template {
        let mut b = RecordsBuilder::new(true, rcode::NOERROR);
        Self::put_rrsigs(&mut b, Owner::Apex, self.config.ttl, true, &soa.rrsigs, ANSWER);
        b.finish()
    }

    /// NSEC records and negative answers when the apex has the address
    /// types `types`.
    fn denial(&self, types: usize, soa: &Signed) -> Result<Denial, DnssecError> {
        let config = self.config;
        let apex = &config.apex;
        let ttl = self.negative_ttl();
        let mut address_types = Vec::new();
        if types & HAS_A != 0 {
            address_types.push(rtype::A);
        }
        if types & HAS_AAAA != 0 {
            address_types.push(rtype::AAAA);
        }
        let mut apex_types = address_types.clone();
        apex_types.extend([
            rtype::NS,
            rtype::SOA,
            rtype::RRSIG,
            rtype::NSEC,
            rtype::DNSKEY,
            rtype::CDS,
            rtype::CDNSKEY,
        ]);
        let next = if config.wildcard {
            wildcard_wire(apex)
        } else {
            apex.wire().to_vec()
        };
        let apex_nsec = self.sign(Owner::Apex, rtype::NSEC, ttl, vec![nsec_rdata(&next, &apex_types)])?;
        let wildcard_nsec = if config.wildcard {
            let mut wildcard_types = address_types;
            wildcard_types.extend([rtype::RRSIG, rtype::NSEC]);
            let rdata = nsec_rdata(apex.wire(), &wildcard_types);
            Some(self.sign(Owner::Wildcard, rtype::NSEC, ttl, vec![rdata])?)
        } else {
            None
        };

        let negative = |rc: u16, nsecs: &[(Owner, &Signed)]| {
            let mut b = RecordsBuilder::new(true, rc);
            b.soa(config, ttl, false, self.serial);
            b.count(AUTHORITY);
            Self::put_rrsigs(&mut b, Owner::Apex, ttl, false, &soa.rrsigs, AUTHORITY);
            for &(owner, nsec) in nsecs {
                Self::put(&mut b, owner, rtype::NSEC, ttl, false, nsec, true, AUTHORITY);
            }
            b.finish()
        };
        let nodata = negative(rcode::NOERROR, &[(Owner::Apex, &apex_nsec)]);
        // Without the wildcard the apex's NSEC covers every name below the
        // apex, `*.<apex>` included; with it, NXDOMAIN is only for names
        // below `*.<apex>`, which the wildcard's NSEC covers.
        let nxdomain = match &wildcard_nsec {
            Some(wildcard) => negative(rcode::NXDOMAIN, &[(Owner::Wildcard, wildcard)]),
            None => negative(rcode::NXDOMAIN, &[(Owner::Apex, &apex_nsec)]),
        };
        // Wildcard NODATA (RFC 4035 §3.1.3.4): an NSEC covering the query
        // name and the wildcard's NSEC without the type; one record for the
        // names the wildcard's NSEC covers.
        let wildcard_nodata = match &wildcard_nsec {
            Some(wildcard) => [
                negative(
                    rcode::NOERROR,
                    &[(Owner::Apex, &apex_nsec), (Owner::Wildcard, wildcard)],
                ),
                negative(rcode::NOERROR, &[(Owner::Wildcard, wildcard)]),
            ],
            None => Default::default(),
        };
        let nsec = [false, true].map(|signed| {
            let mut b = RecordsBuilder::new(true, rcode::NOERROR);
            Self::put(&mut b, Owner::Apex, rtype::NSEC, ttl, false, &apex_nsec, signed, ANSWER);
            b.finish()
        });
        Ok(Denial {
            apex_nsec,
            wildcard_nsec,
            nodata,
            nxdomain,
            wildcard_nodata,
            nsec,
        })
    }

    /// Answers with the address RRset `addresses` (all of one family).
    fn addresses(&self, addresses: &[IpAddr], denial: &Denial) -> Result<AddressAnswers, DnssecError> {
        let ttl = self.config.ttl;
        let rtype = if addresses[0].is_ipv4() { rtype::A } else { rtype::AAAA };
        let rdatas: Vec<Vec<u8>> = addresses.iter().map(|a| address_octets(*a)).collect();
        let apex_rrsigs = self.signer.sign(Owner::Apex, rtype, ttl, &rdatas)?;
        let answer = |owner: Owner, rrsigs: &[Vec<u8>]| {
            let mut b = RecordsBuilder::new(true, rcode::NOERROR);
            for &addr in addresses {
                b.address_owned(owner, addr, ttl);
                b.count(ANSWER);
            }
            Self::put_rrsigs(&mut b, owner, ttl, true, rrsigs, ANSWER);
            b
        };
        let apex = answer(Owner::Apex, &apex_rrsigs).finish();
        let wildcard = match &denial.wildcard_nsec {
            Some(wildcard_nsec) => {
                // Signed as owned by `*.<apex>`, sent as owned by the query
                // name, with the NSEC proving the name itself does not
                // exist (RFC 4035 §3.1.3.3).
                let rrsigs = self.signer.sign(Owner::Wildcard, rtype, ttl, &rdatas)?;
                let covered = |cover: Cover| {
                    let mut b = answer(Owner::Qname, &rrsigs);
                    let (owner, nsec) = match cover {
                        Cover::Apex => (Owner::Apex, &denial.apex_nsec),
                        Cover::Wildcard => (Owner::Wildcard, wildcard_nsec),
                    };
                    let ttl = self.negative_ttl();
                    Self::put(&mut b, owner, rtype::NSEC, ttl, false, nsec, true, AUTHORITY);
                    b.finish()
                };
                [covered(Cover::Apex), covered(Cover::Wildcard)]
            }
            None => Default::default(),
        };
        Ok(AddressAnswers { apex, wildcard })
    }
}

impl SignedZone {
    /// Signs every template of the zone `config` describes at time `now`.
    pub(super) fn build(
        config: Arc<ZoneConfig>,
        serial: u32,
        keys: Arc<ZoneKeys>,
        settings: SigningSettings,
        local_addresses: &[IpAddr],
        now: u64,
    ) -> Result<SignedZone, DnssecError> {
        settings.check()?;
        if keys.signing.is_empty() {
            return Err(DnssecError::NoSigningKey);
        }
        let auto = config.addresses == Addresses::Auto;
        let fixed_list: &[IpAddr] = match &config.addresses {
            Addresses::Auto => &[],
            Addresses::List(list) => list,
        };
        let v4: Vec<IpAddr> = fixed_list.iter().copied().filter(IpAddr::is_ipv4).collect();
        let v6: Vec<IpAddr> = fixed_list.iter().copied().filter(IpAddr::is_ipv6).collect();
        let fixed_types = if v4.is_empty() { 0 } else { HAS_A } | if v6.is_empty() { 0 } else { HAS_AAAA };

        let maker = Maker {
            config: &config,
            serial,
            signer: signer(&config, &keys, &settings, now, false),
        };
        let ttl = config.ttl;
        let soa = maker.sign(Owner::Apex, rtype::SOA, ttl, vec![maker.soa_rdata()])?;
        let ns_rdatas = config.nameservers.iter().map(|n| n.wire().to_vec()).collect();
        let ns = maker.sign(Owner::Apex, rtype::NS, ttl, ns_rdatas)?;
        let dnskeys: Vec<Vec<u8>> = keys.dnskeys.iter().map(PublicKey::rdata).collect();
        let dnskey = maker.sign(Owner::Apex, rtype::DNSKEY, settings.key_ttl, dnskeys.clone())?;
        let cdnskey = maker.sign(Owner::Apex, rtype::CDNSKEY, settings.key_ttl, dnskeys)?;
        let cds_rdatas = keys.dnskeys.iter().map(PublicKey::ds_rdata).collect();
        let cds = maker.sign(Owner::Apex, rtype::CDS, settings.key_ttl, cds_rdatas)?;
        let denials = [
            maker.denial(0, &soa)?,
            maker.denial(HAS_A, &soa)?,
            maker.denial(HAS_AAAA, &soa)?,
            maker.denial(HAS_A | HAS_AAAA, &soa)?,
        ];
        let fixed_answers = |list: &[IpAddr]| -> Result<Option<AddressAnswers>, DnssecError> {
            match list.is_empty() {
                true => Ok(None),
                false => maker.addresses(list, &denials[fixed_types]).map(Some),
            }
        };
        let fixed = [fixed_answers(&v4)?, fixed_answers(&v6)?];
        // With `auto`, answers for addresses signed later are as large as
        // these, whatever the address.
        let mut max_records_len = 0;
        if auto {
            let sizing = Maker {
                signer: signer(&config, &keys, &settings, now, true),
                ..maker
            };
            for any in [IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V6(Ipv6Addr::UNSPECIFIED)] {
                let answers = sizing.addresses(&[any], &denials[types_of(any)])?;
                max_records_len = max_records_len.max(answers.max_records_len());
            }
        }

        let mut zone = SignedZone {
            soa: maker.soa_answer(&soa),
            ns: maker.ns_answer(&ns),
            dnskey: Maker::key_answers(rtype::DNSKEY, settings.key_ttl, &dnskey),
            cds: Maker::key_answers(rtype::CDS, settings.key_ttl, &cds),
            cdnskey: Maker::key_answers(rtype::CDNSKEY, settings.key_ttl, &cdnskey),
            rrsig: maker.rrsig_answer(&soa),
            denials,
            fixed,
            by_local: Vec::new(),
            max_records_len: 0,
            config: config.clone(),
            serial,
            keys: keys.clone(),
            settings,
            signed_at: now,
            auto,
            fixed_types,
        };
        zone.max_records_len = zone
            .templates()
            .map(|t| t.records.len())
            .fold(max_records_len, usize::max);
        if auto {
            for &addr in local_addresses {
                zone.add_address(addr)?;
            }
        }
        Ok(zone)
    }

    /// Signs the address RRset for one more local address (`dns_address
    /// auto`); a no-op for an address already signed. The new signatures
    /// expire with the others. Fails when the table is full.
    pub fn add_address(&mut self, local: IpAddr) -> Result<(), DnssecError> {
        if !self.auto {
            return Err(DnssecError::FixedAddresses);
        }
        let local = canonical_address(local);
        if self.by_local.iter().any(|(addr, _)| *addr == local) {
            return Ok(());
        }
        if self.by_local.len() >= self.settings.max_addresses {
            return Err(DnssecError::TableFull(self.settings.max_addresses));
        }
        let answers = {
            let maker = Maker {
                config: &self.config,
                serial: self.serial,
                signer: signer(&self.config, &self.keys, &self.settings, self.signed_at, false),
            };
            maker.addresses(&[local], &self.denials[types_of(local)])?
        };
        self.by_local.push((local, answers));
        Ok(())
    }

    /// The same zone, keys and local addresses signed again at time `now`:
    /// what the refresh timer installs with `Zone::set_signed`.
    pub fn resign(&self, now: u64) -> Result<SignedZone, DnssecError> {
        let addresses: Vec<IpAddr> = self.local_addresses().collect();
        SignedZone::build(
            self.config.clone(),
            self.serial,
            self.keys.clone(),
            self.settings,
            &addresses,
            now,
        )
    }

    /// When the signatures should be remade (seconds since the epoch).
    pub fn refresh_due(&self) -> u64 {
        self.signed_at + u64::from(self.settings.refresh)
    }

    /// When the signatures were made (seconds since the epoch).
    pub fn signed_at(&self) -> u64 {
        self.signed_at
    }

    /// The RRSIG inception and expiration (seconds since the epoch).
    pub fn validity(&self) -> (u64, u64) {
        (
            self.signed_at.saturating_sub(u64::from(self.settings.inception_skew)),
            self.signed_at + u64::from(self.settings.validity),
        )
    }

    /// The local addresses signed for (`dns_address auto`).
    pub fn local_addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_local.iter().map(|(addr, _)| *addr)
    }

    pub fn keys(&self) -> &ZoneKeys {
        &self.keys
    }

    /// The keys, shared (to sign the same zone with other addresses).
    pub(super) fn shared_keys(&self) -> Arc<ZoneKeys> {
        self.keys.clone()
    }

    pub fn settings(&self) -> &SigningSettings {
        &self.settings
    }

    pub(super) fn max_records_len(&self) -> usize {
        self.max_records_len
    }

    /// Whether these templates were made for the zone `config` describes.
    pub(super) fn is_for(&self, config: &Arc<ZoneConfig>) -> bool {
        Arc::ptr_eq(&self.config, config) || *self.config == **config
    }

    /// The signed template for what a query with the DO bit asks for, or
    /// the local address it needs signatures for.
    pub(super) fn select(&self, wanted: Wanted, cover: Cover, local: Option<IpAddr>) -> Result<&Template, IpAddr> {
        let denial = self.denial(local);
        Ok(match wanted {
            Wanted::Addresses(qtype) => match self.addresses(qtype, local)? {
                Some(answers) => &answers.apex,
                // RFC 8482: ANY gets one RRset.
                None if qtype == rtype::ANY => &self.ns,
                None => &denial.nodata,
            },
            Wanted::WildcardAddresses(qtype) => match self.addresses(qtype, local)? {
                Some(answers) => &answers.wildcard[cover as usize],
                None => &denial.wildcard_nodata[cover as usize],
            },
            Wanted::Ns => &self.ns,
            Wanted::Soa => &self.soa,
            Wanted::Dnssec(qtype) => self.dnssec_answer(qtype, local, true),
            Wanted::Nodata => &denial.nodata,
            Wanted::WildcardNodata => &denial.wildcard_nodata[cover as usize],
            Wanted::Nxdomain => &denial.nxdomain,
        })
    }

    /// The answer to a DNSKEY, CDS, CDNSKEY, NSEC or RRSIG query at the apex
    /// without the DO bit: the records exist whether or not the client
    /// wants signatures.
    pub(super) fn plain_template(&self, qtype: u16, local: Option<IpAddr>) -> &Template {
        self.dnssec_answer(qtype, local, false)
    }

    fn dnssec_answer(&self, qtype: u16, local: Option<IpAddr>, signed: bool) -> &Template {
        let i = usize::from(signed);
        match qtype {
            rtype::DNSKEY => &self.dnskey[i],
            rtype::CDS => &self.cds[i],
            rtype::CDNSKEY => &self.cdnskey[i],
            rtype::NSEC => &self.denial(local).nsec[i],
            _ => &self.rrsig,
        }
    }

    /// Negative answers for the address types this query's answers have.
    fn denial(&self, local: Option<IpAddr>) -> &Denial {
        let types = match (self.auto, local) {
            (false, _) => self.fixed_types,
            (true, Some(local)) => types_of(canonical_address(local)),
            (true, None) => 0,
        };
        &self.denials[types]
    }

    /// The signed answers with `qtype` addresses (ANY: A first) for a query
    /// that arrived on `local`; `Ok(None)` when there are none of the type.
    fn addresses(&self, qtype: u16, local: Option<IpAddr>) -> Result<Option<&AddressAnswers>, IpAddr> {
        if !self.auto {
            let [a, aaaa] = &self.fixed;
            return Ok(match qtype {
                rtype::A => a.as_ref(),
                rtype::AAAA => aaaa.as_ref(),
                _ => a.as_ref().or(aaaa.as_ref()),
            });
        }
        let Some(local) = local.map(canonical_address) else {
            return Ok(None);
        };
        let family_fits = match qtype {
            rtype::A => local.is_ipv4(),
            rtype::AAAA => local.is_ipv6(),
            _ => true,
        };
        if !family_fits {
            return Ok(None);
        }
        match self.by_local.iter().find(|(addr, _)| *addr == local) {
            Some((_, answers)) => Ok(Some(answers)),
            None => Err(local),
        }
    }

    fn templates(&self) -> impl Iterator<Item = &Template> {
        let denials = self.denials.iter().flat_map(|d| {
            [&d.nodata, &d.nxdomain]
                .into_iter()
                .chain(&d.wildcard_nodata)
                .chain(&d.nsec)
        });
        let addresses = self
            .fixed
            .iter()
            .flatten()
            .chain(self.by_local.iter().map(|(_, answers)| answers))
            .flat_map(|a| [&a.apex].into_iter().chain(&a.wildcard));
        [&self.soa, &self.ns, &self.rrsig]
            .into_iter()
            .chain(&self.dnskey)
            .chain(&self.cds)
            .chain(&self.cdnskey)
            .chain(denials)
            .chain(addresses)
    }
}

impl AddressAnswers {
    fn max_records_len(&self) -> usize {
        [&self.apex]
            .into_iter()
            .chain(&self.wildcard)
            .map(|t| t.records.len())
            .max()
            .unwrap_or(0)
    }
}

fn signer<'a>(
    config: &'a ZoneConfig,
    keys: &'a ZoneKeys,
    settings: &SigningSettings,
    now: u64,
    dry_run: bool,
) -> Signer<'a> {
    // RRSIG times are seconds modulo 2^32 (RFC 4034 §3.1.5).
    Signer {
        apex: &config.apex,
        keys,
        inception: now.saturating_sub(u64::from(settings.inception_skew)) as u32,
        expiration: (now + u64::from(settings.validity)) as u32,
        dry_run,
    }
}

/// `*.<apex>` in wire form.
fn wildcard_wire(apex: &Name) -> Vec<u8> {
    let mut wire = vec![1, b'*'];
    wire.extend(apex.wire());
    wire
}

/// NSEC record data: the next name, uncompressed, and the type bit map
/// (RFC 4034 §4.1.2); every type here is below 256, in window 0.
fn nsec_rdata(next: &[u8], types: &[u16]) -> Vec<u8> {
    let highest = types.iter().copied().max().unwrap_or(0);
    debug_assert!(highest < 256);
    let len = usize::from(highest / 8) + 1;
    let mut rdata = next.to_vec();
    rdata.extend([0, len as u8]);
    let map_at = rdata.len();
    rdata.resize(map_at + len, 0);
    for &t in types {
        rdata[map_at + usize::from(t / 8)] |= 0x80 >> (t % 8);
    }
    rdata
}

/// IPv4-mapped IPv6 addresses are answered as IPv4 (as unsigned answers are).
fn canonical_address(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn types_of(addr: IpAddr) -> usize {
    if addr.is_ipv4() {
        HAS_A
    } else {
        HAS_AAAA
    }
}

fn address_octets(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsec_type_bitmap() {
        // RFC 4034 §4.3's example: A MX RRSIG NSEC TYPE1234 has window 0
        // `00 06 40 01 00 00 00 03`; here only window 0 is used.
        let rdata = nsec_rdata(b"\x00", &[rtype::A, 15, rtype::RRSIG, rtype::NSEC]);
        assert_eq!(rdata, [0, 0, 6, 0x40, 0x01, 0, 0, 0, 0x03]);
        let apex = nsec_rdata(
            b"\x00",
            &[
                rtype::A,
                rtype::NS,
                rtype::SOA,
                rtype::RRSIG,
                rtype::NSEC,
                rtype::DNSKEY,
                rtype::CDS,
                rtype::CDNSKEY,
            ],
        );
        // A NS SOA | RRSIG NSEC DNSKEY (46-48) | CDS CDNSKEY (59, 60).
        assert_eq!(apex, [0, 0, 8, 0x62, 0, 0, 0, 0, 0x03, 0x80, 0x18]);
    }

    #[test]
    fn signing_settings() {
        let defaults = SigningSettings::parse([]).unwrap();
        assert_eq!(defaults, SigningSettings::default());
        assert_eq!(
            (defaults.validity, defaults.inception_skew, defaults.refresh),
            (14 * 86400, 3600, 7 * 86400)
        );
        let s =
            SigningSettings::parse(["validity=30d", "inception_skew=2h", "key_ttl=10m", "max_addresses=8"]).unwrap();
        assert_eq!(s.validity, 30 * 86400);
        assert_eq!(s.refresh, 15 * 86400, "half the validity by default");
        assert_eq!((s.inception_skew, s.key_ttl, s.max_addresses), (7200, 600, 8));
        assert_eq!(SigningSettings::parse(["refresh=1d"]).unwrap().refresh, 86400);
        for bad in [
            "validity=10m",
            "validity=400d",
            "refresh=14d",
            "refresh=30s",
            "inception_skew=15d",
            "key_ttl=0",
            "key_ttl=8d",
            "max_addresses=0",
            "max_addresses=lots",
        ] {
            assert!(
                matches!(SigningSettings::parse([bad]), Err(ConfigError::Signing(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            SigningSettings::parse(["validity=xyz"]),
            Err(ConfigError::Time(_))
        ));
        assert!(matches!(
            SigningSettings::parse(["lifetime=1d"]),
            Err(ConfigError::Parameter(_))
        ));
    }
}
