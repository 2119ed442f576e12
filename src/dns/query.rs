//! Parsing of an incoming query: header, the single question and the EDNS OPT
//! record. Borrowed, allocation-free, and strict about the parts it uses.

use super::wire::{self, edns_option, get_u16, rtype, HEADER_LEN, MAX_LABEL_LEN, MAX_NAME_LEN};

/// What the EDNS OPT record of a query asked for (RFC 6891).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edns {
    pub udp_payload: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    pub nsid_requested: bool,
    /// The COOKIE option (RFC 7873): offset of its data in the message and
    /// its length (8: client cookie only; 16 to 40: with a server cookie).
    pub cookie: Option<(usize, usize)>,
}

/// The question of a query. `qname` is the name exactly as received (the
/// client's letter case), in uncompressed wire form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question<'a> {
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
}

impl Question<'_> {
    /// Wire length of the question section entry.
    pub fn wire_len(&self) -> usize {
        self.qname.len() + 4
    }
}

/// A parsed query. Only the header is guaranteed; the question and EDNS are
/// present when they parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    /// The whole message.
    pub msg: &'a [u8],
    pub id: u16,
    pub flags: u16,
    pub question: Option<Question<'a>>,
    pub edns: Option<Edns>,
    /// Set when something after the header was malformed: the answer is
    /// FORMERR, echoing the question and OPT only if they were readable.
    pub malformed: bool,
}

impl<'a> Query<'a> {
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }

    /// The client cookie and the server cookie (possibly empty) the query
    /// carries in its COOKIE option.
    pub fn cookie(&self) -> Option<(&'a [u8; 8], &'a [u8])> {
        let (at, len) = self.edns?.cookie?;
        let data = self.msg.get(at..at + len)?;
        let client: &[u8; 8] = data[..8].try_into().ok()?;
        Some((client, &data[8..]))
    }
}

/// Parses `msg`; `None` means no response may be sent at all (shorter than a
/// header, or not a query).
pub fn parse(msg: &[u8]) -> Option<Query<'_>> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let id = get_u16(msg, 0);
    let flags = get_u16(msg, 2);
    if flags & wire::flag::QR != 0 {
        return None;
    }
    let mut query = Query {
        msg,
        id,
        flags,
        question: None,
        edns: None,
        malformed: false,
    };
    let qdcount = get_u16(msg, 4);
    let ancount = get_u16(msg, 6);
    let nscount = get_u16(msg, 8);
    let arcount = get_u16(msg, 10);
    // No question is allowed only for a cookie exchange (RFC 7873 §5.4);
    // the caller decides once the OPT record is known.
    if qdcount > 1 {
        query.malformed = true;
        return Some(query);
    }
    let mut at = HEADER_LEN;
    if qdcount == 1 {
        let Some((question, next)) = parse_question(msg, HEADER_LEN) else {
            query.malformed = true;
            return Some(query);
        };
        query.question = Some(question);
        at = next;
    }
    // Records in the answer and authority sections of a query carry nothing
    // we use; they are skipped (but must be well-formed).
    for _ in 0..u32::from(ancount) + u32::from(nscount) {
        match skip_record(msg, at) {
            Some(next) => at = next,
            None => {
                query.malformed = true;
                return Some(query);
            }
        }
    }
    for _ in 0..arcount {
        let Some(record) = read_record(msg, at) else {
            query.malformed = true;
            return Some(query);
        };
        at = record.end;
        if record.rtype != rtype::OPT {
            continue;
        }
        // One OPT, owned by the root (RFC 6891 §6.1.1).
        if query.edns.is_some() || record.owner_len != 1 || msg[record.owner_at] != 0 {
            query.malformed = true;
            return Some(query);
        }
        match parse_opt(msg, &record) {
            Some(edns) => query.edns = Some(edns),
            None => {
                query.malformed = true;
                return Some(query);
            }
        }
    }
    Some(query)
}

fn parse_question(msg: &[u8], start: usize) -> Option<(Question<'_>, usize)> {
    let mut at = start;
    loop {
        let len = *msg.get(at)? as usize;
        if len == 0 {
            at += 1;
            break;
        }
        // A question at offset 12 has nothing to point to: compression and
        // extended label types are malformed here.
        if len > MAX_LABEL_LEN {
            return None;
        }
        at += 1 + len;
        if at - start >= MAX_NAME_LEN {
            return None;
        }
    }
    let qname = &msg[start..at];
    if msg.len() < at + 4 {
        return None;
    }
    let question = Question {
        qname,
        qtype: get_u16(msg, at),
        qclass: get_u16(msg, at + 2),
    };
    Some((question, at + 4))
}

/// Skips a possibly compressed name; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0usize;
    loop {
        let len = *msg.get(at)? as usize;
        match len {
            0 => return Some(at + 1),
            1..=63 => {
                at += 1 + len;
                total += 1 + len;
                if total >= MAX_NAME_LEN || at > msg.len() {
                    return None;
                }
            }
            0xc0..=0xff => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
}

struct Record {
    owner_at: usize,
    owner_len: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_at: usize,
    rdata_len: usize,
    end: usize,
}

fn read_record(msg: &[u8], at: usize) -> Option<Record> {
    let after_owner = skip_name(msg, at)?;
    let fixed = msg.get(after_owner..after_owner + 10)?;
    let rdata_len = get_u16(fixed, 8) as usize;
    let rdata_at = after_owner + 10;
    let end = rdata_at + rdata_len;
    if end > msg.len() {
        return None;
    }
    Some(Record {
        owner_at: at,
        owner_len: after_owner - at,
        rtype: get_u16(fixed, 0),
        class: get_u16(fixed, 2),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata_at,
        rdata_len,
        end,
    })
}

fn skip_record(msg: &[u8], at: usize) -> Option<usize> {
    read_record(msg, at).map(|r| r.end)
}

fn parse_opt(msg: &[u8], record: &Record) -> Option<Edns> {
    let mut edns = Edns {
        udp_payload: record.class,
        version: (record.ttl >> 16) as u8,
        dnssec_ok: record.ttl & wire::EDNS_DO != 0,
        nsid_requested: false,
        cookie: None,
    };
    let rdata = &msg[record.rdata_at..record.rdata_at + record.rdata_len];
    let mut at = 0;
    while at < rdata.len() {
        let header = rdata.get(at..at + 4)?;
        let code = get_u16(header, 0);
        let len = get_u16(header, 2) as usize;
        rdata.get(at + 4..at + 4 + len)?;
        if code == edns_option::NSID {
            edns.nsid_requested = true;
        }
        if code == edns_option::COOKIE && edns.cookie.is_none() {
            // A client cookie alone, or with a server cookie of 8 to 32
            // octets; any other length is malformed (RFC 7873 §5.2.2).
            if len != 8 && !(16..=40).contains(&len) {
                return None;
            }
            edns.cookie = Some((record.rdata_at + at + 4, len));
        }
        // Unknown options are ignored (RFC 6891 §6.1.2).
        at += 4 + len;
    }
    Some(edns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query_bytes(qname: &[u8], qtype: u16, extra: &[u8], arcount: u16) -> Vec<u8> {
        let mut msg = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        msg.extend(arcount.to_be_bytes());
        msg.extend(qname);
        msg.extend(qtype.to_be_bytes());
        msg.extend(1u16.to_be_bytes());
        msg.extend(extra);
        msg
    }

    #[test]
    fn plain_query() {
        let msg = query_bytes(b"\x03WwW\x07example\x03com\x00", 1, &[], 0);
        let q = parse(&msg).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(!q.malformed);
        let question = q.question.unwrap();
        assert_eq!(question.qname, b"\x03WwW\x07example\x03com\x00");
        assert_eq!((question.qtype, question.qclass), (1, 1));
        assert_eq!(q.edns, None);
    }

    #[test]
    fn edns_options() {
        // OPT: root, type 41, payload 4096, ext-rcode 0, version 0, DO, NSID + unknown option.
        let opt = [
            0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 10, 0, 3, 0, 0, 0xfd, 0xe9, 0, 2, 0xab, 0xcd,
        ];
        let msg = query_bytes(b"\x00", 1, &opt, 1);
        let edns = parse(&msg).unwrap().edns.unwrap();
        assert_eq!(
            edns,
            Edns {
                udp_payload: 4096,
                version: 0,
                dnssec_ok: true,
                nsid_requested: true,
                cookie: None
            }
        );
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(parse(&[0; 11]), None);
        let mut response = query_bytes(b"\x00", 1, &[], 0);
        response[2] |= 0x80;
        assert_eq!(parse(&response), None);
        let truncated = &query_bytes(b"\x03www\x07example\x03com\x00", 1, &[], 0)[..17];
        assert!(parse(truncated).unwrap().malformed);
        let pointer = query_bytes(b"\xc0\x0c", 1, &[], 0);
        assert!(parse(&pointer).unwrap().malformed);
        let mut two = query_bytes(b"\x00", 1, &[], 0);
        two[5] = 2;
        assert!(parse(&two).unwrap().malformed);
        let mut none = query_bytes(b"\x00", 1, &[], 0);
        none[5] = 0;
        none.truncate(12);
        let q = parse(&none).unwrap();
        assert!(!q.malformed && q.question.is_none(), "no question: the caller decides");
        let opt_bad_owner = [1, b'a', 0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
        assert!(parse(&query_bytes(b"\x00", 1, &opt_bad_owner, 1)).unwrap().malformed);
        let opt = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
        let mut twice = opt.to_vec();
        twice.extend(opt);
        assert!(parse(&query_bytes(b"\x00", 1, &twice, 2)).unwrap().malformed);
        let opt_short_option = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 4, 0, 3, 0, 9];
        assert!(parse(&query_bytes(b"\x00", 1, &opt_short_option, 1)).unwrap().malformed);
        let long_name: Vec<u8> = std::iter::repeat([63u8].into_iter().chain([b'a'; 63]))
            .take(5)
            .flatten()
            .chain([0])
            .collect();
        assert!(parse(&query_bytes(&long_name, 1, &[], 0)).unwrap().malformed);
    }
}
