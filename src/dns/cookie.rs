//! DNS Cookies (RFC 7873) with the interoperable server cookie of RFC 9018:
//! version 1, three reserved octets, a 32-bit timestamp, and SipHash-2-4 of
//! the client cookie, those eight octets and the client's address under the
//! server secret. Hosts that share the secret accept each other's cookies,
//! so a resolver's cookie is valid at every host of a service.

use siphasher::sip::SipHasher24;
use std::hash::Hasher;
use std::net::IpAddr;

pub const CLIENT_COOKIE_LEN: usize = 8;
pub const SERVER_COOKIE_LEN: usize = 16;
/// Option length of a client cookie plus our server cookie.
pub const RESPONSE_COOKIE_LEN: usize = CLIENT_COOKIE_LEN + SERVER_COOKIE_LEN;
const VERSION: u8 = 1;
/// A server cookie is valid from one hour in the past to five minutes in
/// the future (RFC 9018 §4.3).
const MAX_AGE: u32 = 3600;
const MAX_AHEAD: u32 = 300;

/// The server secret, and the one before it while a rotation settles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieSecrets {
    pub current: [u8; 16],
    pub previous: Option<[u8; 16]>,
}

/// What a query's COOKIE option said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieStatus {
    /// A client cookie only (first contact, or a client that forgot ours).
    ClientOnly,
    /// A server cookie this service made for this client, recently.
    Valid,
    /// A server cookie that does not check out (old, forged, other secret).
    Invalid,
}

fn hash(secret: &[u8; 16], client: &[u8; 8], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(head);
    match ip {
        IpAddr::V4(v4) => h.write(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => h.write(&v4.octets()),
            None => h.write(&v6.octets()),
        },
    }
    h.finish().to_le_bytes()
}

/// A fresh server cookie for `client` at time `now` (seconds).
pub fn server_cookie(secret: &[u8; 16], client: &[u8; 8], ip: IpAddr, now: u32) -> [u8; SERVER_COOKIE_LEN] {
    let mut head = [VERSION, 0, 0, 0, 0, 0, 0, 0];
    head[4..].copy_from_slice(&now.to_be_bytes());
    let mut cookie = [0u8; SERVER_COOKIE_LEN];
    cookie[..8].copy_from_slice(&head);
    cookie[8..].copy_from_slice(&hash(secret, client, &head, ip));
    cookie
}

/// Checks the server cookie a client sent back.
pub fn check(secrets: &CookieSecrets, client: &[u8; 8], server: &[u8], ip: IpAddr, now: u32) -> CookieStatus {
    if server.len() != SERVER_COOKIE_LEN || server[0] != VERSION {
        return CookieStatus::Invalid;
    }
    let head: [u8; 8] = server[..8].try_into().unwrap_or_default();
    let stamp = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    // Serial-number arithmetic: the timestamp wraps in 2106.
    let age = now.wrapping_sub(stamp);
    if age > MAX_AGE && stamp.wrapping_sub(now) > MAX_AHEAD {
        return CookieStatus::Invalid;
    }
    let mac: [u8; 8] = server[8..].try_into().unwrap_or_default();
    let ok = |secret: &[u8; 16]| macs_match(&hash(secret, client, &head, ip), &mac);
    if ok(&secrets.current) || secrets.previous.as_ref().is_some_and(ok) {
        CookieStatus::Valid
    } else {
        CookieStatus::Invalid
    }
}

/// Compares two MACs in constant time: every octet is looked at whatever
/// the others hold, so the time taken does not tell a forger how many
/// leading octets of a guess were right.
fn macs_match(expected: &[u8; 8], received: &[u8; 8]) -> bool {
    let difference = expected.iter().zip(received).fold(0, |acc, (a, b)| acc | (a ^ b));
    // Keeps the compiler from turning the fold back into an early exit.
    std::hint::black_box(difference) == 0
}

/// Parses a secret file: 32 hex digits per line, the current secret first
/// and optionally the previous one (for rotation) on the second line.
pub fn parse_secrets(text: &str) -> Option<CookieSecrets> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let parse = |line: &str| -> Option<[u8; 16]> {
        if line.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(line.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    };
    let current = parse(lines.next()?)?;
    let previous = match lines.next() {
        Some(line) => Some(parse(line)?),
        None => None,
    };
    if lines.next().is_some() {
        return None;
    }
    Some(CookieSecrets { current, previous })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn round_trip_and_validity_window() {
        let secrets = CookieSecrets {
            current: SECRET,
            previous: None,
        };
        let client = *b"clientck";
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let now = 1_700_000_000;
        let cookie = server_cookie(&SECRET, &client, ip, now);
        assert_eq!(&cookie[..4], &[1, 0, 0, 0]);
        assert_eq!(check(&secrets, &client, &cookie, ip, now), CookieStatus::Valid);
        assert_eq!(check(&secrets, &client, &cookie, ip, now + 3600), CookieStatus::Valid);
        assert_eq!(check(&secrets, &client, &cookie, ip, now + 3601), CookieStatus::Invalid);
        assert_eq!(check(&secrets, &client, &cookie, ip, now - 300), CookieStatus::Valid);
        assert_eq!(check(&secrets, &client, &cookie, ip, now - 301), CookieStatus::Invalid);
        let other_ip: IpAddr = "192.0.2.8".parse().unwrap();
        assert_eq!(check(&secrets, &client, &cookie, other_ip, now), CookieStatus::Invalid);
        assert_eq!(check(&secrets, b"otherclt", &cookie, ip, now), CookieStatus::Invalid);
        let mut forged = cookie;
        forged[15] ^= 1;
        assert_eq!(check(&secrets, &client, &forged, ip, now), CookieStatus::Invalid);
        assert_eq!(check(&secrets, &client, &cookie[..15], ip, now), CookieStatus::Invalid);
    }

    #[test]
    fn rotation_accepts_the_previous_secret() {
        let client = *b"clientck";
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let old = server_cookie(&SECRET, &client, ip, 100);
        let rotated = CookieSecrets {
            current: *b"fedcba9876543210",
            previous: Some(SECRET),
        };
        assert_eq!(check(&rotated, &client, &old, ip, 100), CookieStatus::Valid);
        let done = CookieSecrets {
            current: *b"fedcba9876543210",
            previous: None,
        };
        assert_eq!(check(&done, &client, &old, ip, 100), CookieStatus::Invalid);
    }

    #[test]
    fn macs_match_only_when_every_octet_does() {
        let mac = *b"\x01\x23\x45\x67\x89\xab\xcd\xef";
        assert!(macs_match(&mac, &mac));
        for octet in 0..8 {
            for bit in 0..8 {
                let mut forged = mac;
                forged[octet] ^= 1 << bit;
                assert!(!macs_match(&mac, &forged), "octet {octet}, bit {bit}");
            }
        }
        assert!(!macs_match(&mac, &[0; 8]));
    }

    #[test]
    fn secret_files() {
        let one = "00112233445566778899aabbccddeeff\n";
        assert_eq!(parse_secrets(one).unwrap().current[15], 0xff);
        let two = "# rotated\n00112233445566778899aabbccddeeff\nffeeddccbbaa99887766554433221100\n";
        assert_eq!(parse_secrets(two).unwrap().previous.unwrap()[0], 0xff);
        assert!(parse_secrets("").is_none());
        assert!(parse_secrets("0011").is_none());
        assert!(parse_secrets("zz112233445566778899aabbccddeeff").is_none());
        assert!(parse_secrets(&format!("{one}{one}{one}")).is_none());
    }
}
