//! Reading whole resource records, as UPDATE and TSIG need them: names may
//! be compressed anywhere (RFC 1035 §4.1.4), so they are expanded into a
//! fixed buffer, lower-cased for comparison. Bounded and allocation-free;
//! every malformed input is `None`.

use super::wire::{get_u16, HEADER_LEN, MAX_NAME_LEN};

/// An uncompressed, lower-case wire-form name, ending with the root label.
#[derive(Clone, Copy)]
pub struct NameBuf {
    buf: [u8; MAX_NAME_LEN],
    len: u8,
}

impl NameBuf {
    /// The name of lower-case wire form `wire` (at most 255 octets).
    pub fn from_wire(wire: &[u8]) -> Option<NameBuf> {
        let mut n = NameBuf {
            buf: [0; MAX_NAME_LEN],
            len: 0,
        };
        if wire.is_empty() || wire.len() > MAX_NAME_LEN {
            return None;
        }
        n.buf[..wire.len()].copy_from_slice(wire);
        n.buf[..wire.len()].make_ascii_lowercase();
        n.len = wire.len() as u8;
        Some(n)
    }

    pub fn wire(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }

    /// Whether this name is `apex` or below it (`apex` in lower-case wire form).
    pub fn is_within(&self, apex: &[u8]) -> bool {
        let wire = self.wire();
        if wire.len() < apex.len() || !wire.ends_with(apex) {
            return false;
        }
        // The match must start at a label boundary.
        let cut = wire.len() - apex.len();
        let mut at = 0;
        while at < cut {
            at += 1 + usize::from(wire[at]);
        }
        at == cut
    }

    /// Whether this name is `*.<apex>`.
    pub fn is_wildcard_of(&self, apex: &[u8]) -> bool {
        let wire = self.wire();
        wire.len() == apex.len() + 2 && wire.starts_with(&[1, b'*']) && &wire[2..] == apex
    }
}

impl PartialEq for NameBuf {
    fn eq(&self, other: &Self) -> bool {
        self.wire() == other.wire()
    }
}

impl Eq for NameBuf {}

impl std::fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&super::name::presentation(self.wire()))
    }
}

/// Reads the name at `at`, following compression pointers (each must point
/// strictly backwards, so there are no loops). Returns the name and the
/// offset just after it where it was written.
pub fn read_name(msg: &[u8], at: usize) -> Option<(NameBuf, usize)> {
    let mut name = NameBuf {
        buf: [0; MAX_NAME_LEN],
        len: 0,
    };
    let mut len = 0usize;
    let mut pos = at;
    let mut end = None;
    loop {
        let b = *msg.get(pos)?;
        match b {
            0 => {
                if len + 1 > MAX_NAME_LEN {
                    return None;
                }
                name.buf[len] = 0;
                len += 1;
                name.len = len as u8;
                return Some((name, end.unwrap_or(pos + 1)));
            }
            1..=0x3f => {
                let label = msg.get(pos + 1..pos + 1 + usize::from(b))?;
                if len + 1 + label.len() + 1 > MAX_NAME_LEN {
                    return None;
                }
                name.buf[len] = b;
                name.buf[len + 1..len + 1 + label.len()].copy_from_slice(label);
                name.buf[len + 1..len + 1 + label.len()].make_ascii_lowercase();
                len += 1 + label.len();
                pos += 1 + label.len();
            }
            0xc0..=0xff => {
                let target = usize::from(get_u16(msg.get(pos..pos + 2)?, 0) & 0x3fff);
                if target >= pos {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

/// One resource record (or a question / zone entry when `rdata` is empty
/// and `ttl` 0, see `read_entry`).
#[derive(Clone, Copy, Debug)]
pub struct Rr<'m> {
    /// Offset of the record's first byte (its owner name).
    pub start: usize,
    pub name: NameBuf,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: &'m [u8],
    /// Offset of the record data.
    pub rdata_at: usize,
    /// Offset just after the record.
    pub end: usize,
}

/// Reads the record at `at`.
pub fn read_rr(msg: &[u8], at: usize) -> Option<Rr<'_>> {
    let (name, next) = read_name(msg, at)?;
    let fixed = msg.get(next..next + 10)?;
    let rdlen = usize::from(get_u16(fixed, 8));
    let rdata_at = next + 10;
    let rdata = msg.get(rdata_at..rdata_at + rdlen)?;
    Some(Rr {
        start: at,
        name,
        rtype: get_u16(fixed, 0),
        class: get_u16(fixed, 2),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata,
        rdata_at,
        end: rdata_at + rdlen,
    })
}

/// Reads a question (or UPDATE zone) entry at `at`: name, type, class.
pub fn read_entry(msg: &[u8], at: usize) -> Option<(NameBuf, u16, u16, usize)> {
    let (name, next) = read_name(msg, at)?;
    let fixed = msg.get(next..next + 4)?;
    Some((name, get_u16(fixed, 0), get_u16(fixed, 2), next + 4))
}

/// The section counts of a message header.
pub fn counts(msg: &[u8]) -> Option<[u16; 4]> {
    let h = msg.get(..HEADER_LEN)?;
    Some([get_u16(h, 4), get_u16(h, 6), get_u16(h, 8), get_u16(h, 10)])
}

/// Reads the name in the record data of an NS record (it may be compressed
/// against the message).
pub fn rdata_name(msg: &[u8], rr: &Rr<'_>) -> Option<NameBuf> {
    let (name, end) = read_name(msg, rr.rdata_at)?;
    (end == rr.end).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_expand_and_compare_lower_case() {
        // 12 bytes of header, then "WWW.Example.com", then a pointer to it.
        let mut msg = vec![0u8; 12];
        msg.extend(b"\x03WWW\x07Example\x03com\x00");
        msg.extend([0xc0, 16]);
        msg.extend([0x01, b'*', 0xc0, 16]);
        let (name, end) = read_name(&msg, 12).unwrap();
        assert_eq!(name.wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(end, 29);
        let (suffix, end) = read_name(&msg, 29).unwrap();
        assert_eq!(suffix.wire(), b"\x07example\x03com\x00");
        assert_eq!(end, 31);
        assert!(name.is_within(suffix.wire()));
        assert!(!suffix.is_within(name.wire()));
        assert!(name.is_within(name.wire()));
        let (wild, _) = read_name(&msg, 31).unwrap();
        assert!(wild.is_wildcard_of(suffix.wire()));
        // "xexample.com" is not below "example.com".
        let other = NameBuf::from_wire(b"\x08xexample\x03com\x00").unwrap();
        assert!(!other.is_within(suffix.wire()));
    }

    #[test]
    fn bad_names_are_rejected() {
        let msg = [0u8; 12];
        // A pointer to itself, forward pointers, reserved label types, truncation.
        let mut looped = msg.to_vec();
        looped.extend([0xc0, 12]);
        assert!(read_name(&looped, 12).is_none());
        let mut forward = msg.to_vec();
        forward.extend([0xc0, 20, 0]);
        assert!(read_name(&forward, 12).is_none());
        let mut reserved = msg.to_vec();
        reserved.extend([0x40, 0]);
        assert!(read_name(&reserved, 12).is_none());
        let mut cut = msg.to_vec();
        cut.extend([3, b'w']);
        assert!(read_name(&cut, 12).is_none());
        // Longer than 255 octets once expanded.
        let mut long = msg.to_vec();
        for _ in 0..5 {
            long.push(63);
            long.extend([b'a'; 63]);
        }
        long.push(0);
        assert!(read_name(&long, 12).is_none());
    }

    #[test]
    fn records() {
        let mut msg = vec![0u8; 12];
        msg.extend(b"\x03www\x00");
        msg.extend([0, 1, 0, 1, 0, 0, 0, 10, 0, 4, 192, 0, 2, 7]);
        let rr = read_rr(&msg, 12).unwrap();
        assert_eq!((rr.rtype, rr.class, rr.ttl, rr.rdata), (1, 1, 10, &[192, 0, 2, 7][..]));
        assert_eq!(rr.end, msg.len());
        assert!(read_rr(&msg[..msg.len() - 1], 12).is_none());
    }
}
