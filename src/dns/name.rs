//! Domain names as the configuration gives them: validation and conversion to
//! the lower-case wire form that templates are built from.

use super::wire::{MAX_LABEL_LEN, MAX_NAME_LEN};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NameError {
    #[error("empty name")]
    Empty,
    #[error("empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("label \"{0}\" is longer than 63 octets")]
    LabelTooLong(String),
    #[error("name is longer than 255 octets")]
    NameTooLong,
    #[error("label \"{0}\" is not a host name label (letters, digits and inner hyphens only)")]
    NotHostLabel(String),
    #[error("the root is not allowed here")]
    Root,
    #[error("\"{0}\" looks like an address, not a host name (its last label is numeric)")]
    NumericTop(String),
    #[error("\"{0}\" is not a mailbox (user@domain or user.domain)")]
    BadMailbox(String),
}

/// A domain name in uncompressed, lower-case wire form (ends with the root label).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Name {
    wire: Vec<u8>,
}

impl Name {
    /// Parses a host name (RFC 952/1123 letters-digits-hyphens labels), as
    /// used for the service name and the name servers. A trailing dot is
    /// accepted; the root alone is not.
    pub fn parse_host(text: &str) -> Result<Name, NameError> {
        if text == "." {
            return Err(NameError::Root);
        }
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        let labels: Vec<&str> = text.split('.').collect();
        for label in &labels {
            check_host_label(label)?;
        }
        // An all-numeric top label is an address written where a name
        // belongs (no top-level domain is numeric, RFC 3696 §2).
        if labels.last().is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit())) {
            return Err(NameError::NumericTop(text.to_string()));
        }
        Self::from_labels(labels.iter().map(|l| l.as_bytes()))
    }

    /// Parses an SOA RNAME: `user@example.com` (the local part becomes one
    /// label, dots and all) or the DNS form `user.example.com`.
    pub fn parse_mailbox(text: &str) -> Result<Name, NameError> {
        let bad = || NameError::BadMailbox(text.to_string());
        let text = text.strip_suffix('.').unwrap_or(text);
        if let Some((local, domain)) = text.split_once('@') {
            let local_ok = !local.is_empty()
                && local.len() <= MAX_LABEL_LEN
                && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
            if !local_ok || domain.is_empty() {
                return Err(bad());
            }
            let domain = Name::parse_host(domain)?;
            let mut labels: Vec<&[u8]> = vec![local.as_bytes()];
            labels.extend(domain.labels());
            return Self::from_labels(labels.into_iter());
        }
        let (local, domain) = text.split_once('.').ok_or_else(bad)?;
        let local_ok = !local.is_empty() && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+-".contains(&b));
        if !local_ok {
            return Err(bad());
        }
        let domain = Name::parse_host(domain)?;
        let mut labels: Vec<&[u8]> = vec![local.as_bytes()];
        labels.extend(domain.labels());
        Self::from_labels(labels.into_iter())
    }

    fn from_labels<'a>(labels: impl Iterator<Item = &'a [u8]>) -> Result<Name, NameError> {
        let mut wire = Vec::with_capacity(64);
        for label in labels {
            if label.is_empty() {
                return Err(NameError::EmptyLabel);
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(NameError::LabelTooLong(String::from_utf8_lossy(label).into_owned()));
            }
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        if wire.len() > MAX_NAME_LEN {
            return Err(NameError::NameTooLong);
        }
        Ok(Name { wire })
    }

    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = self.wire[at] as usize;
            if len == 0 {
                return None;
            }
            let label = &self.wire[at + 1..at + 1 + len];
            at += 1 + len;
            Some(label)
        })
    }

    /// True when `self` is `other` or below it.
    pub fn is_within(&self, other: &Name) -> bool {
        self.wire.len() >= other.wire.len()
            && self.wire.ends_with(&other.wire)
            && label_boundaries(&self.wire).any(|at| at == self.wire.len() - other.wire.len())
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&presentation(&self.wire))
    }
}

fn check_host_label(label: &str) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong(label.to_string()));
    }
    let bytes = label.as_bytes();
    let ldh = bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-');
    if !ldh || bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
        return Err(NameError::NotHostLabel(label.to_string()));
    }
    Ok(())
}

/// Offsets of every label start in an uncompressed wire name (root excluded).
pub fn label_boundaries(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let len = *wire.get(at)? as usize;
        if len == 0 {
            return None;
        }
        let start = at;
        at += 1 + len;
        Some(start)
    })
}

/// Presentation form of an uncompressed wire name, without the trailing dot
/// (`.` for the root). Bytes outside printable ASCII, dots inside labels and
/// backslashes are escaped as in master files.
pub fn presentation(wire: &[u8]) -> String {
    let mut out = String::with_capacity(wire.len());
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        let len = len as usize;
        if len == 0 || at + 1 + len > wire.len() {
            break;
        }
        if !out.is_empty() {
            out.push('.');
        }
        for &b in &wire[at + 1..at + 1 + len] {
            match b {
                b'.' | b'\\' | b'"' | b';' | b'(' | b')' | b'$' | b'@' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\{b:03}")),
            }
        }
        at += 1 + len;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        let name = Name::parse_host("WWW.Example.com.").unwrap();
        assert_eq!(name.wire(), b"\x03www\x07example\x03com\x00");
        assert_eq!(name.to_string(), "www.example.com");
        assert_eq!(Name::parse_host("").unwrap_err(), NameError::Empty);
        assert_eq!(Name::parse_host("a..b").unwrap_err(), NameError::EmptyLabel);
        assert!(matches!(
            Name::parse_host(&"a".repeat(64)),
            Err(NameError::LabelTooLong(_))
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert_eq!(Name::parse_host(&long).unwrap_err(), NameError::NameTooLong);
        assert!(matches!(
            Name::parse_host("a_b.example"),
            Err(NameError::NotHostLabel(_))
        ));
        assert!(matches!(
            Name::parse_host("ex ample.com"),
            Err(NameError::NotHostLabel(_))
        ));
        assert!(matches!(Name::parse_host("-a.com"), Err(NameError::NotHostLabel(_))));
        assert!(Name::parse_host("xn--bcher-kva.example").is_ok());
        assert!(
            Name::parse_host("1.example.com").is_ok(),
            "digits-only inner labels are fine"
        );
        assert!(matches!(Name::parse_host("192.0.2.1"), Err(NameError::NumericTop(_))));
    }

    #[test]
    fn mailboxes() {
        let rname = Name::parse_mailbox("admin@example.net").unwrap();
        assert_eq!(rname.wire(), b"\x05admin\x07example\x03net\x00");
        let dotted = Name::parse_mailbox("first.last@example.net").unwrap();
        assert_eq!(dotted.wire(), b"\x0afirst.last\x07example\x03net\x00");
        assert_eq!(dotted.to_string(), "first\\.last.example.net");
        let dns_form = Name::parse_mailbox("hostmaster.example.com").unwrap();
        assert_eq!(dns_form.wire(), b"\x0ahostmaster\x07example\x03com\x00");
        assert!(Name::parse_mailbox("").is_err());
        assert!(Name::parse_mailbox("@example.com").is_err());
        assert!(Name::parse_mailbox("nobody").is_err());
        assert!(Name::parse_mailbox("a b@example.com").is_err());
    }

    #[test]
    fn within() {
        let apex = Name::parse_host("www.example.com").unwrap();
        assert!(Name::parse_host("a.www.example.com").unwrap().is_within(&apex));
        assert!(apex.is_within(&apex));
        assert!(!Name::parse_host("xwww.example.com").unwrap().is_within(&apex));
        assert!(!Name::parse_host("example.com").unwrap().is_within(&apex));
    }
}
