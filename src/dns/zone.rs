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

use super::config::{Addresses, ConfigError, ZoneConfig};
pub use super::cookie::CookieStatus;
use super::cookie::{self, CookieSecrets};
use super::name::{label_boundaries, Name};
use super::query::{self, Edns, Query, Question};
use super::wire::{self, class, flag, put_u16, put_u32, rcode, rtype, HEADER_LEN};
use std::net::IpAddr;

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
}

#[derive(Clone, Debug, Default)]
struct Template {
    /// AA bit and the low four bits of the rcode.
    flags: u16,
    rcode: u16,
    /// Answer, authority and additional counts (OPT excluded).
    counts: [u16; 3],
    records: Vec<u8>,
    /// Positions of the compression pointers to the apex (record owners).
    apex_pointers: Vec<u16>,
    /// (position, target) of compression pointers to names inside `records`;
    /// both are relative to the start of the records.
    record_pointers: Vec<(u16, u16)>,
    /// Positions of the TTL fields that take the (jittered) answer TTL.
    answer_ttls: Vec<u16>,
    /// Position of the address to fill in for `dns_address auto`.
    local_address_at: Option<u16>,
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
}

/// Builds the record section of one template.
struct RecordsBuilder {
    template: Template,
    /// Every name suffix written uncompressed so far, by position.
    written_names: Vec<(u16, Vec<u8>)>,
}

impl RecordsBuilder {
    fn new(aa: bool, rcode: u16) -> Self {
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
    fn record(&mut self, rtype: u16, ttl: u32, answer_ttl: bool) -> usize {
        self.apex_pointer();
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

    fn end_record(&mut self, rdlength_at: usize) {
        let rdlength = (self.template.records.len() - rdlength_at - 2) as u16;
        put_u16(&mut self.template.records, rdlength_at, rdlength);
    }

    fn address(&mut self, addr: IpAddr, ttl: u32) {
        let rtype = if addr.is_ipv4() { rtype::A } else { rtype::AAAA };
        let at = self.record(rtype, ttl, true);
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

    fn soa(&mut self, config: &ZoneConfig, ttl: u32, answer_ttl: bool, serial: u32) {
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

    fn count(&mut self, section: usize) {
        self.template.counts[section] += 1;
    }

    fn finish(self) -> Template {
        self.template
    }
}

const ANSWER: usize = 0;
const AUTHORITY: usize = 1;

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
        for name in &config.nameservers {
            let at = ns.record(rtype::NS, ttl, true);
            ns.name(name);
            ns.end_record(at);
            ns.count(ANSWER);
        }

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

    /// Size of the largest response this zone can produce: the buffer size
    /// `respond` needs to never truncate a TCP answer.
    pub fn max_response_len(&self) -> usize {
        HEADER_LEN + wire::MAX_NAME_LEN + 4 + self.max_records_len + self.opt_len(true, true)
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
        if location == Location::Below && self.wildcard {
            // As a wildcard (RFC 4592) with the apex's addresses: the
            // answer's owner is the name asked for.
            let template = match question.qtype {
                rtype::A | rtype::AAAA => self.address_template(question.qtype, ctx.local_addr),
                rtype::ANY => self
                    .address_template(rtype::A, ctx.local_addr)
                    .or_else(|| self.address_template(rtype::AAAA, ctx.local_addr)),
                _ => None,
            };
            if let Some(t) = template {
                return self.assemble(&query, Some(&question), Some(t), t.rcode, ctx, out, true);
            }
            return self.write(&query, Some(&question), Some(&self.nodata), self.nodata.rcode, ctx, out);
        }
        let template = match location {
            Location::Outside => None,
            Location::Below => Some(&self.nxdomain),
            Location::Apex => match question.qtype {
                rtype::A | rtype::AAAA => Some(
                    self.address_template(question.qtype, ctx.local_addr)
                        .unwrap_or(&self.nodata),
                ),
                rtype::NS => Some(&self.ns),
                rtype::SOA => Some(&self.soa),
                // RFC 8482: one RRset, the one clients most likely want.
                rtype::ANY => Some(
                    self.address_template(rtype::A, ctx.local_addr)
                        .or_else(|| self.address_template(rtype::AAAA, ctx.local_addr))
                        .unwrap_or(&self.ns),
                ),
                rtype::AXFR | rtype::IXFR => None,
                rtype::MAILA | rtype::MAILB => {
                    return self.write(&query, Some(&question), None, rcode::NOTIMP, ctx, out);
                }
                _ => Some(&self.nodata),
            },
        };
        match template {
            Some(template) => self.write(&query, Some(&question), Some(template), template.rcode, ctx, out),
            None => self.write(&query, Some(&question), None, rcode::REFUSED, ctx, out),
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
