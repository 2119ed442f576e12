//! DNS wire-format constants and small big-endian helpers.

pub const HEADER_LEN: usize = 12;
/// Largest DNS name on the wire (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_LABEL_LEN: usize = 63;
/// UDP response size limit for a query without EDNS (RFC 1035 §4.2.1).
pub const PLAIN_UDP_LIMIT: usize = 512;
/// Largest message that fits TCP's 2-byte length prefix.
pub const MAX_MESSAGE_LEN: usize = 65535;

pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const SOA: u16 = 6;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const DS: u16 = 43;
    pub const RRSIG: u16 = 46;
    pub const NSEC: u16 = 47;
    pub const DNSKEY: u16 = 48;
    pub const CDS: u16 = 59;
    pub const CDNSKEY: u16 = 60;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const MAILB: u16 = 253;
    pub const MAILA: u16 = 254;
    pub const ANY: u16 = 255;
}

pub mod class {
    pub const IN: u16 = 1;
}

pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
    pub const BADCOOKIE: u16 = 23;
}

pub mod opcode {
    pub const QUERY: u8 = 0;
}

pub mod edns_option {
    pub const NSID: u16 = 3;
    pub const COOKIE: u16 = 10;
}

/// Header flag bits, as seen in the 16-bit flags word.
pub mod flag {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const CD: u16 = 0x0010;
}

/// DO bit in the OPT record's TTL field (RFC 3225).
pub const EDNS_DO: u32 = 0x0000_8000;

#[inline]
pub fn get_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

#[inline]
pub fn put_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline]
pub fn put_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Mnemonic of a record type for logs (`A`, `AAAA`, or `TYPE<n>` per RFC 3597).
pub fn rtype_name(rtype: u16) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    let known = match rtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        35 => "NAPTR",
        41 => "OPT",
        43 => "DS",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        59 => "CDS",
        60 => "CDNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        257 => "CAA",
        _ => return Cow::Owned(format!("TYPE{rtype}")),
    };
    Cow::Borrowed(known)
}

/// Mnemonic of a response code (extended codes included) for logs.
pub fn rcode_name(rcode: u16) -> std::borrow::Cow<'static, str> {
    use std::borrow::Cow;
    let known = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        16 => "BADVERS",
        23 => "BADCOOKIE",
        _ => return Cow::Owned(format!("RCODE{rcode}")),
    };
    Cow::Borrowed(known)
}
