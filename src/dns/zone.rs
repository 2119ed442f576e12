//! Answer templates, built once from a `ZoneConfig`, and `Zone::respond`, the
//! per-query path: parse, select a template, copy it, patch it.
//!
//! Every response is laid out as
//! `header | question (copied from the query) | records (template) | OPT`.
//! Record owners are compression pointers to the zone apex inside the copied
//! question; names in record data are compressed against each other. Since
//! the question's length varies (names below the apex), every pointer is
//! patched per query from a list prepared with the template. Nothing here
//! allocates once the zone is built.
//!
//! A signed zone (`dnssec`) has more templates, with RRSIG and NSEC records
//! made at configuration time; `respond` picks them for queries with the DO
//! bit and otherwise works the same way.

use super::config::{Addresses, ConfigError, ZoneConfig};
pub use super::cookie::CookieStatus;
use super::cookie::{self, CookieSecrets};
use super::dnssec::{DnssecError, SignedZone, SigningSettings, ZoneKeys};
use super::name::{label_boundaries, Name};
use super::query::{self, Edns, Query, Question};
use super::wire::{self, class, flag, put_u16, put_u32, rcode, rtype, HEADER_LEN};
use std::net::IpAddr;
use std::sync::Arc;

/// Transport the query came over; it sets the response size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Per-query facts the engine cannot see in the message.
#[derive(Clone, Copy, Debug)]
pub struct QueryContext<'a> {
    pub transport: Transport,
    /// The address the query arrived on (for `dns_address auto`).
    pub local_addr: Option<IpAddr>,
    /// A random value for TTL jitter.
    pub random: u32,
    /// The client's address, for DNS cookies.
    pub client_addr: Option<IpAddr>,
    /// Seconds since the epoch, for DNS cookies.
    pub now: u32,
    /// Server secrets when DNS cookies are on.
    pub cookies: Option<&'a CookieSecrets>,
}

impl QueryContext<'_> {
    /// A context for `transport` with nothing else known.
    pub fn new(transport: Transport) -> QueryContext<'static> {
        QueryContext {
            transport,
            local_addr: None,
            random: 0,
            client_addr: None,
            now: 0,
            cookies: None,
        }
    }
}

/// What was sent, for logging and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answered {
    /// Length of the response written to the output buffer.
    pub len: usize,
    /// Response code, extended codes included (e.g. 16 = BADVERS).
    pub rcode: u16,
    /// Query type, when the question was readable.
    pub qtype: Option<u16>,
    /// Length of the query name at offset 12 of the query, when readable.
    pub qname_len: Option<usize>,
    pub truncated: bool,
    /// What the query's DNS cookie said, when it had one and cookies are on.
    pub cookie: Option<CookieStatus>,
    /// A DNSSEC query arrived on a local address the signed zone has no
    /// signatures for yet (`dns_address auto`): the response is SERVFAIL.
    /// The caller may sign for it (`Zone::add_signed_address`) and answer
    /// the query again.
    pub missing_signatures: Option<IpAddr>,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Template {
    /// AA bit and the low four bits of the rcode.
    flags: u16,
    pub(super) rcode: u16,
    /// Answer, authority and additional counts (OPT excluded).
    counts: [u16; 3],
    pub(super) records: Vec<u8>,
    /// Positions of the compression pointers to the apex (record owners).
    apex_pointers: Vec<u16>,
    /// Positions of the compression pointers to the whole query name: the
    /// owners of signed wildcard answers, whose NSEC records are owned by
    /// the apex in the same template.
    qname_pointers: Vec<u16>,
    /// (position, target) of compression pointers to names inside `records`;
    /// both are relative to the start of the records.
    record_pointers: Vec<(u16, u16)>,
    /// Positions of the TTL fields that take the (jittered) answer TTL.
    answer_ttls: Vec<u16>,
    /// Position of the address to fill in for `dns_address auto`.
    local_address_at: Option<u16>,
}

/// The owner of a record in a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    Apex,
    /// `*.<apex>`: a label `*` and a pointer to the apex.
    Wildcard,
    /// The query name, whatever it is (wildcard answers).
    Qname,
}

/// What a query asks for, once its name is located.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    /// A, AAAA or ANY at the apex.
    Addresses(u16),
    /// A, AAAA or ANY at a name the wildcard answers for.
    WildcardAddresses(u16),
    Ns,
    Soa,
    /// DNSKEY, CDS, CDNSKEY, NSEC or RRSIG at the apex of a signed zone.
    Dnssec(u16),
    Nodata,
    /// Another type at a name the wildcard answers for.
    WildcardNodata,
    Nxdomain,
}

/// Which NSEC record covers a name below the apex when the zone has the
/// wildcard: the apex's (apex → `*.<apex>`) for names that sort before
/// `*.<apex>`, the wildcard's (`*.<apex>` → apex) for all others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Cover {
    Apex = 0,
    Wildcard = 1,
}

/// Where a query name sits relative to the zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    Apex,
    Below,
    Outside,
}

/// One served zone: its templates and response parameters.
#[derive(Clone, Debug)]
pub struct Zone {
    /// What the zone was built from, kept for signing it.
    config: Arc<ZoneConfig>,
    apex: Name,
    ttl: u32,
    ttl_jitter: u32,
    edns_payload: u16,
    nsid: Option<Vec<u8>>,
    auto_address: bool,
    wildcard: bool,
    a: Option<Template>,
    aaaa: Option<Template>,
    ns: Template,
    soa: Template,
    nodata: Template,
    nxdomain: Template,
    max_records_len: usize,
    serial: u32,
    /// Signed templates, for queries with the DO bit.
    signed: Option<SignedZone>,
}

/// Builds the record section of one template.
pub(super) struct RecordsBuilder {
    template: Template,
    /// Every name suffix written uncompressed so far, by position.
    written_names: Vec<(u16, Vec<u8>)>,
}

impl RecordsBuilder {
    pub(super) fn new(aa: bool, rcode: u16) -> Self {
        let flags = if aa { flag::AA } else { 0 } | (rcode & 0x0f);
        RecordsBuilder {
            template: Template {
                flags,
                rcode,
                ..Template::default()
            },
            written_names: Vec::new(),
        }
    }

    fn pos(&self) -> u16 {
        self.template.records.len() as u16
    }

    /// A record owner: a pointer to the apex at the end of the question.
    fn apex_pointer(&mut self) {
        let at = self.pos();
        self.template.apex_pointers.push(at);
        self.template.records.extend([0xc0, 0]);
    }

    /// Writes a name in record data, compressed against names written
    /// earlier in this template. Data names are never compressed against the
    /// question, so they keep their configured (lower) case whatever case the
    /// client used.
    fn name(&mut self, name: &Name) {
        let wire = name.wire();
        for start in label_boundaries(wire) {
            let suffix = &wire[start..];
            let found = self
                .written_names
                .iter()
                .find(|(_, written)| written.as_slice() == suffix);
            if let Some(&(target, _)) = found {
                self.template.records.extend(&wire[..start]);
                let at = self.pos();
                self.template.record_pointers.push((at, target));
                self.template.records.extend([0xc0, 0]);
                return;
            }
        }
        let base = self.pos();
        for start in label_boundaries(wire) {
            self.written_names.push((base + start as u16, wire[start..].to_vec()));
        }
        self.template.records.extend(wire);
    }

    /// Starts a record owned by the apex; returns where RDLENGTH goes.
    pub(super) fn record(&mut self, rtype: u16, ttl: u32, answer_ttl: bool) -> usize {
        self.record_owned(Owner::Apex, rtype, ttl, answer_ttl)
    }

    /// Starts a record owned by `owner`; returns where RDLENGTH goes.
    pub(super) fn record_owned(&mut self, owner: Owner, rtype: u16, ttl: u32, answer_ttl: bool) -> usize {
        match owner {
            Owner::Apex => self.apex_pointer(),
            Owner::Wildcard => {
                self.template.records.extend([1, b'*']);
                self.apex_pointer();
            }
            Owner::Qname => {
                let at = self.pos();
                self.template.qname_pointers.push(at);
                self.template.records.extend([0xc0, 0]);
            }
        }
        self.template.records.extend(rtype.to_be_bytes());
        self.template.records.extend(class::IN.to_be_bytes());
        if answer_ttl {
            let at = self.pos();
            self.template.answer_ttls.push(at);
        }
        self.template.records.extend(ttl.to_be_bytes());
        let rdlength_at = self.template.records.len();
        self.template.records.extend([0, 0]);
        rdlength_at
    }

    /// Record data written as is: RRSIG and NSEC data, whose names must not
    /// be compressed (RFC 4034 §3.1.7, §4.1.1), and data with no names.
    pub(super) fn data(&mut self, bytes: &[u8]) {
        self.template.records.extend(bytes);
    }

    pub(super) fn end_record(&mut self, rdlength_at: usize) {
        let rdlength = (self.template.records.len() - rdlength_at - 2) as u16;
        put_u16(&mut self.template.records, rdlength_at, rdlength);
    }

    fn address(&mut self, addr: IpAddr, ttl: u32) {
        self.address_owned(Owner::Apex, addr, ttl);
    }

    pub(super) fn address_owned(&mut self, owner: Owner, addr: IpAddr, ttl: u32) {
        let rtype = if addr.is_ipv4() { rtype::A } else { rtype::AAAA };
        let at = self.record_owned(owner, rtype, ttl, true);
        match addr {
            IpAddr::V4(v4) => self.template.records.extend(v4.octets()),
            IpAddr::V6(v6) => self.template.records.extend(v6.octets()),
        }
        self.end_record(at);
    }

    /// One address record whose data is filled in per query.
    fn local_address(&mut self, rtype: u16, ttl: u32) {
        let at = self.record(rtype, ttl, true);
        self.template.local_address_at = Some(self.pos());
        let len = if rtype == rtype::A { 4 } else { 16 };
        self.template.records.extend(std::iter::repeat(0).take(len));
        self.end_record(at);
    }

    /// The apex NS set, in configuration order.
    pub(super) fn ns(&mut self, config: &ZoneConfig, ttl: u32) {
        for name in &config.nameservers {
            let at = self.record(rtype::NS, ttl, true);
            self.name(name);
            self.end_record(at);
            self.count(ANSWER);
        }
    }

    pub(super) fn soa(&mut self, config: &ZoneConfig, ttl: u32, answer_ttl: bool, serial: u32) {
        let at = self.record(rtype::SOA, ttl, answer_ttl);
        self.name(&config.nameservers[0]);
        self.name(&config.contact());
        for value in [
            serial,
            config.soa_refresh,
            config.soa_retry,
            config.soa_expire,
            config.soa_minimum,
        ] {
            self.template.records.extend(value.to_be_bytes());
        }
        self.end_record(at);
    }

    pub(super) fn count(&mut self, section: usize) {
        self.template.counts[section] += 1;
    }

    pub(super) fn finish(self) -> Template {
        self.template
    }
}

pub(super) const ANSWER: usize = 0;
pub(super) const AUTHORITY: usize = 1;

impl Zone {
    /// Validates `config` and builds every template.
    pub fn build(config: &ZoneConfig) -> Result<Zone, ConfigError> {
        config.validate()?;
        let apex = &config.apex;
        let ttl = config.ttl;
        let serial = config.serial();

        let addresses_of = |want_v4: bool| -> Option<Template> {
            let mut b = RecordsBuilder::new(true, rcode::NOERROR);
            match &config.addresses {
                Addresses::Auto => {
                    b.local_address(if want_v4 { rtype::A } else { rtype::AAAA }, ttl);
                    b.count(ANSWER);
                }
                Addresses::List(list) => {
                    for addr in list.iter().filter(|a| a.is_ipv4() == want_v4) {
                        b.address(*addr, ttl);
                        b.count(ANSWER);
                    }
                }
            }
            (b.template.counts[ANSWER] > 0).then(|| b.finish())
        };
        let a = addresses_of(true);
        let aaaa = addresses_of(false);

        let mut ns = RecordsBuilder::new(true, rcode::NOERROR);
        ns.ns(config, ttl);

        let mut soa = RecordsBuilder::new(true, rcode::NOERROR);
        soa.soa(config, ttl, true, serial);
        soa.count(ANSWER);

        // Negative answers: SOA in authority with TTL min(SOA TTL, minimum)
        // (RFC 2308 §3), not jittered.
        let negative_ttl = ttl.min(config.soa_minimum);
        let negative = |rc| {
            let mut b = RecordsBuilder::new(true, rc);
            b.soa(config, negative_ttl, false, serial);
            b.count(AUTHORITY);
            b.finish()
        };

        let zone = Zone {
            config: Arc::new(config.clone()),
            apex: apex.clone(),
            ttl,
            ttl_jitter: config.ttl_jitter,
            edns_payload: config.edns_payload,
            nsid: config.nsid.clone(),
            auto_address: config.addresses == Addresses::Auto,
            wildcard: config.wildcard,
            a,
            aaaa,
            ns: ns.finish(),
            soa: soa.finish(),
            nodata: negative(rcode::NOERROR),
            nxdomain: negative(rcode::NXDOMAIN),
            max_records_len: 0,
            serial,
            signed: None,
        };
        let max_records_len = [&zone.a, &zone.aaaa]
            .into_iter()
            .flatten()
            .chain([&zone.ns, &zone.soa, &zone.nodata, &zone.nxdomain])
            .map(|t| t.records.len())
            .max()
            .unwrap_or(0);
        let zone = Zone {
            max_records_len,
            ..zone
        };
        if zone.max_response_len() > wire::MAX_MESSAGE_LEN {
            return Err(ConfigError::TooLarge);
        }
        Ok(zone)
    }

    pub fn apex(&self) -> &Name {
        &self.apex
    }

    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// What the zone was built from.
    pub fn config(&self) -> &ZoneConfig {
        &self.config
    }

    /// The same zone answering with other apex addresses (an address file
    /// or an UPDATE changed them). A signed zone is signed again with the
    /// same keys and settings at `now` (seconds since the epoch): an
    /// address change re-signs the address RRsets here.
    pub fn with_addresses(&self, addresses: Addresses, now: u64) -> Result<Zone, ConfigError> {
        let mut config = (*self.config).clone();
        config.addresses = addresses;
        let mut zone = Zone::build(&config)?;
        if let Some(signed) = &self.signed {
            let locals: Vec<IpAddr> = signed.local_addresses().collect();
            let signing = |e: DnssecError| ConfigError::Signing(e.to_string());
            let resigned = zone
                .sign_for(signed.shared_keys(), *signed.settings(), &locals, now)
                .map_err(signing)?;
            zone.set_signed(resigned).map_err(signing)?;
        }
        Ok(zone)
    }

    /// Size of the largest response this zone can produce: the buffer size
    /// `respond` needs to never truncate a TCP answer. Signing the zone
    /// makes it larger; it is the same for every address signed later.
    pub fn max_response_len(&self) -> usize {
        let records = self
            .signed
            .as_ref()
            .map_or(self.max_records_len, |s| s.max_records_len().max(self.max_records_len));
        HEADER_LEN + wire::MAX_NAME_LEN + 4 + records + self.opt_len(true, true)
    }

    /// Signs the zone's answers with `keys` at time `now` (seconds since the
    /// epoch): the apex's DNSKEY, CDS, CDNSKEY, SOA, NS and NSEC RRsets, and
    /// its addresses. With `dns_address auto`, `local_addresses` are the
    /// addresses queries may arrive on (more can be added later with
    /// `add_signed_address`); otherwise they are ignored. Install the result
    /// with `set_signed`.
    pub fn sign_for(
        &self,
        keys: Arc<ZoneKeys>,
        settings: SigningSettings,
        local_addresses: &[IpAddr],
        now: u64,
    ) -> Result<SignedZone, DnssecError> {
        let signed = SignedZone::build(self.config.clone(), self.serial, keys, settings, local_addresses, now)?;
        if self.response_len_with(&signed) > wire::MAX_MESSAGE_LEN {
            return Err(DnssecError::TooLarge);
        }
        Ok(signed)
    }

    fn response_len_with(&self, signed: &SignedZone) -> usize {
        HEADER_LEN + wire::MAX_NAME_LEN + 4 + signed.max_records_len() + self.opt_len(true, true)
    }

    /// Installs signed templates (from `sign_for` or `SignedZone::resign`),
    /// replacing any previous ones, which are returned.
    pub fn set_signed(&mut self, signed: SignedZone) -> Result<Option<SignedZone>, DnssecError> {
        if !signed.is_for(&self.config) {
            return Err(DnssecError::OtherZone);
        }
        Ok(self.signed.replace(signed))
    }

    /// The signed templates in use, if the zone is signed.
    pub fn signed(&self) -> Option<&SignedZone> {
        self.signed.as_ref()
    }

    /// Signs the address RRset for one more local address (`dns_address
    /// auto`), as `Answered::missing_signatures` asks; a no-op for an
    /// address already signed.
    pub fn add_signed_address(&mut self, local: IpAddr) -> Result<(), DnssecError> {
        match self.signed.as_mut() {
            Some(signed) => signed.add_address(local),
            None => Err(DnssecError::NotSigned),
        }
    }

    /// When the signatures should be remade (`SignedZone::resign`), in
    /// seconds since the epoch; `None` for an unsigned zone.
    pub fn next_refresh(&self) -> Option<u64> {
        self.signed.as_ref().map(SignedZone::refresh_due)
    }

    fn opt_len(&self, nsid_requested: bool, cookie: bool) -> usize {
        let nsid = match (&self.nsid, nsid_requested) {
            (Some(nsid), true) => 4 + nsid.len(),
            _ => 0,
        };
        let cookie = if cookie { 4 + cookie::RESPONSE_COOKIE_LEN } else { 0 };
        11 + nsid + cookie
    }

    fn locate(&self, qname: &[u8]) -> Location {
        let apex = self.apex.wire();
        if qname.len() < apex.len() {
            return Location::Outside;
        }
        let cut = qname.len() - apex.len();
        if !qname[cut..].eq_ignore_ascii_case(apex) {
            return Location::Outside;
        }
        if cut == 0 {
            return Location::Apex;
        }
        let mut at = 0;
        while at < cut {
            at += 1 + qname[at] as usize;
        }
        if at == cut {
            Location::Below
        } else {
            Location::Outside
        }
    }

    /// Template for an address query at the apex, if this host has one.
    fn address_template(&self, qtype: u16, local: Option<IpAddr>) -> Option<&Template> {
        let template = if qtype == rtype::A {
            self.a.as_ref()
        } else {
            self.aaaa.as_ref()
        };
        if !self.auto_address {
            return template;
        }
        let local_is_v4 = match local? {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some(),
        };
        template.filter(|_| local_is_v4 == (qtype == rtype::A))
    }

    /// Writes the response to `msg` into `out` and describes it, or returns
    /// `None` when no response may be sent (or `out` cannot hold even a
    /// truncated one).
    pub fn respond(&self, msg: &[u8], ctx: &QueryContext<'_>, out: &mut [u8]) -> Option<Answered> {
        let query = query::parse(msg)?;
        let question = query.question;
        if query.malformed {
            return self.write(&query, question.as_ref(), None, rcode::FORMERR, ctx, out);
        }
        if query.opcode() != wire::opcode::QUERY {
            return self.write(&query, question.as_ref(), None, rcode::NOTIMP, ctx, out);
        }
        let Some(question) = question else {
            // No question: only a cookie exchange (RFC 7873 §5.4) is valid.
            return match self.cookie_status(&query, ctx) {
                Some(CookieStatus::Invalid) => self.write(&query, None, None, rcode::BADCOOKIE, ctx, out),
                Some(_) => self.write(&query, None, None, rcode::NOERROR, ctx, out),
                None => self.write(&query, None, None, rcode::FORMERR, ctx, out),
            };
        };
        if query.edns.is_some_and(|e| e.version > 0) {
            return self.write(&query, Some(&question), None, rcode::BADVERS, ctx, out);
        }
        if question.qtype == rtype::OPT {
            return self.write(&query, Some(&question), None, rcode::FORMERR, ctx, out);
        }
        if question.qclass != class::IN {
            return self.write(&query, Some(&question), None, rcode::REFUSED, ctx, out);
        }
        let location = self.locate(question.qname);
        let signed = self.signed.as_ref();
        let mut cover = Cover::Wildcard;
        let wanted = match location {
            Location::Outside => None,
            Location::Below if self.wildcard => {
                let (label, below_label) = self.label_below_apex(question.qname);
                if label[0] < b'*' {
                    cover = Cover::Apex;
                }
                if label == b"*" && below_label {
                    // `*.<apex>` exists, so it is the closest encloser of the
                    // names below it, and no wildcard answers for them
                    // (RFC 4592 §2.2.1).
                    Some(Wanted::Nxdomain)
                } else {
                    // As a wildcard (RFC 4592) with the apex's addresses:
                    // the answer's owner is the name asked for.
                    Some(match question.qtype {
                        rtype::A | rtype::AAAA | rtype::ANY => Wanted::WildcardAddresses(question.qtype),
                        _ => Wanted::WildcardNodata,
                    })
                }
            }
            Location::Below => Some(Wanted::Nxdomain),
            Location::Apex => match question.qtype {
                rtype::A | rtype::AAAA | rtype::ANY => Some(Wanted::Addresses(question.qtype)),
                rtype::NS => Some(Wanted::Ns),
                rtype::SOA => Some(Wanted::Soa),
                rtype::AXFR | rtype::IXFR => None,
                rtype::MAILA | rtype::MAILB => {
                    return self.write(&query, Some(&question), None, rcode::NOTIMP, ctx, out);
                }
                rtype::DNSKEY | rtype::CDS | rtype::CDNSKEY | rtype::NSEC | rtype::RRSIG if signed.is_some() => {
                    Some(Wanted::Dnssec(question.qtype))
                }
                // DS included: it belongs to the parent (RFC 4035 §3.1.4.1).
                _ => Some(Wanted::Nodata),
            },
        };
        let Some(wanted) = wanted else {
            return self.write(&query, Some(&question), None, rcode::REFUSED, ctx, out);
        };
        let dnssec_ok = query.edns.is_some_and(|e| e.dnssec_ok);
        let (template, owner_is_qname) = match signed {
            Some(signed) if dnssec_ok => match signed.select(wanted, cover, ctx.local_addr) {
                Ok(template) => (template, false),
                Err(missing) => {
                    let mut answered = self.write(&query, Some(&question), None, rcode::SERVFAIL, ctx, out)?;
                    answered.missing_signatures = Some(missing);
                    return Some(answered);
                }
            },
            _ => self.plain_template(wanted, ctx.local_addr),
        };
        self.assemble(
            &query,
            Some(&question),
            Some(template),
            template.rcode,
            ctx,
            out,
            owner_is_qname,
        )
    }

    /// The template for an answer without DNSSEC records, and whether its
    /// owners are the query name.
    fn plain_template(&self, wanted: Wanted, local: Option<IpAddr>) -> (&Template, bool) {
        let addresses = |qtype| match qtype {
            // RFC 8482: one RRset, the one clients most likely want.
            rtype::ANY => self
                .address_template(rtype::A, local)
                .or_else(|| self.address_template(rtype::AAAA, local)),
            _ => self.address_template(qtype, local),
        };
        match wanted {
            Wanted::Addresses(rtype::ANY) => (addresses(rtype::ANY).unwrap_or(&self.ns), false),
            Wanted::Addresses(qtype) => (addresses(qtype).unwrap_or(&self.nodata), false),
            Wanted::WildcardAddresses(qtype) => match addresses(qtype) {
                Some(t) => (t, true),
                None => (&self.nodata, false),
            },
            Wanted::Ns => (&self.ns, false),
            Wanted::Soa => (&self.soa, false),
            Wanted::Dnssec(qtype) => match &self.signed {
                Some(signed) => (signed.plain_template(qtype, local), false),
                None => (&self.nodata, false),
            },
            Wanted::Nodata | Wanted::WildcardNodata => (&self.nodata, false),
            Wanted::Nxdomain => (&self.nxdomain, false),
        }
    }

    /// The label of a name below the apex just above the apex, and whether
    /// the name has more labels.
    fn label_below_apex<'q>(&self, qname: &'q [u8]) -> (&'q [u8], bool) {
        let cut = qname.len() - self.apex.wire().len();
        let mut at = 0;
        loop {
            let end = at + 1 + qname[at] as usize;
            if end == cut {
                return (&qname[at + 1..end], at > 0);
            }
            at = end;
        }
    }

    /// A REFUSED response to `msg`, for a service that must turn queries
    /// away (see `dns_silence refuse`); `None` when no response may be sent.
    pub fn refuse(&self, msg: &[u8], ctx: &QueryContext, out: &mut [u8]) -> Option<Answered> {
        let query = query::parse(msg)?;
        self.write(&query, query.question.as_ref(), None, rcode::REFUSED, ctx, out)
    }

    /// A truncated reply (TC=1, question and OPT only) to `msg`: what a
    /// rate-limited client gets now and then, so a real one retries over TCP.
    pub fn slip(&self, msg: &[u8], ctx: &QueryContext<'_>, out: &mut [u8]) -> Option<Answered> {
        let query = query::parse(msg)?;
        let question = query.question?;
        let mut a = self.write(&query, Some(&question), None, rcode::NOERROR, ctx, out)?;
        out[2] |= (flag::TC >> 8) as u8;
        a.truncated = true;
        Some(a)
    }

    /// What the query's cookie says, when it has one and cookies are on.
    fn cookie_status(&self, query: &Query<'_>, ctx: &QueryContext<'_>) -> Option<CookieStatus> {
        let (secrets, ip) = (ctx.cookies?, ctx.client_addr?);
        let (client, server) = query.cookie()?;
        Some(if server.is_empty() {
            CookieStatus::ClientOnly
        } else {
            cookie::check(secrets, client, server, ip, ctx.now)
        })
    }

    /// Assembles header, question, template records and OPT into `out`.
    fn write(
        &self,
        query: &Query<'_>,
        question: Option<&Question<'_>>,
        template: Option<&Template>,
        rcode: u16,
        ctx: &QueryContext,
        out: &mut [u8],
    ) -> Option<Answered> {
        self.assemble(query, question, template, rcode, ctx, out, false)
    }

    /// `write`, with record owners pointing at the whole query name instead
    /// of the apex inside it when `owner_is_qname`.
    #[allow(clippy::too_many_arguments)]
    fn assemble(
        &self,
        query: &Query<'_>,
        question: Option<&Question<'_>>,
        template: Option<&Template>,
        rcode: u16,
        ctx: &QueryContext,
        out: &mut [u8],
        owner_is_qname: bool,
    ) -> Option<Answered> {
        let edns = query.edns;
        let cookie = self.cookie_status(query, ctx);
        let question_len = question.map_or(0, Question::wire_len);
        let opt_len = edns.map_or(0, |e| self.opt_len(e.nsid_requested, cookie.is_some()));
        let records_len = template.map_or(0, |t| t.records.len());
        let limit = match ctx.transport {
            Transport::Udp => udp_limit(edns, self.edns_payload),
            Transport::Tcp => wire::MAX_MESSAGE_LEN,
        }
        .min(out.len());
        let aa = template.map_or(0, |t| t.flags & flag::AA);
        let mut len = HEADER_LEN + question_len + records_len + opt_len;
        let truncated = len > limit;
        let template = if truncated {
            // TC=1 with no records: the client retries over TCP.
            len -= records_len;
            if len > limit {
                return None;
            }
            None
        } else {
            template
        };

        // Header: ID, QR, opcode, AA (template), TC, RD and CD (copied), rcode.
        let mut flags = flag::QR | (query.flags & (0x7800 | flag::RD | flag::CD)) | aa | (rcode & 0x0f);
        if truncated {
            flags |= flag::TC;
        }
        put_u16(out, 0, query.id);
        put_u16(out, 2, flags);
        put_u16(out, 4, u16::from(question.is_some()));
        let counts = template.map_or([0; 3], |t| t.counts);
        put_u16(out, 6, counts[0]);
        put_u16(out, 8, counts[1]);
        put_u16(out, 10, counts[2] + u16::from(edns.is_some()));

        let mut at = HEADER_LEN;
        if let Some(q) = question {
            out[at..at + q.qname.len()].copy_from_slice(q.qname);
            at += q.qname.len();
            put_u16(out, at, q.qtype);
            put_u16(out, at + 2, q.qclass);
            at += 4;
        }
        if let Some(t) = template {
            let records = &mut out[at..at + t.records.len()];
            records.copy_from_slice(&t.records);
            // The apex is the tail of the question name.
            let apex_at = if owner_is_qname {
                HEADER_LEN
            } else {
                HEADER_LEN + question_len - 4 - self.apex.wire().len()
            };
            for &pos in &t.apex_pointers {
                put_u16(records, pos as usize, 0xc000 | apex_at as u16);
            }
            for &pos in &t.qname_pointers {
                put_u16(records, pos as usize, 0xc000 | HEADER_LEN as u16);
            }
            for &(pos, target) in &t.record_pointers {
                put_u16(records, pos as usize, 0xc000 | (at as u16 + target));
            }
            if self.ttl_jitter > 0 && !t.answer_ttls.is_empty() {
                let ttl = self.ttl - ctx.random % (self.ttl_jitter + 1);
                for &pos in &t.answer_ttls {
                    put_u32(records, pos as usize, ttl);
                }
            }
            if let (Some(pos), Some(local)) = (t.local_address_at, ctx.local_addr) {
                // `address_template` matched the slot's family to the address.
                let pos = pos as usize;
                match local {
                    IpAddr::V4(v4) => records[pos..pos + 4].copy_from_slice(&v4.octets()),
                    IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                        Some(v4) => records[pos..pos + 4].copy_from_slice(&v4.octets()),
                        None => records[pos..pos + 16].copy_from_slice(&v6.octets()),
                    },
                }
            }
            at += t.records.len();
        }
        if let Some(e) = edns {
            at = self.write_opt(out, at, &e, rcode, cookie.and(query.cookie()), ctx);
        }
        debug_assert_eq!(at, len);
        Some(Answered {
            len: at,
            rcode,
            qtype: question.map(|q| q.qtype),
            qname_len: question.map(|q| q.qname.len()),
            truncated,
            cookie,
            missing_signatures: None,
        })
    }

    fn write_opt(
        &self,
        out: &mut [u8],
        at: usize,
        edns: &Edns,
        rcode: u16,
        cookie: Option<(&[u8; 8], &[u8])>,
        ctx: &QueryContext<'_>,
    ) -> usize {
        out[at] = 0;
        put_u16(out, at + 1, rtype::OPT);
        put_u16(out, at + 3, self.edns_payload);
        // TTL field: extended rcode (upper 8 of 12 bits), version 0, DO echoed.
        let mut ttl = u32::from(rcode >> 4) << 24;
        if edns.dnssec_ok {
            ttl |= wire::EDNS_DO;
        }
        put_u32(out, at + 5, ttl);
        let mut end = at + 11;
        match (&self.nsid, edns.nsid_requested) {
            (Some(nsid), true) => {
                put_u16(out, end, wire::edns_option::NSID);
                put_u16(out, end + 2, nsid.len() as u16);
                out[end + 4..end + 4 + nsid.len()].copy_from_slice(nsid);
                end += 4 + nsid.len();
            }
            _ => {}
        }
        if let (Some((client, _)), Some(secrets), Some(ip)) = (cookie, ctx.cookies, ctx.client_addr) {
            // Our reply carries the client cookie and a fresh server cookie.
            let server = cookie::server_cookie(&secrets.current, client, ip, ctx.now);
            put_u16(out, end, wire::edns_option::COOKIE);
            put_u16(out, end + 2, cookie::RESPONSE_COOKIE_LEN as u16);
            out[end + 4..end + 12].copy_from_slice(client);
            out[end + 12..end + 28].copy_from_slice(&server);
            end += 4 + cookie::RESPONSE_COOKIE_LEN;
        }
        put_u16(out, at + 9, (end - at - 11) as u16);
        end
    }
}

/// UDP response limit: 512 without EDNS, else the client's payload size
/// capped by ours (and never below 512, RFC 6891 §6.2.5).
fn udp_limit(edns: Option<Edns>, ours: u16) -> usize {
    match edns {
        None => wire::PLAIN_UDP_LIMIT,
        Some(e) => usize::from(e.udp_payload.min(ours)).max(wire::PLAIN_UDP_LIMIT),
    }
}

/// The query type and name of a message, for logging a query that got no
/// response; `None` when the question is unreadable.
pub fn peek_question(msg: &[u8]) -> Option<(u16, usize)> {
    let query = query::parse(msg)?;
    let q = query.question?;
    Some((q.qtype, q.qname.len()))
}
