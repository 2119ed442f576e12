//! The DNS engine: plain Rust with no nginx symbols, so that it can be unit
//! tested, fuzzed and benchmarked on its own.
//!
//! `config` validates what the directives say, `zone` builds answer templates
//! from it once, and `Zone::respond` answers a query by copying and patching
//! a template into a caller-provided buffer (no allocation per query).
//! `dnssec` signs those templates at configuration time, with keys that
//! `keyfile` reads from the files standard tools write.

pub mod addrset;
pub mod config;
pub mod cookie;
pub mod dnssec;
pub mod framing;
pub mod keyfile;
pub mod name;
pub mod query;
pub mod rr;
pub mod tsig;
pub mod update;
pub mod wire;
pub mod zone;

pub use config::{Addresses, ConfigError, ZoneConfig};
pub use dnssec::{DnssecError, PublicKey, SignedZone, SigningKey, SigningSettings, ZoneKeys};
pub use keyfile::KeyError;
pub use name::Name;
pub use zone::{Answered, QueryContext, Transport, Zone};

#[cfg(test)]
mod tests;
