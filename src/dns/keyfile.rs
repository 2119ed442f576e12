//! DNSSEC keys from the files that `dnssec-keygen` (BIND) and `ldns-keygen`
//! write: `K<name>+<alg>+<tag>.key`, one DNSKEY record in presentation
//! format, and `K<name>+<alg>+<tag>.private`, the "Private-key-format:
//! v1.x" text whose `PrivateKey:` line holds the key in base64.

use super::dnssec::{dnskey_flag, Algorithm, PublicKey, SigningKey};
use super::name::Name;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("cannot read \"{file}\": {reason}")]
    Unreadable { file: String, reason: String },
    #[error("\"{file}\", line {line}: {reason}")]
    Malformed { file: String, line: usize, reason: String },
    #[error("\"{file}\": DNSSEC algorithm {algorithm} is not supported (13, ECDSAP256SHA256, and 15, ED25519, are)")]
    UnsupportedAlgorithm { file: String, algorithm: u8 },
    #[error("\"{private}\" does not hold the private key of \"{public}\": {reason}")]
    Mismatch {
        public: String,
        private: String,
        reason: String,
    },
    #[error("\"{file}\" holds a key for \"{owner}\", not for the zone \"{apex}\"")]
    WrongOwner { file: String, owner: String, apex: String },
    #[error("\"{file}\": DNSKEY flags {flags} {reason}")]
    Flags {
        file: String,
        flags: u16,
        reason: &'static str,
    },
}

/// Reads a signing key for the zone `apex`. `prefix` names the pair of
/// files, as `K<name>+<alg>+<tag>` or either file's full name.
pub fn load_signing_key(prefix: &Path, apex: &Name) -> Result<SigningKey, KeyError> {
    let (key_path, private_path) = key_file_names(prefix);
    let public = load_public_key(&key_path, apex)?;
    let private_name = private_path.display().to_string();
    let (algorithm, private) = parse_private_key(&read(&private_path)?, &private_name)?;
    let mismatch = |reason: String| KeyError::Mismatch {
        public: key_path.display().to_string(),
        private: private_name.clone(),
        reason,
    };
    if algorithm != public.algorithm() {
        return Err(mismatch(format!(
            "algorithm {} in one, {} in the other",
            algorithm.number(),
            public.algorithm().number()
        )));
    }
    SigningKey::new(public, &private).ok_or_else(|| mismatch("the keys are not two halves of one key pair".into()))
}

/// Reads another signer's public key for the zone `apex` (RFC 8901 model
/// 2), to publish in the DNSKEY RRset: a `.key` file, or its prefix.
pub fn load_public_key(path: &Path, apex: &Name) -> Result<PublicKey, KeyError> {
    let (key_path, _) = key_file_names(path);
    let file = key_path.display().to_string();
    let key = parse_public_key(&read(&key_path)?, &file)?;
    if key.owner() != apex {
        return Err(KeyError::WrongOwner {
            file,
            owner: key.owner().to_string(),
            apex: apex.to_string(),
        });
    }
    if key.flags() & dnskey_flag::ZONE == 0 {
        return Err(KeyError::Flags {
            file,
            flags: key.flags(),
            reason: "lack the zone key bit (256)",
        });
    }
    if key.flags() & dnskey_flag::REVOKE != 0 {
        return Err(KeyError::Flags {
            file,
            flags: key.flags(),
            reason: "mark the key revoked",
        });
    }
    Ok(key)
}

/// The `.key` and `.private` files that `path` names.
fn key_file_names(path: &Path) -> (PathBuf, PathBuf) {
    let text = path.as_os_str().to_string_lossy();
    let prefix = text
        .strip_suffix(".key")
        .or_else(|| text.strip_suffix(".private"))
        .unwrap_or(&text);
    let with = |ending: &str| {
        let mut name = OsString::from(prefix);
        name.push(ending);
        PathBuf::from(name)
    };
    (with(".key"), with(".private"))
}

fn read(path: &Path) -> Result<String, KeyError> {
    std::fs::read_to_string(path).map_err(|e| KeyError::Unreadable {
        file: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Parses the text of a `.key` file: one DNSKEY record, `owner [TTL] [IN]
/// DNSKEY flags 3 algorithm base64...`, with `;` comments and, as in zone
/// files, parentheses around lines that belong together. `file` names it
/// in errors.
pub fn parse_public_key(text: &str, file: &str) -> Result<PublicKey, KeyError> {
    let malformed = |line: usize, reason: String| KeyError::Malformed {
        file: file.to_string(),
        line,
        reason,
    };
    let mut tokens: Vec<(usize, &str)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split(';').next().unwrap_or("");
        tokens.extend(
            content
                .split(|c: char| c.is_whitespace() || c == '(' || c == ')')
                .filter(|t| !t.is_empty())
                .map(|t| (i + 1, t)),
        );
    }
    let is_type = |t: &str| t.eq_ignore_ascii_case("DNSKEY");
    let Some(at) = tokens.iter().position(|(_, t)| is_type(t)) else {
        return Err(malformed(1, "no DNSKEY record".into()));
    };
    let line = tokens[at].0;
    if tokens[at + 1..].iter().any(|(_, t)| is_type(t)) {
        return Err(malformed(line, "more than one DNSKEY record".into()));
    }
    let Some(&(_, owner)) = tokens.first().filter(|_| at > 0) else {
        return Err(malformed(line, "the record has no owner name".into()));
    };
    for &(line, token) in &tokens[1..at] {
        let ttl = token.bytes().all(|b| b.is_ascii_digit());
        if !ttl && !token.eq_ignore_ascii_case("IN") {
            return Err(malformed(line, format!("unexpected \"{token}\" before DNSKEY")));
        }
    }
    let owner = Name::parse_host(owner).map_err(|e| malformed(line, format!("owner \"{owner}\": {e}")))?;
    let fields = &tokens[at + 1..];
    if fields.len() < 4 {
        return Err(malformed(
            line,
            "a DNSKEY needs flags, protocol, algorithm and key".into(),
        ));
    }
    let number = |i: usize, what: &str| -> Result<u16, KeyError> {
        let (line, token) = fields[i];
        token
            .parse()
            .map_err(|_| malformed(line, format!("{what} \"{token}\" is not a number")))
    };
    let flags = number(0, "flags")?;
    if number(1, "protocol")? != 3 {
        return Err(malformed(line, "the DNSKEY protocol must be 3".into()));
    }
    let algorithm = parse_algorithm(fields[2].1, file, line)?;
    let encoded: String = fields[3..].iter().map(|(_, t)| *t).collect();
    let key = BASE64
        .decode(encoded.as_bytes())
        .map_err(|_| malformed(line, "the key is not valid base64".into()))?;
    let len = key.len();
    PublicKey::new(owner, flags, algorithm, key).ok_or_else(|| {
        malformed(
            line,
            format!(
                "the key has {len} octets; {} keys have {}",
                algorithm.mnemonic(),
                algorithm.public_key_len()
            ),
        )
    })
}

/// Parses the text of a `.private` file (Private-key-format v1.2 and v1.3
/// alike): the algorithm and the private key. `file` names it in errors.
pub fn parse_private_key(text: &str, file: &str) -> Result<(Algorithm, Vec<u8>), KeyError> {
    let malformed = |line: usize, reason: String| KeyError::Malformed {
        file: file.to_string(),
        line,
        reason,
    };
    let mut format_seen = false;
    let mut algorithm = None;
    let mut private = None;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            return Err(malformed(line_no, "expected \"Field: value\"".into()));
        };
        let value = value.trim();
        match field.trim() {
            "Private-key-format" => {
                if !value.starts_with("v1.") {
                    return Err(malformed(line_no, format!("unsupported format \"{value}\" (v1.x is)")));
                }
                format_seen = true;
            }
            "Algorithm" => {
                let number = value.split_whitespace().next().unwrap_or("");
                algorithm = Some(parse_algorithm(number, file, line_no)?);
            }
            "PrivateKey" => {
                let key = BASE64
                    .decode(value.replace(' ', "").as_bytes())
                    .map_err(|_| malformed(line_no, "the private key is not valid base64".into()))?;
                private = Some((line_no, key));
            }
            // Created:, Publish:, Activate: and the like.
            _ => {}
        }
    }
    if !format_seen {
        return Err(malformed(
            1,
            "not a private key file (no \"Private-key-format\" line)".into(),
        ));
    }
    let Some(algorithm) = algorithm else {
        return Err(malformed(1, "no \"Algorithm\" line".into()));
    };
    let Some((line, key)) = private else {
        return Err(malformed(1, "no \"PrivateKey\" line".into()));
    };
    if key.len() != algorithm.private_key_len() {
        return Err(malformed(
            line,
            format!(
                "the private key has {} octets; {} keys have {}",
                key.len(),
                algorithm.mnemonic(),
                algorithm.private_key_len()
            ),
        ));
    }
    Ok((algorithm, key))
}

/// An algorithm number, or the mnemonic of a supported one.
fn parse_algorithm(token: &str, file: &str, line: usize) -> Result<Algorithm, KeyError> {
    let number = match token.to_ascii_uppercase().as_str() {
        "ECDSAP256SHA256" => 13,
        "ED25519" => 15,
        _ => token.parse::<u8>().map_err(|_| KeyError::Malformed {
            file: file.to_string(),
            line,
            reason: format!("unknown algorithm \"{token}\""),
        })?,
    };
    Algorithm::from_number(number).ok_or(KeyError::UnsupportedAlgorithm {
        file: file.to_string(),
        algorithm: number,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn testdata(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/dns/testdata")
            .join(name)
    }

    fn apex() -> Name {
        Name::parse_host("www.example.com").unwrap()
    }

    /// Key tags and DS records as `dnssec-dsfromkey -2` (and `ldns-keygen`'s
    /// .ds file) computed them for the committed test keys.
    #[test]
    fn reads_keys_written_by_dnssec_keygen_and_ldns_keygen() {
        let cases = [
            (
                "Kwww.example.com.+013+19397",
                Algorithm::EcdsaP256Sha256,
                257,
                "E4EFB17D9AB20645E02ADD0EF47364C54DF45DC381FD97F3B531547E18BA9C18",
            ),
            (
                "Kwww.example.com.+015+54010",
                Algorithm::Ed25519,
                257,
                "CF345AE93CCE0EC742E0EDC4F52B9C8475877887FE99DBD369E79951CDE526EC",
            ),
            (
                "Kwww.example.com.+013+49098",
                Algorithm::EcdsaP256Sha256,
                257,
                "E358BEF674230FEFA9014DDA98B860E4DD2573E2DF53CFBB2DC134759C6108C4",
            ),
        ];
        for (prefix, algorithm, flags, digest) in cases {
            let tag: u16 = prefix.rsplit('+').next().unwrap().parse().unwrap();
            for path in [prefix.to_string(), format!("{prefix}.key"), format!("{prefix}.private")] {
                let key = load_signing_key(&testdata(&path), &apex()).unwrap();
                let public = key.public();
                assert_eq!(public.key_tag(), tag, "{path}");
                assert_eq!(public.algorithm(), algorithm);
                assert_eq!(public.flags(), flags);
                assert_eq!(
                    public.ds_record(),
                    format!("www.example.com. IN DS {tag} {} 2 {digest}", algorithm.number())
                );
            }
        }
        let other = load_public_key(&testdata("Kwww.example.com.+013+64987.key"), &apex()).unwrap();
        assert_eq!((other.key_tag(), other.flags()), (64987, 256));
        assert_eq!(
            other.dnskey_record(),
            "www.example.com. IN DNSKEY 256 3 13 Lf7KbchsIa2DHmhm3oERLq82/P46lYSLsBnR/loEPPD7BrzPG4m/W7EMh0W7t6IcU0qKMf6BYxinjHAgiE6vvA=="
        );
    }

    #[test]
    fn public_key_text_forms() {
        let key = "nGQoUBG2IUO2LGurjwA+EqNGiu8TV4kc/X1EO5nKrxe24TlR3mw2aY/b0EvkKzJyGiZpmoJpfMvdWUicY+qDNA==";
        let forms = [
            format!("www.example.com. IN DNSKEY 257 3 13 {key}"),
            format!("; comment\nwww.example.com. 3600 IN DNSKEY 257 3 13 {key} ;{{id = 19397 (ksk)}}\n"),
            format!(
                "WWW.Example.COM 300 dnskey 257 3 ECDSAP256SHA256 (\n {} \n {} )",
                &key[..40],
                &key[40..]
            ),
        ];
        for text in &forms {
            let public = parse_public_key(text, "test.key").unwrap();
            assert_eq!(public.key_tag(), 19397, "{text}");
            assert_eq!(public.owner(), &apex());
        }
    }

    #[test]
    fn rejects_bad_key_files() {
        let malformed = |text: &str| matches!(parse_public_key(text, "k.key"), Err(KeyError::Malformed { .. }));
        assert!(malformed(""));
        assert!(malformed("www.example.com. IN A 192.0.2.1"));
        assert!(malformed("DNSKEY 257 3 13 AAAA"));
        assert!(malformed("www.example.com. IN DNSKEY 257 3 13"));
        assert!(malformed("www.example.com. IN DNSKEY 257 3 13 not*base64"));
        assert!(
            malformed("www.example.com. IN DNSKEY 257 3 13 AAAA"),
            "wrong key length"
        );
        assert!(malformed("www.example.com. IN DNSKEY 257 2 15 AAAA"), "protocol 2");
        assert!(malformed("www.example.com. CH DNSKEY 257 3 15 AAAA"));
        assert!(malformed(
            "a. IN DNSKEY 257 3 15 ULnF9GvojA/qdPQkpFsktslqKG2cEmVr0idnt2xzfvA=\nb. IN DNSKEY 257 3 15 ULnF9GvojA/qdPQkpFsktslqKG2cEmVr0idnt2xzfvA="
        ));
        assert_eq!(
            parse_public_key("www.example.com. IN DNSKEY 257 3 8 AwEAAc==", "rsa.key"),
            Err(KeyError::UnsupportedAlgorithm {
                file: "rsa.key".into(),
                algorithm: 8
            })
        );

        let private = |text: &str| parse_private_key(text, "k.private");
        let good = "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\nPrivateKey: HTmWAgvpytP+2V0ZJaR1YlA+yjeEGnr2DSn0+4gN2fM=\n";
        assert_eq!(private(good).unwrap().0, Algorithm::Ed25519);
        let rsa = "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nModulus: AwEAAc==\n";
        assert!(matches!(
            private(rsa),
            Err(KeyError::UnsupportedAlgorithm { algorithm: 8, .. })
        ));
        for bad in [
            "",
            "Algorithm: 15 (ED25519)\nPrivateKey: HTmWAgvpytP+2V0ZJaR1YlA+yjeEGnr2DSn0+4gN2fM=",
            "Private-key-format: v2.0\nAlgorithm: 15\nPrivateKey: HTmWAgvpytP+2V0ZJaR1YlA+yjeEGnr2DSn0+4gN2fM=",
            "Private-key-format: v1.3\nPrivateKey: HTmWAgvpytP+2V0ZJaR1YlA+yjeEGnr2DSn0+4gN2fM=",
            "Private-key-format: v1.3\nAlgorithm: 15",
            "Private-key-format: v1.3\nAlgorithm: 15\nPrivateKey: AAAA",
            "Private-key-format: v1.3\nAlgorithm: 15\nPrivateKey: ***",
            "Private-key-format: v1.3\ngarbage",
        ] {
            assert!(matches!(private(bad), Err(KeyError::Malformed { .. })), "{bad:?}");
        }
    }

    #[test]
    fn rejects_mismatched_unreadable_and_foreign_keys() {
        let dir = std::env::temp_dir().join(format!("dns-keyfile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = |from: &str, to: &str| {
            std::fs::copy(testdata(from), dir.join(to)).unwrap();
        };
        // The private half of one key with the public half of another.
        copy("Kwww.example.com.+013+64987.key", "Kmixed.key");
        copy("Kwww.example.com.+013+19397.private", "Kmixed.private");
        assert!(matches!(
            load_signing_key(&dir.join("Kmixed"), &apex()),
            Err(KeyError::Mismatch { .. })
        ));
        // Algorithms differ.
        copy("Kwww.example.com.+015+54010.private", "Kmixed.private");
        let err = load_signing_key(&dir.join("Kmixed"), &apex()).unwrap_err();
        assert!(
            err.to_string().contains("algorithm 15 in one, 13 in the other"),
            "{err}"
        );
        // No .private file.
        std::fs::remove_file(dir.join("Kmixed.private")).unwrap();
        let err = load_signing_key(&dir.join("Kmixed"), &apex()).unwrap_err();
        assert!(
            matches!(&err, KeyError::Unreadable { file, .. } if file.ends_with("Kmixed.private")),
            "{err}"
        );
        // A key of another zone.
        let other_zone = Name::parse_host("api.example.com").unwrap();
        let err = load_signing_key(&testdata("Kwww.example.com.+013+19397"), &other_zone).unwrap_err();
        assert!(matches!(err, KeyError::WrongOwner { .. }));
        assert!(
            err.to_string().contains("not for the zone \"api.example.com\""),
            "{err}"
        );
        // Not a zone key, revoked.
        for (flags, reason) in [(1, "zone key bit"), (385, "revoked")] {
            std::fs::write(
                dir.join("Kflags.key"),
                format!("www.example.com. IN DNSKEY {flags} 3 15 ULnF9GvojA/qdPQkpFsktslqKG2cEmVr0idnt2xzfvA="),
            )
            .unwrap();
            let err = load_public_key(&dir.join("Kflags.key"), &apex()).unwrap_err();
            assert!(
                matches!(err, KeyError::Flags { .. }) && err.to_string().contains(reason),
                "{err}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
