//! RFC 2136 dynamic UPDATE, for the one thing this server lets a client
//! change: the address RRsets (A, AAAA) at its zone apex.
//!
//! `parse` reads the header and the zone section; `Update::apply` checks
//! the prerequisites (§2.4, §3.2) against what the zone holds
//! (`ZoneView`), prescans the update section (§3.4.1) and applies it
//! (§3.4.2) to the address set, all or nothing. Anything but the apex A
//! and AAAA RRsets is REFUSED. Authentication (TSIG) is the caller's, before
//! `apply`. `build_replace` is the client side: the UPDATE that replaces a
//! name's addresses in another zone (the parent's glue).

use super::addrset::AddressSet;
use super::name::Name;
use super::rr::{self, NameBuf, Rr};
use super::wire::{class, flag, get_u16, put_u16, rcode, rtype, HEADER_LEN};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const OPCODE: u8 = 5;
/// Classes with a special meaning in prerequisites and updates.
pub const CLASS_NONE: u16 = 254;
pub const CLASS_ANY: u16 = 255;

/// The UPDATE response codes (RFC 2136 §2.2) beyond the common ones.
pub mod code {
    pub const YXDOMAIN: u16 = 6;
    pub const YXRRSET: u16 = 7;
    pub const NXRRSET: u16 = 8;
    pub const NOTAUTH: u16 = 9;
    pub const NOTZONE: u16 = 10;
}

/// The name of a response code, for logs and the status.
pub fn rcode_name(code: u16) -> &'static str {
    match code {
        rcode::NOERROR => "NOERROR",
        rcode::FORMERR => "FORMERR",
        rcode::SERVFAIL => "SERVFAIL",
        rcode::NXDOMAIN => "NXDOMAIN",
        rcode::NOTIMP => "NOTIMP",
        rcode::REFUSED => "REFUSED",
        code::YXDOMAIN => "YXDOMAIN",
        code::YXRRSET => "YXRRSET",
        code::NXRRSET => "NXRRSET",
        code::NOTAUTH => "NOTAUTH",
        code::NOTZONE => "NOTZONE",
        _ => "other",
    }
}

/// Whether `msg` is an UPDATE request (opcode 5, not a response).
pub fn is_update(msg: &[u8]) -> bool {
    msg.len() >= HEADER_LEN && msg[2] & 0x80 == 0 && (msg[2] >> 3) & 0x0f == OPCODE
}

/// The opcode of a request, when it has a header.
pub fn opcode(msg: &[u8]) -> Option<u8> {
    (msg.len() >= HEADER_LEN).then(|| (msg[2] >> 3) & 0x0f)
}

/// What the zone holds, as prerequisites see it.
#[derive(Clone, Copy, Debug)]
pub struct ZoneView<'a> {
    /// The apex in lower-case wire form.
    pub apex: &'a [u8],
    pub nameservers: &'a [Name],
    /// `*.<apex>` answers with the apex's addresses.
    pub wildcard: bool,
    /// Types at the apex besides SOA, NS and the addresses (the DNSSEC
    /// records of a signed zone).
    pub extra_types: &'a [u16],
    /// The apex's addresses now.
    pub addresses: AddressSet,
}

impl ZoneView<'_> {
    /// Whether `name` owns any record (RFC 2136 "name is in use").
    fn in_use(&self, name: &NameBuf) -> bool {
        name.wire() == self.apex || (self.wildcard && name.is_wildcard_of(self.apex) && !self.addresses.is_empty())
    }

    fn has_rrset(&self, name: &NameBuf, rtype_: u16) -> bool {
        let addresses = |t| match t {
            rtype::A => self.addresses.has_v4(),
            rtype::AAAA => self.addresses.has_v6(),
            _ => false,
        };
        if name.wire() == self.apex {
            matches!(rtype_, rtype::SOA | rtype::NS) || addresses(rtype_) || self.extra_types.contains(&rtype_)
        } else {
            self.wildcard && name.is_wildcard_of(self.apex) && addresses(rtype_)
        }
    }

    /// The record data of an RRset we can compare value by value: the
    /// addresses and the apex NS set. `None`: no such RRset, or one whose
    /// values this server does not compare (SOA, DNSSEC records).
    fn values(&self, name: &NameBuf, rtype_: u16) -> Option<Vec<Vec<u8>>> {
        let at_apex = name.wire() == self.apex;
        let wildcard = self.wildcard && name.is_wildcard_of(self.apex);
        let of = |v4: bool| {
            self.addresses
                .iter()
                .filter(|a| a.is_ipv4() == v4)
                .map(|a| match a {
                    IpAddr::V4(v4) => v4.octets().to_vec(),
                    IpAddr::V6(v6) => v6.octets().to_vec(),
                })
                .collect::<Vec<_>>()
        };
        let values = match rtype_ {
            rtype::A if at_apex || wildcard => of(true),
            rtype::AAAA if at_apex || wildcard => of(false),
            rtype::NS if at_apex => self.nameservers.iter().map(|n| n.wire().to_vec()).collect(),
            _ => return None,
        };
        (!values.is_empty()).then_some(values)
    }
}

/// An UPDATE whose header and zone section were read.
#[derive(Clone, Copy, Debug)]
pub struct Update<'m> {
    msg: &'m [u8],
    /// The zone section's name, type and class.
    pub zone: NameBuf,
    pub zone_type: u16,
    pub zone_class: u16,
    /// Offset just after the zone section.
    zone_end: usize,
    prerequisites: u16,
    updates: u16,
}

/// Reads an UPDATE's header and zone section; `Err(FORMERR)` when they are
/// malformed (ZOCOUNT other than 1, RFC 2136 §3.1.1).
pub fn parse(msg: &[u8]) -> Result<Update<'_>, u16> {
    let [zo, pr, up, _] = rr::counts(msg).ok_or(rcode::FORMERR)?;
    if zo != 1 {
        return Err(rcode::FORMERR);
    }
    let (zone, zone_type, zone_class, zone_end) = rr::read_entry(msg, HEADER_LEN).ok_or(rcode::FORMERR)?;
    Ok(Update {
        msg,
        zone,
        zone_type,
        zone_class,
        zone_end,
        prerequisites: pr,
        updates: up,
    })
}

/// Record types that are not data (queries only, or meta): they may not
/// be added.
fn is_meta(t: u16) -> bool {
    (128..=255).contains(&t) || t == rtype::OPT || t == 0
}

impl Update<'_> {
    /// Whether the zone section names the zone at `apex` (RFC 2136 §3.1):
    /// FORMERR for a zone type other than SOA, NOTAUTH for a zone this
    /// server is not authoritative for.
    pub fn check_zone(&self, apex: &[u8]) -> Result<(), u16> {
        if self.zone_type != rtype::SOA {
            return Err(rcode::FORMERR);
        }
        if self.zone.wire() != apex || self.zone_class != class::IN {
            return Err(code::NOTAUTH);
        }
        Ok(())
    }

    fn records(&self, start: usize, count: u16) -> Result<(Vec<Rr<'_>>, usize), u16> {
        let mut at = start;
        let mut out = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            let rr = rr::read_rr(self.msg, at).ok_or(rcode::FORMERR)?;
            at = rr.end;
            out.push(rr);
        }
        Ok((out, at))
    }

    /// Evaluates the prerequisites against `zone`, then checks and applies
    /// the update section to its addresses. Returns the new address set,
    /// or the response code of the first failure (nothing is applied).
    pub fn apply(&self, zone: &ZoneView<'_>) -> Result<AddressSet, u16> {
        let (prerequisites, next) = self.records(self.zone_end, self.prerequisites)?;
        let (updates, _) = self.records(next, self.updates)?;
        self.check_prerequisites(zone, &prerequisites)?;
        for u in &updates {
            self.prescan(zone, u)?;
        }
        let mut set = zone.addresses;
        for u in &updates {
            match (u.class, u.rtype) {
                (CLASS_ANY, rtype::ANY) => set = AddressSet::new(),
                (CLASS_ANY, rtype::A) => set.retain(|a| a.is_ipv6()),
                (CLASS_ANY, rtype::AAAA) => set.retain(|a| a.is_ipv4()),
                (CLASS_NONE, _) => {
                    let gone = address_of(u);
                    set.retain(|a| Some(a) != gone);
                }
                (_, _) => {
                    // Class IN: add (the TTL is the server's `dns_ttl`).
                    if let Some(addr) = address_of(u) {
                        set.insert(addr).map_err(|_| rcode::REFUSED)?;
                    }
                }
            }
        }
        Ok(set)
    }

    /// RFC 2136 §3.2.
    fn check_prerequisites(&self, zone: &ZoneView<'_>, prerequisites: &[Rr<'_>]) -> Result<(), u16> {
        // Value-dependent ones are collected and compared RRset by RRset.
        let mut values: Vec<(NameBuf, u16, Vec<u8>)> = Vec::new();
        for p in prerequisites {
            if p.ttl != 0 {
                return Err(rcode::FORMERR);
            }
            if !p.name.is_within(zone.apex) {
                return Err(code::NOTZONE);
            }
            match p.class {
                CLASS_ANY => {
                    if !p.rdata.is_empty() {
                        return Err(rcode::FORMERR);
                    }
                    if p.rtype == rtype::ANY {
                        if !zone.in_use(&p.name) {
                            return Err(rcode::NXDOMAIN);
                        }
                    } else if !zone.has_rrset(&p.name, p.rtype) {
                        return Err(code::NXRRSET);
                    }
                }
                CLASS_NONE => {
                    if !p.rdata.is_empty() {
                        return Err(rcode::FORMERR);
                    }
                    if p.rtype == rtype::ANY {
                        if zone.in_use(&p.name) {
                            return Err(code::YXDOMAIN);
                        }
                    } else if zone.has_rrset(&p.name, p.rtype) {
                        return Err(code::YXRRSET);
                    }
                }
                class::IN => {
                    let data = match p.rtype {
                        rtype::NS => rr::rdata_name(self.msg, p).ok_or(rcode::FORMERR)?.wire().to_vec(),
                        _ => p.rdata.to_vec(),
                    };
                    values.push((p.name, p.rtype, data));
                }
                _ => return Err(rcode::FORMERR),
            }
        }
        for (i, (name, t, _)) in values.iter().enumerate() {
            if values[..i].iter().any(|(n, t2, _)| n == name && t2 == t) {
                continue; // this RRset was compared already
            }
            let mut wanted: Vec<&Vec<u8>> = values
                .iter()
                .filter(|(n, t2, _)| n == name && t2 == t)
                .map(|(_, _, d)| d)
                .collect();
            wanted.sort();
            wanted.dedup();
            let Some(mut have) = zone.values(name, *t) else {
                return Err(code::NXRRSET);
            };
            have.sort();
            if wanted.len() != have.len() || wanted.iter().zip(&have).any(|(w, h)| *w != h) {
                return Err(code::NXRRSET);
            }
        }
        Ok(())
    }

    /// RFC 2136 §3.4.1.3, then this server's policy: only the apex A and
    /// AAAA RRsets may change.
    fn prescan(&self, zone: &ZoneView<'_>, u: &Rr<'_>) -> Result<(), u16> {
        if !u.name.is_within(zone.apex) {
            return Err(code::NOTZONE);
        }
        let disallowed = |t: u16| matches!(t, rtype::AXFR | rtype::MAILA | rtype::MAILB);
        match u.class {
            class::IN if is_meta(u.rtype) => return Err(rcode::FORMERR),
            class::IN => {}
            CLASS_ANY if u.ttl != 0 || !u.rdata.is_empty() || disallowed(u.rtype) => return Err(rcode::FORMERR),
            CLASS_ANY => {}
            CLASS_NONE if u.ttl != 0 || u.rtype == rtype::ANY || disallowed(u.rtype) => return Err(rcode::FORMERR),
            CLASS_NONE => {}
            _ => return Err(rcode::FORMERR),
        }
        if u.name.wire() != zone.apex {
            return Err(rcode::REFUSED);
        }
        match (u.class, u.rtype) {
            (CLASS_ANY, rtype::A | rtype::AAAA | rtype::ANY) => Ok(()),
            (_, rtype::A | rtype::AAAA) if address_of(u).is_some() => Ok(()),
            (_, rtype::A | rtype::AAAA) => Err(rcode::FORMERR),
            _ => Err(rcode::REFUSED),
        }
    }
}

/// The address in an A or AAAA record's data.
fn address_of(u: &Rr<'_>) -> Option<IpAddr> {
    match (u.rtype, u.rdata.len()) {
        (rtype::A, 4) => Some(IpAddr::V4(Ipv4Addr::new(
            u.rdata[0], u.rdata[1], u.rdata[2], u.rdata[3],
        ))),
        (rtype::AAAA, 16) => {
            let octets: [u8; 16] = u.rdata.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(octets)))
        }
        _ => None,
    }
}

/// Writes the response to request `msg` with `code`: the header (ID and
/// opcode echoed, QR set) and the request's first section entry (the zone
/// of an UPDATE, the question of a query) when it is readable. Returns the
/// length, or `None` when `msg` has no header or `out` no room.
pub fn write_response(msg: &[u8], code: u16, out: &mut [u8]) -> Option<usize> {
    if msg.len() < HEADER_LEN || out.len() < HEADER_LEN {
        return None;
    }
    let flags = get_u16(msg, 2);
    put_u16(out, 0, get_u16(msg, 0));
    put_u16(
        out,
        2,
        flag::QR | (flags & (0x7800 | flag::RD | flag::CD)) | (code & 0x0f),
    );
    for i in 2..6 {
        put_u16(out, i * 2, 0);
    }
    let mut len = HEADER_LEN;
    if get_u16(msg, 4) >= 1 {
        if let Some((name, t, c, _)) = rr::read_entry(msg, HEADER_LEN) {
            let wire = name.wire();
            // Echo the name as sent when it was sent whole (keeps its case).
            let raw = msg
                .get(HEADER_LEN..HEADER_LEN + wire.len())
                .filter(|r| r.eq_ignore_ascii_case(wire));
            let wire = raw.unwrap_or(wire);
            if out.len() >= len + wire.len() + 4 {
                out[len..len + wire.len()].copy_from_slice(wire);
                len += wire.len();
                put_u16(out, len, t);
                put_u16(out, len + 2, c);
                len += 4;
                put_u16(out, 4, 1);
            }
        }
    }
    Some(len)
}

/// Writes the UPDATE that replaces the A and AAAA RRsets of `name` in
/// `zone` with `addresses` (TTL `ttl`): delete both RRsets, add each
/// address (RFC 2136 §2.5). Names are in wire form. Returns the length.
pub fn build_replace(
    id: u16,
    zone: &[u8],
    name: &[u8],
    ttl: u32,
    addresses: &AddressSet,
    out: &mut [u8],
) -> Option<usize> {
    let mut at = 0;
    let mut put = |bytes: &[u8]| -> Option<()> {
        out.get_mut(at..at + bytes.len())?.copy_from_slice(bytes);
        at += bytes.len();
        Some(())
    };
    let updates = 2 + addresses.len() as u16;
    put(&id.to_be_bytes())?;
    put(&(u16::from(OPCODE) << 11).to_be_bytes())?;
    for count in [1, 0, updates, 0] {
        put(&count.to_be_bytes())?;
    }
    put(zone)?;
    put(&rtype::SOA.to_be_bytes())?;
    put(&class::IN.to_be_bytes())?;
    for t in [rtype::A, rtype::AAAA] {
        put(name)?;
        put(&t.to_be_bytes())?;
        put(&CLASS_ANY.to_be_bytes())?;
        put(&[0; 6])?;
    }
    for a in addresses.iter() {
        let mut data = [0u8; 16];
        let (t, n) = match a {
            IpAddr::V4(v4) => {
                data[..4].copy_from_slice(&v4.octets());
                (rtype::A, 4)
            }
            IpAddr::V6(v6) => {
                data.copy_from_slice(&v6.octets());
                (rtype::AAAA, 16)
            }
        };
        put(name)?;
        put(&t.to_be_bytes())?;
        put(&class::IN.to_be_bytes())?;
        put(&ttl.to_be_bytes())?;
        put(&(n as u16).to_be_bytes())?;
        put(&data[..n])?;
    }
    Some(at)
}

/// The response code of a response to the UPDATE with `id`, extended by
/// the OPT record's upper bits when it has one; `None` when `msg` is not
/// such a response.
pub fn response_code(msg: &[u8], id: u16) -> Option<u16> {
    if msg.len() < HEADER_LEN || get_u16(msg, 0) != id || msg[2] & 0x80 == 0 || (msg[2] >> 3) & 0x0f != OPCODE {
        return None;
    }
    Some(u16::from(msg[3] & 0x0f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::config::parse_host;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn wire(name: &str) -> Vec<u8> {
        parse_host(name).unwrap().wire().to_vec()
    }

    /// Builds an UPDATE: zone, then (name, type, class, ttl, rdata) records
    /// in the prerequisite and update sections.
    type Rec<'a> = (&'a str, u16, u16, u32, Vec<u8>);

    fn update(zone: &str, prerequisites: &[Rec], updates: &[Rec]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, OPCODE << 3, 0, 0, 1];
        m.extend((prerequisites.len() as u16).to_be_bytes());
        m.extend((updates.len() as u16).to_be_bytes());
        m.extend([0, 0]);
        m.extend(wire(zone));
        m.extend([0, 6, 0, 1]);
        for (name, t, c, ttl, data) in prerequisites.iter().chain(updates) {
            m.extend(if name.starts_with('*') {
                let mut w = vec![1, b'*'];
                w.extend(wire(&name[2..]));
                w
            } else {
                wire(name)
            });
            m.extend(t.to_be_bytes());
            m.extend(c.to_be_bytes());
            m.extend(ttl.to_be_bytes());
            m.extend((data.len() as u16).to_be_bytes());
            m.extend(data);
        }
        m
    }

    const APEX: &str = "www.example.com";

    fn a(addr: &str) -> Vec<u8> {
        match ip(addr) {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        }
    }

    fn run(msg: &[u8], addresses: &[&str], wildcard: bool) -> Result<AddressSet, u16> {
        let apex = wire(APEX);
        let ns = [
            parse_host("ns1-www.example.com").unwrap(),
            parse_host("ns2-www.example.com").unwrap(),
        ];
        let set = AddressSet::from_slice(&addresses.iter().map(|s| ip(s)).collect::<Vec<_>>()).unwrap();
        let view = ZoneView {
            apex: &apex,
            nameservers: &ns,
            wildcard,
            extra_types: &[],
            addresses: set,
        };
        let u = parse(msg)?;
        u.check_zone(&apex)?;
        u.apply(&view)
    }

    fn set(addrs: &[&str]) -> AddressSet {
        AddressSet::from_slice(&addrs.iter().map(|s| ip(s)).collect::<Vec<_>>()).unwrap()
    }

    const IN: u16 = class::IN;

    #[test]
    fn replace_add_and_delete_addresses() {
        // nsupdate's "update delete www A" + "update add www 10 A 192.0.2.7".
        let replace = update(
            APEX,
            &[],
            &[
                (APEX, rtype::A, CLASS_ANY, 0, vec![]),
                (APEX, rtype::A, IN, 10, a("192.0.2.7")),
            ],
        );
        assert_eq!(
            run(&replace, &["192.0.2.1", "2001:db8::1"], false),
            Ok(set(&["2001:db8::1", "192.0.2.7"]))
        );
        let add = update(APEX, &[], &[(APEX, rtype::AAAA, IN, 10, a("2001:db8::7"))]);
        assert_eq!(run(&add, &["192.0.2.1"], false), Ok(set(&["192.0.2.1", "2001:db8::7"])));
        let delete_one = update(APEX, &[], &[(APEX, rtype::A, CLASS_NONE, 0, a("192.0.2.1"))]);
        assert_eq!(
            run(&delete_one, &["192.0.2.1", "192.0.2.2"], false),
            Ok(set(&["192.0.2.2"]))
        );
        let delete_all = update(APEX, &[], &[(APEX, rtype::ANY, CLASS_ANY, 0, vec![])]);
        assert_eq!(
            run(&delete_all, &["192.0.2.1", "2001:db8::1"], false),
            Ok(AddressSet::new())
        );
        let delete_v6 = update(APEX, &[], &[(APEX, rtype::AAAA, CLASS_ANY, 0, vec![])]);
        assert_eq!(
            run(&delete_v6, &["192.0.2.1", "2001:db8::1"], false),
            Ok(set(&["192.0.2.1"]))
        );
        // The zone name in any letter case.
        let upper = update(
            "WWW.Example.COM",
            &[],
            &[("www.EXAMPLE.com", rtype::A, IN, 10, a("192.0.2.9"))],
        );
        assert_eq!(run(&upper, &[], false), Ok(set(&["192.0.2.9"])));
        // Only prerequisites: nothing changes.
        let check = update(APEX, &[(APEX, rtype::SOA, CLASS_ANY, 0, vec![])], &[]);
        assert_eq!(run(&check, &["192.0.2.1"], false), Ok(set(&["192.0.2.1"])));
        // More than the set holds.
        let many: Vec<Rec> = (0..17).map(|i| (APEX, rtype::A, IN, 10, vec![10, 0, 0, i])).collect();
        assert_eq!(run(&update(APEX, &[], &many), &[], false), Err(rcode::REFUSED));
    }

    #[test]
    fn anything_else_is_refused_or_rejected() {
        let run1 = |rec: Rec| run(&update(APEX, &[], &[rec]), &["192.0.2.1"], false);
        // Other names and types in the zone: REFUSED.
        assert_eq!(
            run1(("foo.www.example.com", rtype::A, IN, 10, a("192.0.2.7"))),
            Err(rcode::REFUSED)
        );
        assert_eq!(run1((APEX, 16, IN, 10, b"\x02hi".to_vec())), Err(rcode::REFUSED));
        assert_eq!(run1((APEX, rtype::NS, CLASS_ANY, 0, vec![])), Err(rcode::REFUSED));
        assert_eq!(run1((APEX, rtype::SOA, CLASS_ANY, 0, vec![])), Err(rcode::REFUSED));
        // Names outside the zone: NOTZONE.
        assert_eq!(
            run1(("www.example.org", rtype::A, IN, 10, a("192.0.2.7"))),
            Err(code::NOTZONE)
        );
        assert_eq!(
            run1(("example.com", rtype::A, IN, 10, a("192.0.2.7"))),
            Err(code::NOTZONE)
        );
        // Malformed records: FORMERR.
        assert_eq!(run1((APEX, rtype::A, IN, 10, vec![1, 2, 3])), Err(rcode::FORMERR));
        assert_eq!(run1((APEX, rtype::ANY, IN, 10, vec![])), Err(rcode::FORMERR));
        assert_eq!(run1((APEX, rtype::A, CLASS_ANY, 10, vec![])), Err(rcode::FORMERR));
        assert_eq!(
            run1((APEX, rtype::A, CLASS_ANY, 0, a("192.0.2.7"))),
            Err(rcode::FORMERR)
        );
        assert_eq!(run1((APEX, rtype::ANY, CLASS_NONE, 0, vec![])), Err(rcode::FORMERR));
        assert_eq!(run1((APEX, rtype::A, 3, 0, a("192.0.2.7"))), Err(rcode::FORMERR));
        // One bad record refuses the whole update.
        let mixed = update(
            APEX,
            &[],
            &[
                (APEX, rtype::A, IN, 10, a("192.0.2.7")),
                ("x.www.example.com", rtype::A, IN, 10, a("192.0.2.8")),
            ],
        );
        assert_eq!(run(&mixed, &[], false), Err(rcode::REFUSED));
        // Another zone: NOTAUTH, whether above, below or beside.
        for zone in ["example.com", "a.www.example.com", "www.example.org"] {
            assert_eq!(run(&update(zone, &[], &[]), &[], false), Err(code::NOTAUTH), "{zone}");
        }
        // Zone section: not SOA, or not exactly one entry.
        let mut not_soa = update(APEX, &[], &[]);
        let at = 12 + wire(APEX).len();
        not_soa[at + 1] = 1;
        assert_eq!(run(&not_soa, &[], false), Err(rcode::FORMERR));
        let mut two = update(APEX, &[], &[]);
        two[5] = 2;
        assert_eq!(run(&two, &[], false), Err(rcode::FORMERR));
        // Truncated.
        let msg = update(APEX, &[], &[(APEX, rtype::A, IN, 10, a("192.0.2.7"))]);
        for len in 0..msg.len() {
            let r = run(&msg[..len], &[], false);
            assert!(r.is_err(), "{len}");
        }
    }

    #[test]
    fn prerequisites() {
        let addrs = ["192.0.2.1", "192.0.2.2"];
        let pre = |rec: Rec| run(&update(APEX, &[rec], &[]), &addrs, false);
        // Name in use / not in use.
        assert_eq!(pre((APEX, rtype::ANY, CLASS_ANY, 0, vec![])), Ok(set(&addrs)));
        assert_eq!(
            pre(("x.www.example.com", rtype::ANY, CLASS_ANY, 0, vec![])),
            Err(rcode::NXDOMAIN)
        );
        assert_eq!(pre((APEX, rtype::ANY, CLASS_NONE, 0, vec![])), Err(code::YXDOMAIN));
        assert_eq!(
            pre(("x.www.example.com", rtype::ANY, CLASS_NONE, 0, vec![])),
            Ok(set(&addrs))
        );
        // RRset exists / does not exist (value independent).
        assert_eq!(pre((APEX, rtype::A, CLASS_ANY, 0, vec![])), Ok(set(&addrs)));
        assert_eq!(pre((APEX, rtype::NS, CLASS_ANY, 0, vec![])), Ok(set(&addrs)));
        assert_eq!(pre((APEX, rtype::AAAA, CLASS_ANY, 0, vec![])), Err(code::NXRRSET));
        assert_eq!(pre((APEX, rtype::A, CLASS_NONE, 0, vec![])), Err(code::YXRRSET));
        assert_eq!(pre((APEX, rtype::AAAA, CLASS_NONE, 0, vec![])), Ok(set(&addrs)));
        // Value dependent: the whole RRset, in any order.
        let both = update(
            APEX,
            &[
                (APEX, rtype::A, IN, 0, a("192.0.2.2")),
                (APEX, rtype::A, IN, 0, a("192.0.2.1")),
            ],
            &[],
        );
        assert_eq!(run(&both, &addrs, false), Ok(set(&addrs)));
        assert_eq!(pre((APEX, rtype::A, IN, 0, a("192.0.2.1"))), Err(code::NXRRSET));
        assert_eq!(pre((APEX, rtype::AAAA, IN, 0, a("2001:db8::1"))), Err(code::NXRRSET));
        let ns = update(
            APEX,
            &[
                (APEX, rtype::NS, IN, 0, wire("NS1-www.example.com")),
                (APEX, rtype::NS, IN, 0, wire("ns2-www.example.com")),
            ],
            &[],
        );
        assert_eq!(run(&ns, &addrs, false), Ok(set(&addrs)));
        // TTL must be 0; names must be in the zone; rdata empty for ANY/NONE.
        assert_eq!(pre((APEX, rtype::A, CLASS_ANY, 5, vec![])), Err(rcode::FORMERR));
        assert_eq!(pre(("example.org", rtype::A, CLASS_ANY, 0, vec![])), Err(code::NOTZONE));
        assert_eq!(
            pre((APEX, rtype::A, CLASS_NONE, 0, a("192.0.2.1"))),
            Err(rcode::FORMERR)
        );
        // A failed prerequisite stops the update.
        let guarded = update(
            APEX,
            &[(APEX, rtype::A, IN, 0, a("192.0.2.9"))],
            &[
                (APEX, rtype::A, CLASS_ANY, 0, vec![]),
                (APEX, rtype::A, IN, 10, a("192.0.2.7")),
            ],
        );
        assert_eq!(run(&guarded, &addrs, false), Err(code::NXRRSET));
        // With the wildcard, *.<apex> exists and has the addresses.
        let wild = update(APEX, &[("*.www.example.com", rtype::A, CLASS_ANY, 0, vec![])], &[]);
        assert_eq!(run(&wild, &addrs, true), Ok(set(&addrs)));
        assert_eq!(run(&wild, &addrs, false), Err(code::NXRRSET));
    }

    #[test]
    fn responses_echo_the_zone() {
        let msg = update("WWW.example.com", &[], &[]);
        let mut out = [0u8; 512];
        let len = write_response(&msg, code::NOTZONE, &mut out).unwrap();
        assert_eq!(&out[..2], &[0x12, 0x34]);
        assert_eq!(out[2], 0x80 | OPCODE << 3);
        assert_eq!(out[3] & 0x0f, 10);
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&out[12..len], &msg[12..]);
        // No readable zone: header only.
        let len = write_response(&msg[..14], rcode::FORMERR, &mut out).unwrap();
        assert_eq!((len, out[5]), (12, 0));
        assert_eq!(write_response(&msg[..5], rcode::FORMERR, &mut out), None);
    }

    #[test]
    fn the_client_side_replaces_a_names_addresses() {
        let mut out = [0u8; 512];
        let addrs = set(&["192.0.2.7", "2001:db8::7"]);
        let len = build_replace(
            7,
            &wire("example.com"),
            &wire("ns1-www.example.com"),
            300,
            &addrs,
            &mut out,
        )
        .unwrap();
        // As the server side reads it, in the parent zone.
        let parent = wire("example.com");
        let u = parse(&out[..len]).unwrap();
        assert!(u.check_zone(&parent).is_ok());
        let (updates, end) = u.records(u.zone_end, u.updates).unwrap();
        assert_eq!(end, len);
        assert_eq!(updates.len(), 4);
        assert_eq!((updates[0].class, updates[0].rtype), (CLASS_ANY, rtype::A));
        assert_eq!((updates[1].class, updates[1].rtype), (CLASS_ANY, rtype::AAAA));
        assert_eq!((updates[2].ttl, address_of(&updates[2])), (300, Some(ip("192.0.2.7"))));
        assert_eq!(address_of(&updates[3]), Some(ip("2001:db8::7")));
        assert!(build_replace(7, &parent, &parent, 300, &addrs, &mut out[..40]).is_none());
        let mut resp = out;
        resp[2] |= 0x80;
        resp[3] = 5;
        assert_eq!(response_code(&resp[..len], 7), Some(5));
        assert_eq!(response_code(&resp[..len], 8), None);
        assert_eq!(response_code(&out[..len], 7), None);
    }
}
