//! TSIG (RFC 8945): shared-secret authentication of DNS messages with HMAC.
//!
//! A server checks a request (`check`) and signs its response with what
//! the check returned (`Reply::append`); a client signs a request
//! (`sign_request`) and checks the response (`verify_response`). Keys come
//! from files in the format `tsig-keygen` writes (`parse_key_file`).
//! Algorithms: HMAC-SHA1, -SHA256 (the default of `tsig-keygen`), -SHA384
//! and -SHA512, through `ring`. MACs are computed over the message pieces
//! in place: nothing is allocated per message.

use super::rr::{self, NameBuf};
use super::wire::{get_u16, put_u16, HEADER_LEN, MAX_NAME_LEN};
use base64::Engine as _;
use ring::hmac;
use thiserror::Error;

pub const TSIG: u16 = 250;
pub const CLASS_ANY: u16 = 255;
/// The time window we allow and ask for (seconds either side), as BIND.
pub const FUDGE: u16 = 300;
/// The TSIG-related response code: "not authorized" (RFC 8945 §5.3).
pub const NOTAUTH: u16 = 9;
/// Largest MAC (HMAC-SHA512).
pub const MAX_MAC: usize = 64;

/// TSIG error codes (RFC 8945 §3).
pub mod error {
    pub const BADSIG: u16 = 16;
    pub const BADKEY: u16 = 17;
    pub const BADTIME: u16 = 18;
    pub const BADTRUNC: u16 = 22;

    pub fn name(code: u16) -> &'static str {
        match code {
            0 => "NOERROR",
            BADSIG => "BADSIG",
            BADKEY => "BADKEY",
            BADTIME => "BADTIME",
            BADTRUNC => "BADTRUNC",
            _ => "error",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Algorithm {
    const ALL: [Algorithm; 4] = [
        Algorithm::HmacSha1,
        Algorithm::HmacSha256,
        Algorithm::HmacSha384,
        Algorithm::HmacSha512,
    ];

    /// The name as configuration files and messages spell it.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha1 => "hmac-sha1",
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha384 => "hmac-sha384",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn wire(self) -> &'static [u8] {
        match self {
            Algorithm::HmacSha1 => b"\x09hmac-sha1\x00",
            Algorithm::HmacSha256 => b"\x0bhmac-sha256\x00",
            Algorithm::HmacSha384 => b"\x0bhmac-sha384\x00",
            Algorithm::HmacSha512 => b"\x0bhmac-sha512\x00",
        }
    }

    fn from_wire(wire: &[u8]) -> Option<Algorithm> {
        Self::ALL.into_iter().find(|a| a.wire() == wire)
    }

    pub fn from_name(text: &str) -> Option<Algorithm> {
        let text = text.trim_end_matches('.').to_ascii_lowercase();
        Self::ALL.into_iter().find(|a| a.name() == text)
    }

    fn ring(self) -> hmac::Algorithm {
        match self {
            Algorithm::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Algorithm::HmacSha256 => hmac::HMAC_SHA256,
            Algorithm::HmacSha384 => hmac::HMAC_SHA384,
            Algorithm::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    pub fn mac_len(self) -> usize {
        match self {
            Algorithm::HmacSha1 => 20,
            Algorithm::HmacSha256 => 32,
            Algorithm::HmacSha384 => 48,
            Algorithm::HmacSha512 => 64,
        }
    }
}

/// A TSIG key: its name (lower-case wire form), algorithm and secret.
pub struct Key {
    name: NameBuf,
    text: String,
    algorithm: Algorithm,
    key: hmac::Key,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "Key({} {})", self.text, self.algorithm.name())
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid key name \"{0}\"")]
    Name(String),
    #[error("unsupported algorithm \"{0}\" (hmac-sha1, hmac-sha256, hmac-sha384, hmac-sha512)")]
    Algorithm(String),
    #[error("the secret of key \"{0}\" is not base64")]
    Secret(String),
    #[error("key \"{0}\" has no {1}")]
    Missing(String, &'static str),
    #[error("key \"{0}\" is defined twice")]
    Duplicate(String),
    #[error("no key in the file")]
    Empty,
    #[error("syntax error near \"{0}\" (expected key \"name\" {{ algorithm ...; secret \"...\"; }};)")]
    Syntax(String),
}

impl Key {
    pub fn new(name: &str, algorithm: Algorithm, secret: &[u8]) -> Result<Key, KeyError> {
        let wire = name_to_wire(name).ok_or_else(|| KeyError::Name(name.to_string()))?;
        Ok(Key {
            name: NameBuf::from_wire(&wire).ok_or_else(|| KeyError::Name(name.to_string()))?,
            text: name.trim_end_matches('.').to_ascii_lowercase(),
            algorithm,
            key: hmac::Key::new(algorithm.ring(), secret),
        })
    }

    /// The key's name, without the final dot.
    pub fn name(&self) -> &str {
        &self.text
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Room a TSIG record signed with this key takes, at most.
    pub fn record_len(&self) -> usize {
        record_len(&self.name, self.algorithm.wire(), self.algorithm.mac_len())
    }
}

/// Wire length of a TSIG record with these names and MAC, and six octets
/// of other data (BADTIME).
fn record_len(name: &NameBuf, algorithm: &[u8], mac_len: usize) -> usize {
    name.wire().len() + 10 + algorithm.len() + 6 + 2 + 2 + mac_len + 2 + 2 + 2 + 6
}

/// A name in text form (`update-key`, `key.example.`) as lower-case wire.
fn name_to_wire(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_suffix('.').unwrap_or(text);
    if text.is_empty() {
        return None;
    }
    let mut wire = Vec::with_capacity(text.len() + 2);
    for label in text.split('.') {
        if label.is_empty() || label.len() > 63 || !label.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    (wire.len() <= MAX_NAME_LEN).then_some(wire)
}

/// Reads the `key` statements of a file in the format `tsig-keygen` writes
/// (BIND's configuration syntax, with `#`, `//` and `/* */` comments):
///
/// ```text
/// key "update-key" {
///     algorithm hmac-sha256;
///     secret "base64...";
/// };
/// ```
pub fn parse_key_file(text: &str) -> Result<Vec<Key>, KeyError> {
    let tokens = tokenize(text)?;
    let mut keys: Vec<Key> = Vec::new();
    let mut t = tokens.iter().map(String::as_str).peekable();
    let syntax = |near: Option<&str>| KeyError::Syntax(near.unwrap_or("end of file").chars().take(40).collect());
    while let Some(word) = t.next() {
        if word != "key" {
            return Err(syntax(Some(word)));
        }
        let name = t.next().ok_or_else(|| syntax(None))?.to_string();
        if t.next() != Some("{") {
            return Err(syntax(Some(&name)));
        }
        let (mut algorithm, mut secret) = (None, None);
        loop {
            match t.next() {
                Some("}") => break,
                Some("algorithm") => {
                    let a = t.next().ok_or_else(|| syntax(None))?;
                    algorithm = Some(Algorithm::from_name(a).ok_or_else(|| KeyError::Algorithm(a.to_string()))?);
                }
                Some("secret") => {
                    let s = t.next().ok_or_else(|| syntax(None))?;
                    secret = Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(s)
                            .map_err(|_| KeyError::Secret(name.clone()))?,
                    );
                }
                other => return Err(syntax(other)),
            }
            if t.next() != Some(";") {
                return Err(syntax(Some(&name)));
            }
        }
        if t.next() != Some(";") {
            return Err(syntax(Some(&name)));
        }
        let algorithm = algorithm.ok_or_else(|| KeyError::Missing(name.clone(), "algorithm"))?;
        let secret = secret.ok_or_else(|| KeyError::Missing(name.clone(), "secret"))?;
        let key = Key::new(&name, algorithm, &secret)?;
        if keys.iter().any(|k| k.name == key.name) {
            return Err(KeyError::Duplicate(name));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

/// Words, quoted strings (quotes removed) and the characters `{ } ;`.
fn tokenize(text: &str) -> Result<Vec<String>, KeyError> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                chars.by_ref().find(|&c| c == '\n');
            }
            '/' => {
                chars.next();
                match chars.next() {
                    Some('/') => {
                        chars.by_ref().find(|&c| c == '\n');
                    }
                    Some('*') => {
                        let mut last = ' ';
                        loop {
                            match chars.next() {
                                Some('/') if last == '*' => break,
                                Some(c) => last = c,
                                None => return Err(KeyError::Syntax("/*".into())),
                            }
                        }
                    }
                    _ => return Err(KeyError::Syntax("/".into())),
                }
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err(KeyError::Syntax(format!("\"{s}"))),
                    }
                }
                tokens.push(s);
            }
            '{' | '}' | ';' => {
                tokens.push(c.to_string());
                chars.next();
            }
            _ => {
                let mut s = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "{};\"#".contains(c) {
                        break;
                    }
                    s.push(c);
                    chars.next();
                }
                tokens.push(s);
            }
        }
    }
    Ok(tokens)
}

/// The TSIG record of a message, as read.
#[derive(Clone, Copy, Debug)]
pub struct Record<'m> {
    /// Offset of the record: the signed message is everything before it.
    pub start: usize,
    pub key_name: NameBuf,
    pub algorithm: NameBuf,
    pub time_signed: u64,
    pub fudge: u16,
    pub mac: &'m [u8],
    pub original_id: u16,
    pub error: u16,
    pub other: &'m [u8],
}

/// A TSIG record that is not where or what it must be: FORMERR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

/// Finds the TSIG record of `msg`: `Ok(None)` when it has none. A TSIG
/// record anywhere but last in the additional section, or with bad data,
/// or bytes after it, is malformed.
pub fn find(msg: &[u8]) -> Result<Option<Record<'_>>, Malformed> {
    let [qd, an, ns, ar] = rr::counts(msg).ok_or(Malformed)?;
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        at = rr::read_entry(msg, at).ok_or(Malformed)?.3;
    }
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    let mut found = None;
    for i in 0..total {
        let record = rr::read_rr(msg, at).ok_or(Malformed)?;
        if record.rtype == TSIG {
            if i + 1 != total || ar == 0 {
                return Err(Malformed);
            }
            found = Some(record);
        }
        at = record.end;
    }
    let Some(record) = found else { return Ok(None) };
    if record.end != msg.len() || record.class != CLASS_ANY || record.ttl != 0 {
        return Err(Malformed);
    }
    // RDATA: algorithm name (uncompressed), time (48 bits), fudge, MAC
    // size and MAC, original ID, error, other length and other data.
    let data = record.rdata;
    let (algorithm, after) = rr::read_name(msg, record.rdata_at).ok_or(Malformed)?;
    let mut p = after - record.rdata_at;
    let take = |p: &mut usize, n: usize| -> Result<&[u8], Malformed> {
        let s = data.get(*p..*p + n).ok_or(Malformed)?;
        *p += n;
        Ok(s)
    };
    let time = take(&mut p, 6)?;
    let time_signed = time.iter().fold(0u64, |t, &b| t << 8 | u64::from(b));
    let fudge = get_u16(take(&mut p, 2)?, 0);
    let mac_len = usize::from(get_u16(take(&mut p, 2)?, 0));
    let mac = take(&mut p, mac_len)?;
    let original_id = get_u16(take(&mut p, 2)?, 0);
    let error = get_u16(take(&mut p, 2)?, 0);
    let other_len = usize::from(get_u16(take(&mut p, 2)?, 0));
    let other = take(&mut p, other_len)?;
    if p != data.len() {
        return Err(Malformed);
    }
    Ok(Some(Record {
        start: record.start,
        key_name: record.name,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    }))
}

/// The "TSIG variables" of RFC 8945 §4.3.3 other than the key's.
struct Variables<'a> {
    time_signed: u64,
    fudge: u16,
    error: u16,
    other: &'a [u8],
}

/// The MAC of a message: `prior` (a request's MAC, when signing or
/// checking a response), the message without its TSIG record (`header`,
/// already holding the original ID and the TSIG-less additional count,
/// then `body`), and the TSIG variables.
fn compute(key: &Key, prior: Option<&[u8]>, header: &[u8; HEADER_LEN], body: &[u8], vars: &Variables<'_>) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(&key.key);
    if let Some(prior) = prior {
        ctx.update(&(prior.len() as u16).to_be_bytes());
        ctx.update(prior);
    }
    ctx.update(header);
    ctx.update(body);
    ctx.update(key.name.wire());
    ctx.update(&CLASS_ANY.to_be_bytes());
    ctx.update(&0u32.to_be_bytes());
    ctx.update(key.algorithm.wire());
    ctx.update(&vars.time_signed.to_be_bytes()[2..]);
    ctx.update(&vars.fudge.to_be_bytes());
    ctx.update(&vars.error.to_be_bytes());
    ctx.update(&(vars.other.len() as u16).to_be_bytes());
    ctx.update(vars.other);
    ctx.sign()
}

/// The MAC of a message we are about to sign (`msg` has no TSIG yet).
fn compute_outgoing(key: &Key, prior: Option<&[u8]>, msg: &[u8], original_id: u16, vars: &Variables<'_>) -> hmac::Tag {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&msg[..HEADER_LEN]);
    put_u16(&mut header, 0, original_id);
    compute(key, prior, &header, &msg[HEADER_LEN..], vars)
}

/// The MAC of a received message, over everything before its TSIG record
/// with the additional count as it was before the record was added.
fn compute_received(key: &Key, prior: Option<&[u8]>, msg: &[u8], record: &Record<'_>) -> hmac::Tag {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&msg[..HEADER_LEN]);
    put_u16(&mut header, 0, record.original_id);
    let arcount = get_u16(&header, 10);
    put_u16(&mut header, 10, arcount.wrapping_sub(1));
    let vars = Variables {
        time_signed: record.time_signed,
        fudge: record.fudge,
        error: record.error,
        other: record.other,
    };
    compute(key, prior, &header, &msg[HEADER_LEN..record.start], &vars)
}

/// Constant-time comparison of a received MAC (possibly truncated) with
/// the first bytes of the expected one.
fn mac_matches(expected: &[u8], received: &[u8]) -> bool {
    if received.is_empty() || received.len() > expected.len() {
        return false;
    }
    let mut diff = 0u8;
    for (a, b) in expected.iter().zip(received) {
        diff |= a ^ b;
    }
    diff == 0
}

/// How to sign (or not) the response to a checked request: what `check`
/// found, kept until the response is written.
#[derive(Clone, Copy, Debug)]
pub struct Reply<'k> {
    /// The key to sign with; `None` for the unsigned error responses
    /// (BADKEY, BADSIG: RFC 8945 §5.3.2).
    key: Option<&'k Key>,
    key_name: NameBuf,
    algorithm: NameBuf,
    request_mac: [u8; MAX_MAC],
    request_mac_len: usize,
    time_signed: u64,
    original_id: u16,
    /// The TSIG error of the response (0: the request was valid).
    pub error: u16,
    /// The server's time (seconds since the epoch).
    now: u64,
}

impl<'k> Reply<'k> {
    /// The key the request was validly signed with, if it was.
    pub fn signer(&self) -> Option<&'k Key> {
        self.key.filter(|_| self.error == 0)
    }

    /// The key name the request named (`{:?}` shows it), for logs.
    pub fn key_name(&self) -> NameBuf {
        self.key_name
    }

    /// Room the TSIG record of the response needs.
    pub fn record_len(&self) -> usize {
        let mac = self.key.map_or(0, |k| k.algorithm.mac_len());
        record_len(&self.key_name, self.algorithm.wire(), mac)
    }

    /// Appends the response's TSIG record to the response in `out[..len]`
    /// (its header's additional count is raised by one); returns the new
    /// length, or `None` when `out` has no room.
    pub fn append(&self, out: &mut [u8], len: usize) -> Option<usize> {
        // BADTIME: the request's time, and ours in the other data
        // (RFC 8945 §5.2.3), so the client can verify and learn the skew.
        let badtime_other = (self.now.min(0xffff_ffff_ffff)).to_be_bytes();
        let (time_signed, other): (u64, &[u8]) = match self.error {
            error::BADTIME => (self.time_signed, &badtime_other[2..]),
            0 | error::BADTRUNC => (self.now, &[]),
            _ => (self.time_signed, &[]),
        };
        let vars = Variables {
            time_signed,
            fudge: FUDGE,
            error: self.error,
            other,
        };
        let mac = self.key.map(|key| {
            compute_outgoing(
                key,
                Some(&self.request_mac[..self.request_mac_len]),
                &out[..len],
                self.original_id,
                &vars,
            )
        });
        let mac: &[u8] = mac.as_ref().map_or(&[], |m| m.as_ref());
        write_record(
            out,
            len,
            &self.key_name,
            self.algorithm.wire(),
            mac,
            self.original_id,
            &vars,
        )
    }
}

/// Writes a TSIG record after `out[..len]` and counts it in the header.
fn write_record(
    out: &mut [u8],
    len: usize,
    key_name: &NameBuf,
    algorithm: &[u8],
    mac: &[u8],
    original_id: u16,
    vars: &Variables<'_>,
) -> Option<usize> {
    let name = key_name.wire();
    let rdlen = algorithm.len() + 6 + 2 + 2 + mac.len() + 2 + 2 + 2 + vars.other.len();
    let end = len + name.len() + 10 + rdlen;
    if end > out.len() || len < HEADER_LEN {
        return None;
    }
    let mut at = len;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(name);
    put(&TSIG.to_be_bytes());
    put(&CLASS_ANY.to_be_bytes());
    put(&0u32.to_be_bytes());
    put(&(rdlen as u16).to_be_bytes());
    put(algorithm);
    put(&vars.time_signed.to_be_bytes()[2..]);
    put(&vars.fudge.to_be_bytes());
    put(&(mac.len() as u16).to_be_bytes());
    put(mac);
    put(&original_id.to_be_bytes());
    put(&vars.error.to_be_bytes());
    put(&(vars.other.len() as u16).to_be_bytes());
    put(vars.other);
    debug_assert_eq!(at, end);
    let arcount = get_u16(out, 10);
    put_u16(out, 10, arcount.wrapping_add(1));
    Some(end)
}

/// What checking a request's TSIG found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // on the stack, once per message
pub enum Checked<'k> {
    /// No TSIG record.
    Unsigned,
    /// A TSIG record that is malformed or misplaced: FORMERR.
    Malformed,
    /// Signed: valid when `reply.error` is 0, otherwise answer NOTAUTH with
    /// that TSIG error. Either way the response goes through `reply`.
    Signed(Reply<'k>),
}

/// Checks the TSIG of a request against `keys` at time `now` (seconds
/// since the epoch), in the order of RFC 8945 §5.2: key, MAC, time.
pub fn check<'k>(msg: &[u8], keys: &'k [Key], now: u64) -> Checked<'k> {
    let record = match find(msg) {
        Ok(Some(r)) => r,
        Ok(None) => return Checked::Unsigned,
        Err(Malformed) => return Checked::Malformed,
    };
    let mut reply = Reply {
        key: None,
        key_name: record.key_name,
        algorithm: record.algorithm,
        request_mac: [0; MAX_MAC],
        request_mac_len: 0,
        time_signed: record.time_signed,
        original_id: record.original_id,
        error: 0,
        now,
    };
    let key = keys
        .iter()
        .find(|k| k.name == record.key_name && Algorithm::from_wire(record.algorithm.wire()) == Some(k.algorithm));
    let Some(key) = key else {
        reply.error = error::BADKEY;
        return Checked::Signed(reply);
    };
    // MAC size (§5.2.2.1): longer than the digest, or shorter than half
    // of it or 10 octets, is malformed.
    let full = key.algorithm.mac_len();
    let mac_len = record.mac.len();
    if mac_len > full || mac_len < (full / 2).max(10) {
        return Checked::Malformed;
    }
    let expected = compute_received(key, None, msg, &record);
    if !mac_matches(expected.as_ref(), record.mac) {
        reply.error = error::BADSIG;
        return Checked::Signed(reply);
    }
    // From here on the response is signed (§5.3.2).
    reply.key = Some(key);
    reply.request_mac[..mac_len].copy_from_slice(record.mac);
    reply.request_mac_len = mac_len;
    if now.abs_diff(record.time_signed) > u64::from(record.fudge) {
        reply.error = error::BADTIME;
    } else if mac_len < full {
        // We do not accept truncated MACs.
        reply.error = error::BADTRUNC;
    }
    Checked::Signed(reply)
}

/// Signs the request in `out[..len]` with `key` at `now`; returns the new
/// length and the request's MAC (needed to check the response).
pub fn sign_request(key: &Key, out: &mut [u8], len: usize, now: u64) -> Option<(usize, [u8; MAX_MAC])> {
    if len < HEADER_LEN {
        return None;
    }
    let vars = Variables {
        time_signed: now,
        fudge: FUDGE,
        error: 0,
        other: &[],
    };
    let original_id = get_u16(out, 0);
    let tag = compute_outgoing(key, None, &out[..len], original_id, &vars);
    let mut mac = [0u8; MAX_MAC];
    mac[..tag.as_ref().len()].copy_from_slice(tag.as_ref());
    let end = write_record(
        out,
        len,
        &key.name,
        key.algorithm.wire(),
        tag.as_ref(),
        original_id,
        &vars,
    )?;
    Some((end, mac))
}

/// Why a response to a signed request does not check out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The server answered with a TSIG error (BADKEY, BADSIG, BADTIME...).
    Server(u16),
    /// No TSIG record, or one that is malformed or for another key.
    Unsigned,
    /// Our check of its MAC failed.
    BadSig,
    /// Signed outside the time window.
    BadTime,
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::Server(e) => write!(f, "TSIG error {} from the server", error::name(*e)),
            ResponseError::Unsigned => f.write_str("the response is not signed with our key"),
            ResponseError::BadSig => f.write_str("the response's TSIG signature is wrong"),
            ResponseError::BadTime => f.write_str("the response was signed outside the time window"),
        }
    }
}

/// Checks the TSIG of a response to a request we signed with `key`
/// (`request_mac` from `sign_request`).
pub fn verify_response(key: &Key, request_mac: &[u8], msg: &[u8], now: u64) -> Result<(), ResponseError> {
    let record = match find(msg) {
        Ok(Some(r)) => r,
        _ => return Err(ResponseError::Unsigned),
    };
    if record.key_name != key.name || Algorithm::from_wire(record.algorithm.wire()) != Some(key.algorithm) {
        return Err(ResponseError::Unsigned);
    }
    if record.error != 0 && record.mac.is_empty() {
        return Err(ResponseError::Server(record.error));
    }
    let expected = compute_received(key, Some(request_mac), msg, &record);
    if record.mac.len() != key.algorithm.mac_len() || !mac_matches(expected.as_ref(), record.mac) {
        return Err(ResponseError::BadSig);
    }
    if record.error != 0 {
        return Err(ResponseError::Server(record.error));
    }
    if now.abs_diff(record.time_signed) > u64::from(record.fudge) {
        return Err(ResponseError::BadTime);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const KEY_FILE: &str = "key \"test-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"WyQHmL3tltEgNr/ZfPtK7zilSg+o8phItqA3x29foVg=\";\n};\n";

    /// What nsupdate sent for an SOA query signed with KEY_FILE (captured).
    const SIGNED_SOA_QUERY: &str = "5a120000000100000000000103777777076578616d706c6503636f6d000006000108746573742d6b65790000fa00ff00000000003d0b686d61632d7368613235360000006b0b48b7012c0020e90f62b2b34b962165ab6c72ba63897e687bc7ab9e461df020936440a734f62d5a1200000000";
    const SIGNED_AT: u64 = 0x6b0b_48b7;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn key_files_as_tsig_keygen_writes_them() {
        let keys = parse_key_file(KEY_FILE).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].name(), "test-key");
        assert_eq!(keys[0].algorithm(), Algorithm::HmacSha256);
        let two = "# two keys\nkey \"a.example.\" { algorithm HMAC-SHA512; secret \"AAAA\"; };\n\
                   /* and */ key b { algorithm hmac-sha1; // legacy\n secret \"AAAA\"; };";
        let keys = parse_key_file(two).unwrap();
        assert_eq!((keys[0].name(), keys[1].name()), ("a.example", "b"));
        assert!(format!("{:?}", keys[0]).contains("hmac-sha512"));
        assert!(matches!(parse_key_file(""), Err(KeyError::Empty)));
        assert!(matches!(
            parse_key_file("key k { algorithm hmac-md5; secret \"AAAA\"; };"),
            Err(KeyError::Algorithm(_))
        ));
        assert!(matches!(
            parse_key_file("key k { algorithm hmac-sha256; secret \"!!\"; };"),
            Err(KeyError::Secret(_))
        ));
        assert!(matches!(
            parse_key_file("key k { algorithm hmac-sha256; };"),
            Err(KeyError::Missing(_, "secret"))
        ));
        assert!(matches!(
            parse_key_file("key k { algorithm hmac-sha256 }"),
            Err(KeyError::Syntax(_))
        ));
        assert!(matches!(parse_key_file("options { };"), Err(KeyError::Syntax(_))));
        assert!(matches!(
            parse_key_file(
                "key k { algorithm hmac-sha256; secret \"AA==\"; }; key K { algorithm hmac-sha256; secret \"AA==\"; };"
            ),
            Err(KeyError::Duplicate(_))
        ));
    }

    #[test]
    fn a_request_signed_by_nsupdate_checks_out() {
        let keys = parse_key_file(KEY_FILE).unwrap();
        let msg = hex(SIGNED_SOA_QUERY);
        let Checked::Signed(reply) = check(&msg, &keys, SIGNED_AT + 10) else {
            panic!("signed")
        };
        assert_eq!(reply.error, 0);
        assert_eq!(reply.signer().unwrap().name(), "test-key");
        // Out of the window: BADTIME, still signed.
        let Checked::Signed(late) = check(&msg, &keys, SIGNED_AT + 301) else {
            panic!()
        };
        assert_eq!(
            (late.error, late.signer().is_none(), late.key.is_some()),
            (error::BADTIME, true, true)
        );
        // A flipped bit anywhere in the signed part: BADSIG, unsigned reply.
        let mut bad = msg.clone();
        bad[20] ^= 1;
        let Checked::Signed(r) = check(&bad, &keys, SIGNED_AT) else {
            panic!()
        };
        assert_eq!((r.error, r.key.is_none()), (error::BADSIG, true));
        // Another secret under the same name: BADSIG.
        let other = parse_key_file(&KEY_FILE.replace("WyQH", "XyQH")).unwrap();
        let Checked::Signed(r) = check(&msg, &other, SIGNED_AT) else {
            panic!()
        };
        assert_eq!(r.error, error::BADSIG);
        // Unknown key: BADKEY.
        let other = parse_key_file(&KEY_FILE.replace("test-key", "other")).unwrap();
        let Checked::Signed(r) = check(&msg, &other, SIGNED_AT) else {
            panic!()
        };
        assert_eq!(r.error, error::BADKEY);
        // Without the TSIG record: unsigned.
        let mut plain = msg[..33].to_vec();
        plain[11] = 0;
        assert!(matches!(check(&plain, &keys, SIGNED_AT), Checked::Unsigned));
        // A byte after the TSIG record, or a truncated one: malformed.
        let mut long = msg.clone();
        long.push(0);
        assert!(matches!(check(&long, &keys, SIGNED_AT), Checked::Malformed));
        assert!(matches!(
            check(&msg[..msg.len() - 1], &keys, SIGNED_AT),
            Checked::Malformed
        ));
    }

    #[test]
    fn requests_and_responses_round_trip() {
        let keys = parse_key_file(KEY_FILE).unwrap();
        let key = &keys[0];
        let mut out = [0u8; 512];
        let q = hex(&SIGNED_SOA_QUERY[..66]);
        out[..q.len()].copy_from_slice(&q);
        out[11] = 0;
        let (len, mac) = sign_request(key, &mut out, q.len(), 1000).unwrap();
        let request = out[..len].to_vec();
        let Checked::Signed(reply) = check(&request, &keys, 1001) else {
            panic!()
        };
        assert_eq!(reply.error, 0);
        // The server's response: header with QR, then its TSIG.
        let mut resp = [0u8; 512];
        resp[..q.len()].copy_from_slice(&q);
        resp[2] |= 0x80;
        resp[11] = 0;
        let rlen = reply.append(&mut resp, q.len()).unwrap();
        assert!(rlen - q.len() <= reply.record_len());
        let mac = &mac[..32];
        assert_eq!(verify_response(key, mac, &resp[..rlen], 1002), Ok(()));
        assert_eq!(
            verify_response(key, &[0; 32], &resp[..rlen], 1002),
            Err(ResponseError::BadSig)
        );
        assert_eq!(
            verify_response(key, mac, &resp[..rlen], 2000),
            Err(ResponseError::BadTime)
        );
        // A BADTIME reply is signed, carries the server's time and is
        // verified by the client as a server error.
        let Checked::Signed(late) = check(&request, &keys, 5000) else {
            panic!()
        };
        let mut resp2 = resp;
        resp2[11] = 0;
        let rlen = late.append(&mut resp2, q.len()).unwrap();
        assert_eq!(
            verify_response(key, mac, &resp2[..rlen], 1000),
            Err(ResponseError::Server(error::BADTIME))
        );
        let record = find(&resp2[..rlen]).unwrap().unwrap();
        assert_eq!(
            (record.time_signed, record.other),
            (1000, &[0, 0, 0, 0, 0x13, 0x88][..])
        );
        // No room: nothing written.
        assert_eq!(reply.append(&mut resp[..q.len() + 10], q.len()), None);
    }
}
