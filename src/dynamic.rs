//! Addresses that change while nginx runs: what a service gives out when
//! an address file or an RFC 2136 UPDATE says so, and the UPDATE/TSIG
//! handling on the query path. Plain Rust with no nginx symbols.
//!
//! ```text
//!  sources                      shared slot (all workers)        each worker
//!  UPDATE (any worker) ──┐      AddressSlot: set, origin,        tick: new version?
//!  address file (leader) ┼──►   version (seqlock; writer   ──►   Zone::with_addresses
//!  state file (at load) ─┘      lock for the writers)            (re-signs a signed zone)
//!           └── every change is saved to the state file first
//! ```
//!
//! Which set applies: at start and reload, the state file (the last set
//! given out, kept across restarts), unless the address file changed since
//! it was last applied; while running, the most recent change: an accepted
//! UPDATE, or a change of the address file's content. With neither, the
//! configured `dns_address` (auto, or a list).
//!
//! UPDATE messages, and queries signed with an update key (nsupdate sends
//! a signed SOA query before its update), are answered here, before rate
//! limiting and the shedding policy: they are management traffic that must
//! get through while a host is drained or shedding, they are not answers
//! resolvers choose hosts by, and an unsigned one costs one small REFUSED.

use crate::dns::addrset::{self, AddressMap, AddressSet, FileReading, Origin, SavedState, MAX_ADDRESSES, MAX_FILE_LEN};
use crate::dns::config::{parse_host, parse_ttl, split_parameter};
use crate::dns::tsig::{self, Checked, Key, Reply};
use crate::dns::update::{self, ZoneView};
use crate::dns::wire::{rcode, rtype};
use crate::dns::{Addresses, Name, QueryContext, Zone};
use crate::health::address_slot::{AddressSlot, Published, UpdateResult};
use std::cell::Cell;
use std::net::{IpAddr, SocketAddr};

/// Room a TSIG record takes at most (a 255-octet key name, HMAC-SHA512,
/// BADTIME's other data).
pub const MAX_TSIG_RECORD: usize = 255 + 10 + 13 + 6 + 2 + 2 + tsig::MAX_MAC + 2 + 2 + 2 + 6;
/// How much larger than its configured zone's a response may become: more
/// addresses, and a TSIG record.
pub const HEADROOM: usize = MAX_ADDRESSES * (12 + 16) + MAX_TSIG_RECORD;
/// How long an UPDATE waits for another writer of the set (a file write):
/// rounds of yielding the CPU.
const WRITER_TRIES: u32 = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Notice,
    Warn,
    Error,
}

/// Where log lines go (the glue passes nginx's log; tests collect them).
pub type LogFn = fn(Level, std::fmt::Arguments<'_>);

/// `dns_glue_update`: the parent zone's primary and what to keep there.
#[derive(Debug)]
pub struct ParentSettings {
    pub server: SocketAddr,
    /// The parent zone and the name server's name, in lower-case wire form.
    pub zone: Vec<u8>,
    pub name: Vec<u8>,
    pub zone_text: String,
    pub name_text: String,
    /// TTL of the glue records.
    pub ttl: u32,
    pub key: Key,
}

/// What the directives of this feature staged.
#[derive(Default)]
pub struct Staged {
    pub file: Option<String>,
    pub map: Option<AddressMap>,
    pub keys: Option<(String, Vec<Key>)>,
    pub state: Option<String>,
    pub parent: Option<ParentSettings>,
}

impl Staged {
    pub fn any(&self) -> bool {
        self.file.is_some()
            || self.map.is_some()
            || self.keys.is_some()
            || self.state.is_some()
            || self.parent.is_some()
    }
}

/// A service's dynamic addresses, as configured; `built` is the one field
/// that changes, per worker.
pub struct Dynamic {
    /// The service name, for logs and the state file.
    pub service: String,
    /// `dns_address`: what applies while nothing dynamic is known.
    pub configured: Addresses,
    pub map: AddressMap,
    pub file: Option<String>,
    /// Keys that may sign UPDATEs (none: UPDATE is not implemented here).
    pub keys: Vec<Key>,
    /// Where the set is saved (when there is an address file or keys).
    pub state_path: Option<String>,
    pub parent: Option<ParentSettings>,
    pub log: Option<LogFn>,
    /// The version of the shared set this worker's templates were built
    /// from (0: the configuration's).
    pub built: Cell<u64>,
}

/// An UPDATE or signed query, answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handled {
    /// Length of the response in the output buffer.
    pub len: usize,
    pub rcode: u16,
    pub qtype: Option<u16>,
    /// An UPDATE (else a signed query).
    pub update: bool,
}

impl Dynamic {
    pub fn new(service: String, configured: Addresses, staged: Staged, state_path: Option<String>) -> Dynamic {
        Dynamic {
            service,
            configured,
            map: staged.map.unwrap_or_default(),
            file: staged.file,
            keys: staged.keys.map(|(_, k)| k).unwrap_or_default(),
            state_path,
            parent: staged.parent,
            log: None,
            built: Cell::new(0),
        }
    }

    /// Whether two servers of one service agree on what changes its
    /// addresses: they share one set (one slot), so they must.
    pub fn same_sources(a: Option<&Dynamic>, b: Option<&Dynamic>) -> bool {
        fn sources(d: Option<&Dynamic>) -> Option<impl PartialEq + '_> {
            d.filter(|d| d.has_sources() || d.parent.is_some()).map(|d| {
                let keys: Vec<(&str, tsig::Algorithm)> = d.keys.iter().map(|k| (k.name(), k.algorithm())).collect();
                let parent = d.parent.as_ref().map(|p| (p.server, p.name.clone()));
                (d.file.clone(), d.state_path.clone(), keys, parent)
            })
        }
        sources(a) == sources(b)
    }

    /// Whether anything can change the set (and it is saved).
    pub fn has_sources(&self) -> bool {
        self.file.is_some() || !self.keys.is_empty()
    }

    fn log(&self, level: Level, args: std::fmt::Arguments<'_>) {
        if let Some(log) = self.log {
            log(level, args);
        }
    }

    /// What the answers are made from, given the published state.
    pub fn addresses_for(&self, state: Option<&SavedState>) -> Addresses {
        match state {
            Some(s) if s.origin != Origin::Config => Addresses::List(s.addresses.as_slice().to_vec()),
            _ => self.configured.clone(),
        }
    }

    /// The query context with the local address mapped to its public
    /// address (`dns_address_map`).
    pub fn map_context<'a>(&self, qctx: &QueryContext<'a>) -> QueryContext<'a> {
        if self.map.is_empty() {
            return *qctx;
        }
        QueryContext {
            local_addr: self.map.apply(qctx.local_addr),
            ..*qctx
        }
    }

    // ---- Files ----------------------------------------------------------

    /// Reads the address file as it is now.
    pub fn read_address_file(&self) -> Option<FileReading> {
        let path = self.file.as_deref()?;
        Some(match read_small_file(path) {
            Ok(bytes) => match addrset::parse_address_file(&bytes) {
                Ok(set) => FileReading::Good(set),
                Err(e) => FileReading::Bad(e.to_string()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileReading::Missing,
            Err(e) => FileReading::Bad(e.to_string()),
        })
    }

    /// Reads the state file: `Ok(None)` when there is none.
    pub fn read_state(&self) -> Result<Option<SavedState>, String> {
        let Some(path) = self.state_path.as_deref() else {
            return Ok(None);
        };
        match read_small_file(path) {
            Ok(bytes) => SavedState::parse(&bytes)
                .map(Some)
                .map_err(|e| format!("state file \"{path}\": {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("state file \"{path}\": {e}")),
        }
    }

    /// The set to give out when a configuration is loaded (see the module
    /// documentation), and any warning about the files.
    pub fn initial(&self, now: u64) -> (Option<SavedState>, Vec<String>) {
        if !self.has_sources() {
            return (None, Vec::new());
        }
        let mut warnings = Vec::new();
        let saved = self.read_state().unwrap_or_else(|e| {
            warnings.push(format!("{e}; ignored"));
            None
        });
        let file = self.read_address_file().unwrap_or(FileReading::Missing);
        if let (FileReading::Bad(e), Some(path)) = (&file, &self.file) {
            warnings.push(format!("address file \"{path}\": {e}"));
        }
        (addrset::initial_state(saved.as_ref(), &file, now), warnings)
    }

    /// Writes the state file: a temporary file, flushed to disk, renamed
    /// over the old one, so a crash leaves the old or the new state whole.
    pub fn save(&self, state: &SavedState) -> std::io::Result<()> {
        use std::io::Write;
        let Some(path) = self.state_path.as_deref() else {
            return Ok(());
        };
        let tmp = format!("{path}.{}.tmp", std::process::id());
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(state.encode(&self.service).as_bytes())?;
            f.sync_data()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// At configuration load (in the master, under the writer lock):
    /// publishes what the files say unless the slot already holds it.
    pub fn publish_initial(&self, slot: &AddressSlot, now: u64) -> Option<u64> {
        let writer = slot.write(std::process::id(), WRITER_TRIES)?;
        let (initial, _) = self.initial(now);
        let published = writer.read();
        let state = initial.unwrap_or(SavedState {
            origin: Origin::Config,
            changed: now,
            addresses: AddressSet::new(),
            file: None,
        });
        match published {
            Some(p) if same_state(&p.state, &state) => None,
            // Nothing dynamic was ever published and nothing is: leave the slot empty.
            None if state.origin == Origin::Config => None,
            _ => Some(writer.publish(&state, None)),
        }
    }

    // ---- The query path ---------------------------------------------------

    /// Room the responses handled here may need beyond the zone's.
    pub fn headroom(&self) -> usize {
        HEADROOM
    }

    /// Answers `msg` if it is an UPDATE or a query signed with a TSIG
    /// record, when this service accepts updates; `None` sends it down
    /// the ordinary path. `slot` is the service's shared address slot.
    pub fn handle(
        &self,
        zone: &Zone,
        slot: Option<&AddressSlot>,
        msg: &[u8],
        qctx: &QueryContext<'_>,
        out: &mut [u8],
    ) -> Option<Handled> {
        if self.keys.is_empty() {
            return None;
        }
        if update::is_update(msg) {
            return Some(self.update(zone, slot, msg, qctx, out));
        }
        // A query with a TSIG record (it has at least one additional record).
        if update::opcode(msg) != Some(0) || msg[10..12] == [0, 0] || msg[2] & 0x80 != 0 {
            return None;
        }
        let now = u64::from(qctx.now);
        match tsig::check(msg, &self.keys, now) {
            Checked::Unsigned => None,
            Checked::Malformed => Some(self.plain(msg, rcode::FORMERR, out, false)),
            Checked::Signed(reply) if reply.error != 0 => Some(self.signed(msg, tsig::NOTAUTH, &reply, out, false)),
            Checked::Signed(reply) => {
                let room = out.len().checked_sub(reply.record_len())?;
                let answered = zone.respond(msg, qctx, &mut out[..room])?;
                let len = reply.append(out, answered.len)?;
                if let Some(slot) = slot {
                    slot.signed_queries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Some(Handled {
                    len,
                    rcode: answered.rcode,
                    qtype: answered.qtype,
                    update: false,
                })
            }
        }
    }

    /// An unsigned response with `code`.
    fn plain(&self, msg: &[u8], code: u16, out: &mut [u8], is_update: bool) -> Handled {
        let len = update::write_response(msg, code, out).unwrap_or(0);
        Handled {
            len,
            rcode: code,
            qtype: Some(rtype::SOA).filter(|_| is_update),
            update: is_update,
        }
    }

    /// A response with `code` and the TSIG record `reply` makes.
    fn signed(&self, msg: &[u8], code: u16, reply: &Reply<'_>, out: &mut [u8], is_update: bool) -> Handled {
        let room = out.len().saturating_sub(reply.record_len());
        let len = update::write_response(msg, code, &mut out[..room])
            .and_then(|len| reply.append(out, len))
            .unwrap_or(0);
        Handled {
            len,
            rcode: code,
            qtype: Some(rtype::SOA).filter(|_| is_update),
            update: is_update,
        }
    }

    /// The addresses an UPDATE's prerequisites see and its changes start
    /// from: the published set, else the configured list, else (`auto`)
    /// the address the UPDATE arrived on, as a query there would get.
    fn current(&self, published: Option<&Published>, local: Option<IpAddr>) -> Result<AddressSet, u16> {
        match published.filter(|p| p.state.origin != Origin::Config) {
            Some(p) => Ok(p.state.addresses),
            None => match &self.configured {
                Addresses::List(list) => AddressSet::from_slice(list).map_err(|_| rcode::REFUSED),
                Addresses::Auto => Ok(local
                    .map(|a| AddressSet::from_slice(&[addrset::canonical(a)]).unwrap_or_default())
                    .unwrap_or_default()),
            },
        }
    }

    fn update(
        &self,
        zone: &Zone,
        slot: Option<&AddressSlot>,
        msg: &[u8],
        qctx: &QueryContext<'_>,
        out: &mut [u8],
    ) -> Handled {
        let now = u64::from(qctx.now);
        let client = qctx.client_addr;
        let count = |r: UpdateResult| {
            if let Some(slot) = slot {
                slot.count(r);
            }
        };
        let reply = match tsig::check(msg, &self.keys, now) {
            Checked::Malformed => {
                count(UpdateResult::Formerr);
                self.rejected(slot, now, client, format_args!("a malformed TSIG record"));
                return self.plain(msg, rcode::FORMERR, out, true);
            }
            Checked::Unsigned => {
                count(UpdateResult::Unsigned);
                self.rejected(slot, now, client, format_args!("not signed (REFUSED)"));
                return self.plain(msg, rcode::REFUSED, out, true);
            }
            Checked::Signed(reply) if reply.error != 0 => {
                count(match reply.error {
                    tsig::error::BADKEY => UpdateResult::BadKey,
                    tsig::error::BADTIME => UpdateResult::BadTime,
                    _ => UpdateResult::BadSig,
                });
                let error = tsig::error::name(reply.error);
                self.rejected(
                    slot,
                    now,
                    client,
                    format_args!("key {:?}: TSIG error {error} (NOTAUTH)", reply.key_name()),
                );
                return self.signed(msg, tsig::NOTAUTH, &reply, out, true);
            }
            Checked::Signed(reply) => reply,
        };
        let key = reply.signer().map_or("", |k| k.name());
        let respond = |code: u16, out: &mut [u8]| self.signed(msg, code, &reply, out, true);
        let parsed = match update::parse(msg) {
            Ok(u) => u,
            Err(code) => {
                count(UpdateResult::Formerr);
                return respond(code, out);
            }
        };
        let apex = zone.apex().wire();
        if let Err(code) = parsed.check_zone(apex) {
            count(if code == rcode::FORMERR {
                UpdateResult::Formerr
            } else {
                UpdateResult::OtherZone
            });
            let name = update::rcode_name(code);
            self.rejected(slot, now, client, format_args!("zone {:?}: {name}", parsed.zone));
            return respond(code, out);
        }
        let Some(slot) = slot else {
            return respond(rcode::SERVFAIL, out);
        };
        let Some(writer) = slot.write(std::process::id(), WRITER_TRIES) else {
            count(UpdateResult::Failed);
            self.log(
                Level::Warn,
                format_args!(
                    "dns_service {}: UPDATE from {} not applied: the address set is busy (SERVFAIL)",
                    self.service,
                    show(client)
                ),
            );
            return respond(rcode::SERVFAIL, out);
        };
        let published = writer.read();
        let current = match self.current(published.as_ref(), qctx.local_addr) {
            Ok(set) => set,
            Err(code) => {
                count(UpdateResult::Refused);
                return respond(code, out);
            }
        };
        let config = zone.config();
        let extra: &[u16] = if zone.signed().is_some() {
            &[rtype::DNSKEY, rtype::RRSIG, rtype::NSEC, rtype::CDS, rtype::CDNSKEY]
        } else {
            &[]
        };
        let view = ZoneView {
            apex,
            nameservers: &config.nameservers,
            wildcard: config.wildcard,
            extra_types: extra,
            addresses: current,
        };
        let new = match parsed.apply(&view) {
            Ok(set) => set,
            Err(code) => {
                count(match code {
                    update::code::YXDOMAIN | update::code::YXRRSET | update::code::NXRRSET | rcode::NXDOMAIN => {
                        UpdateResult::Prerequisite
                    }
                    update::code::NOTZONE => UpdateResult::OtherZone,
                    rcode::FORMERR => UpdateResult::Formerr,
                    _ => UpdateResult::Refused,
                });
                self.log(
                    Level::Notice,
                    format_args!(
                        "dns_service {}: UPDATE from {} signed with key \"{key}\": {}, nothing changed",
                        self.service,
                        show(client),
                        update::rcode_name(code)
                    ),
                );
                return respond(code, out);
            }
        };
        // What is given out already (under `auto`: to the address the
        // UPDATE came to) is no change: `auto` and the configured list stay.
        if new == current {
            count(UpdateResult::Unchanged);
            return respond(rcode::NOERROR, out);
        }
        let state = SavedState {
            origin: Origin::Update,
            changed: now,
            addresses: new,
            file: published.and_then(|p| p.state.file),
        };
        if let Err(e) = self.save(&state) {
            count(UpdateResult::Failed);
            self.log(
                Level::Error,
                format_args!(
                    "dns_service {}: UPDATE from {} not applied: cannot write the state file \"{}\": {e} (SERVFAIL)",
                    self.service,
                    show(client),
                    self.state_path.as_deref().unwrap_or("")
                ),
            );
            return respond(rcode::SERVFAIL, out);
        }
        let version = writer.publish(&state, client);
        drop(writer);
        count(UpdateResult::Accepted);
        self.log(
            Level::Notice,
            format_args!(
                "dns_service {}: addresses now {new} (were {current}), by UPDATE from {} signed with key \"{key}\" (version {version})",
                self.service,
                show(client)
            ),
        );
        respond(rcode::NOERROR, out)
    }

    /// Logs a rejected UPDATE, at most one line a second per service: a
    /// flood of forged messages must not flood the log (the status counts
    /// them all).
    fn rejected(&self, slot: Option<&AddressSlot>, now: u64, client: Option<IpAddr>, why: std::fmt::Arguments<'_>) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(slot) = slot {
            let last = slot.rejection_logged.load(Relaxed);
            if last == now
                || slot
                    .rejection_logged
                    .compare_exchange(last, now, Relaxed, Relaxed)
                    .is_err()
            {
                return;
            }
        }
        self.log(
            Level::Notice,
            format_args!(
                "dns_service {}: UPDATE from {} rejected: {why}",
                self.service,
                show(client)
            ),
        );
    }
}

impl Dynamic {
    /// The addresses given out now and where they came from: a list, or
    /// `None` for `auto` (each query's local address).
    fn given_out(&self, published: Option<&Published>) -> (Origin, Option<Vec<IpAddr>>) {
        match published.filter(|p| p.state.origin != Origin::Config) {
            Some(p) => (p.state.origin, Some(p.state.addresses.as_slice().to_vec())),
            None => match &self.configured {
                Addresses::Auto => (Origin::Config, None),
                Addresses::List(list) => (Origin::Config, Some(list.clone())),
            },
        }
    }

    /// The `"addresses"` object of the JSON status.
    pub fn status_json(&self, slot: &AddressSlot) -> String {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let list = |addrs: &mut dyn Iterator<Item = IpAddr>| {
            let items: Vec<String> = addrs.map(|a| format!("\"{a}\"")).collect();
            format!("[{}]", items.join(","))
        };
        let published = slot.read();
        let (origin, current) = self.given_out(published.as_ref());
        let mut out = format!("{{\"origin\":\"{}\",", origin.name());
        match current {
            Some(addrs) => {
                let _ = write!(out, "\"current\":{},", list(&mut addrs.into_iter()));
            }
            None => out.push_str("\"current\":\"auto\","),
        }
        if let Some(p) = &published {
            let _ = write!(out, "\"version\":{},\"changed\":{},", p.version, p.state.changed);
            if let Some(by) = p.by.filter(|_| p.state.origin == Origin::Update) {
                let _ = write!(out, "\"updated_by\":\"{by}\",");
            }
        }
        if let Some(path) = &self.file {
            let last = published.and_then(|p| p.state.file);
            let _ = write!(out, "\"file\":{{\"path\":{},\"last_good\":", json_string(path));
            match last {
                Some(set) => out.push_str(&list(&mut set.iter())),
                None => out.push_str("null"),
            }
            out.push_str("},");
        }
        if !self.map.is_empty() {
            let pairs: Vec<String> = self
                .map
                .pairs()
                .iter()
                .map(|(l, p)| format!("\"{l}\":\"{p}\""))
                .collect();
            let _ = write!(out, "\"map\":{{{}}},", pairs.join(","));
        }
        if !self.keys.is_empty() {
            out.push_str("\"updates\":{");
            for (i, r) in UpdateResult::ALL.iter().enumerate() {
                let _ = write!(
                    out,
                    "{}\"{}\":{}",
                    if i > 0 { "," } else { "" },
                    r.name(),
                    slot.updates[*r as usize].load(Relaxed)
                );
            }
            let _ = write!(out, "}},\"signed_queries\":{},", slot.signed_queries.load(Relaxed));
        }
        if let Some(parent) = &self.parent {
            let push = &slot.push;
            let want = self.pushable(published.as_ref());
            let outcome = crate::health::address_slot::PushOutcome::from_code(push.last_outcome.load(Relaxed));
            let _ = write!(
                out,
                "\"parent\":{{\"server\":\"{}\",\"zone\":\"{}\",\"name\":\"{}\",\"in_step\":{},\"in_flight\":{},\"attempts\":{},\"failures\":{},\"tcp_pushes\":{},\"last_outcome\":{}}},",
                parent.server,
                parent.zone_text,
                parent.name_text,
                want.is_some_and(|s| push.is_done(s.digest())),
                push.in_flight(),
                push.attempts.load(Relaxed),
                push.failures.load(Relaxed),
                push.tcp_pushes.load(Relaxed),
                outcome.map_or("null".to_string(), |o| json_string(&o.to_string()))
            );
        }
        out.pop();
        out.push('}');
        out
    }

    /// Prometheus lines for this service's addresses and updates.
    pub fn prometheus(&self, slot: &AddressSlot) -> String {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let service = self.service.replace(['"', '\\'], "");
        let published = slot.read();
        let (origin, current) = self.given_out(published.as_ref());
        let mut out = String::new();
        let _ = writeln!(out, "# HELP dns_service_address Addresses given out, and where they came from.\n# TYPE dns_service_address gauge");
        match current {
            Some(addrs) => {
                for a in addrs {
                    let _ = writeln!(
                        out,
                        "dns_service_address{{service=\"{service}\",origin=\"{}\",address=\"{a}\"}} 1",
                        origin.name()
                    );
                }
            }
            None => {
                let _ = writeln!(
                    out,
                    "dns_service_address{{service=\"{service}\",origin=\"config\",address=\"auto\"}} 1"
                );
            }
        }
        if !self.keys.is_empty() {
            let _ = writeln!(out, "# HELP dns_service_updates_total UPDATE messages, by result.\n# TYPE dns_service_updates_total counter");
            for r in UpdateResult::ALL {
                let _ = writeln!(
                    out,
                    "dns_service_updates_total{{service=\"{service}\",result=\"{}\"}} {}",
                    r.name(),
                    slot.updates[r as usize].load(Relaxed)
                );
            }
        }
        if self.parent.is_some() {
            let push = &slot.push;
            let _ = writeln!(out, "# HELP dns_service_glue_pushes_total UPDATEs sent to the parent zone, and failures.\n# TYPE dns_service_glue_pushes_total counter");
            let _ = writeln!(
                out,
                "dns_service_glue_pushes_total{{service=\"{service}\",result=\"sent\"}} {}",
                push.attempts.load(Relaxed)
            );
            let _ = writeln!(
                out,
                "dns_service_glue_pushes_total{{service=\"{service}\",result=\"failed\"}} {}",
                push.failures.load(Relaxed)
            );
        }
        out
    }

    /// The set to keep in the parent zone's glue: the addresses given out,
    /// when they are known (not `auto`) and not empty.
    pub fn pushable(&self, published: Option<&Published>) -> Option<AddressSet> {
        let (_, current) = self.given_out(published);
        AddressSet::from_slice(&current?).ok().filter(|s| !s.is_empty())
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `dns_glue_update` as written.
#[derive(Debug, PartialEq, Eq)]
pub struct GlueArgs {
    pub server: SocketAddr,
    pub name: Name,
    pub zone: Name,
    pub key: String,
    pub ttl: u32,
}

/// Default TTL of the glue records pushed to the parent: short, so that
/// resolvers follow a move soon (see the README on TTLs).
pub const DEFAULT_GLUE_TTL: u32 = 300;

/// Parses `server=address[:port] name=host key=file [zone=name] [ttl=time]`.
pub fn parse_glue_update(args: &[&str]) -> Result<GlueArgs, String> {
    let (mut server, mut name, mut zone, mut key, mut ttl) = (None, None, None, None, DEFAULT_GLUE_TTL);
    for arg in args {
        let (k, v) = split_parameter(arg, &["server", "name", "zone", "key", "ttl"]).map_err(|e| e.to_string())?;
        match k {
            "server" => {
                let addr = v
                    .parse::<SocketAddr>()
                    .or_else(|_| v.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| format!("\"{v}\" is not an address or address:port"))?;
                server = Some(addr);
            }
            "name" => name = Some(parse_host(v).map_err(|e| e.to_string())?),
            "zone" => zone = Some(parse_host(v).map_err(|e| e.to_string())?),
            "key" => key = Some(v.to_string()),
            _ => ttl = parse_ttl(v).map_err(|e| e.to_string())?,
        }
    }
    let server = server.ok_or("server= is required")?;
    let name = name.ok_or("name= is required")?;
    let key = key.ok_or("key= is required")?;
    let zone = match zone {
        Some(zone) => zone,
        // The name's parent: ns1-www.example.com is glue in example.com.
        None => {
            let text = name.to_string();
            let parent = text.split_once('.').map(|(_, p)| p).unwrap_or("");
            parse_host(parent).map_err(|_| format!("give zone= for \"{name}\""))?
        }
    };
    if !name.is_within(&zone) || name == zone {
        return Err(format!("\"{name}\" is not below zone \"{zone}\""));
    }
    Ok(GlueArgs {
        server,
        name,
        zone,
        key,
        ttl,
    })
}

/// Whether two states give out the same thing the same way (the time of
/// the change aside).
fn same_state(a: &SavedState, b: &SavedState) -> bool {
    a.origin == b.origin && a.file == b.file && (a.origin == Origin::Config || a.addresses == b.addresses)
}

fn show(client: Option<IpAddr>) -> String {
    client.map_or_else(|| "?".to_string(), |c| c.to_string())
}

/// Reads a small regular file without blocking on what is not one (a FIFO,
/// a device): the open is non-blocking and anything but a regular file is
/// refused, as `util::read_regular_file` does for the glue.
pub fn read_small_file(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut buf = Vec::with_capacity(512);
    file.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests;
