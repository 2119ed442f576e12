//! DNSSEC in the glue. Every answer exists before the first query, so it is
//! signed then:
//! - `sign_zone`, when a server's configuration is merged: reads the keys
//!   (in the master process, so a private key may be readable by root
//!   only), signs the zone's RRsets and logs each key's DS record;
//! - `sign_listen_addresses`, once the whole configuration is read: with
//!   `dns_address auto`, signs the address RRset for every address the
//!   server listens on, or, on a wildcard `listen`, for the host's
//!   interface addresses;
//! - `refresh`, in every worker from its tick: signs everything again when
//!   the refresh time comes (never per query);
//! - `report`: logs what a query on a new local address did to the table of
//!   signed addresses (see `serve::NewAddress`).

use crate::conf::{MainConf, Place, SrvConf};
use crate::dns::{keyfile, DnssecError, PublicKey, SigningKey, SigningSettings, ZoneKeys};
use crate::listen;
use crate::log::{info, notice, warning};
use crate::serve::{NewAddress, Served};
use ngx::ffi::{ngx_conf_t, ngx_cycle_t, ngx_listening_t, ngx_log_t};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// After a failed re-signing, the next attempt (seconds).
const RETRY_SECS: u64 = 60;

fn at(place: &Place) -> String {
    format!("in {}:{}", place.file, place.line)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads the keys of a merged server and signs its zone; logs each key's
/// tag and the DS record the parent zone needs. `Err` is the message that
/// fails the configuration, naming the directive, file and line.
///
/// # Safety
/// `cf` must be nginx's configuration being parsed.
pub unsafe fn sign_zone(cf: *mut ngx_conf_t, conf: &SrvConf) -> Result<(), String> {
    let staged = &conf.staged;
    let Some((first_path, first_at)) = staged.dnssec_keys.first() else {
        let other = staged
            .dnssec_published
            .first()
            .map(|(_, p)| ("dns_dnssec_public_keys", p));
        let other = other.or(staged.dnssec_signing.as_ref().map(|(_, p)| ("dns_dnssec_signing", p)));
        return match other {
            Some((name, place)) => Err(format!("\"{name}\" requires \"dns_dnssec_key\" {}", at(place))),
            None => Ok(()),
        };
    };
    let Some(zone) = conf.zone.as_ref() else {
        return Ok(());
    };
    let apex = zone.borrow().apex().clone();
    let signing: Vec<(SigningKey, &str)> = staged
        .dnssec_keys
        .iter()
        .map(|(path, place)| {
            keyfile::load_signing_key(Path::new(path), &apex)
                .map(|key| (key, path.as_str()))
                .map_err(|e| format!("invalid \"dns_dnssec_key\" directive: {e} {}", at(place)))
        })
        .collect::<Result<_, _>>()?;
    let published: Vec<(PublicKey, &str)> = staged
        .dnssec_published
        .iter()
        .map(|(path, place)| {
            keyfile::load_public_key(Path::new(path), &apex)
                .map(|key| (key, path.as_str()))
                .map_err(|e| format!("invalid \"dns_dnssec_public_keys\" directive: {e} {}", at(place)))
        })
        .collect::<Result<_, _>>()?;
    let log_lines = key_lines(&apex.to_string(), &signing, &published);
    let failed = |e: DnssecError| format!("\"dns_dnssec_key\" \"{first_path}\": {e} {}", at(first_at));
    let keys = ZoneKeys::new(
        &apex,
        signing.into_iter().map(|(k, _)| k).collect(),
        published.into_iter().map(|(k, _)| k).collect(),
    )
    .map_err(failed)?;
    let settings = staged
        .dnssec_signing
        .as_ref()
        .map_or_else(SigningSettings::default, |(s, _)| *s);
    let signed = zone
        .borrow()
        .sign_for(Arc::new(keys), settings, &[], now())
        .map_err(failed)?;
    zone.borrow_mut().set_signed(signed).map_err(failed)?;
    for line in log_lines {
        notice!((*cf).log, "{line}");
    }
    Ok(())
}

/// One line per key: its tag, where it was read, and its DS record.
fn key_lines(apex: &str, signing: &[(SigningKey, &str)], published: &[(PublicKey, &str)]) -> Vec<String> {
    let describe = |key: &PublicKey| format!("key {} ({})", key.key_tag(), key.algorithm().mnemonic());
    let mut lines: Vec<String> = signing
        .iter()
        .map(|(key, path)| {
            let key = key.public();
            let (what, ds) = (describe(key), key.ds_record());
            format!("dns_service {apex}: DNSSEC signing {what} from \"{path}\"; DS for the parent zone: {ds}")
        })
        .collect();
    // A fleet's common list of keys may name this host's own key too.
    let own = |key: &PublicKey| signing.iter().any(|(k, _)| k.public() == key);
    lines.extend(published.iter().filter(|(key, _)| !own(key)).map(|(key, path)| {
        let (what, ds) = (describe(key), key.ds_record());
        format!("dns_service {apex}: DNSSEC publishing {what} of another signer from \"{path}\"; its DS: {ds}")
    }));
    lines
}

/// Signs, for every server with a signed zone and `dns_address auto`, the
/// address RRset of each address it listens on; for a wildcard `listen`,
/// of the host's interface addresses (as many as `max_addresses` allows;
/// others are signed when a query first arrives on them). `Err` fails the
/// configuration: the listen addresses alone do not fit the table.
///
/// # Safety
/// `cycle` must be a cycle whose configuration is complete.
pub unsafe fn sign_listen_addresses(cycle: *mut ngx_cycle_t, main: &MainConf) -> Result<(), String> {
    if !main
        .services
        .iter()
        .any(|&c| (*c).zone.as_ref().is_some_and(|z| z.borrow().signed().is_some()))
    {
        return Ok(());
    }
    let listening = &(*cycle).listening;
    let all = std::slice::from_raw_parts(listening.elts as *const ngx_listening_t, listening.nelts);
    // The addresses listened on first: they must fit; interface addresses
    // take the room that is left.
    let mut wildcards = Vec::new();
    for ls in all.iter().filter(|ls| listen::is_stream(ls)) {
        let addresses = listen::addresses(ls);
        let named: Vec<IpAddr> = addresses.iter().filter_map(|(key, _)| *key).collect();
        for (key, addr_conf) in &addresses {
            let Some(conf) = listen::service_conf(addr_conf) else {
                continue;
            };
            match listen::local_address(ls, *key) {
                Some(local) => sign_address(conf, local)?,
                None => wildcards.push((conf, i32::from((*ls.sockaddr).sa_family), named.clone())),
            }
        }
    }
    for (conf, family, named) in wildcards {
        let interfaces = interface_addresses(family).into_iter().filter(|a| !named.contains(a));
        sign_interfaces(conf, interfaces, (*cycle).log);
    }
    Ok(())
}

/// Signs for one address a server listens on.
fn sign_address(conf: &SrvConf, local: IpAddr) -> Result<(), String> {
    let Some(zone) = conf.zone.as_ref() else { return Ok(()) };
    let mut zone = zone.borrow_mut();
    let error = match zone.add_signed_address(local) {
        Ok(()) | Err(DnssecError::NotSigned | DnssecError::FixedAddresses) => return Ok(()),
        Err(e) => e,
    };
    let staged = &conf.staged;
    let (directive, place) = match (&staged.dnssec_signing, staged.dnssec_keys.first()) {
        (Some((_, place)), _) => ("dns_dnssec_signing", place),
        (None, Some((_, place))) => ("dns_dnssec_key", place),
        (None, None) => return Err(format!("\"dns_service\" {}: {error}", zone.apex())),
    };
    Err(format!(
        "\"{directive}\": cannot sign for {local}, an address \"dns_service\" {} listens on: {error}; \
         raise max_addresses of \"dns_dnssec_signing\" {}",
        zone.apex(),
        at(place)
    ))
}

/// Signs for the interface addresses behind a wildcard `listen`, as many as
/// fit; the table must keep room for nothing else, so a full one is only
/// logged.
unsafe fn sign_interfaces(conf: &SrvConf, interfaces: impl Iterator<Item = IpAddr>, log: *mut ngx_log_t) {
    let Some(zone) = conf.zone.as_ref() else { return };
    let mut zone = zone.borrow_mut();
    for local in interfaces {
        match zone.add_signed_address(local) {
            Ok(()) => {}
            Err(DnssecError::NotSigned | DnssecError::FixedAddresses) => return,
            Err(e) => {
                warning!(
                    log,
                    "dns_service {}: DNSSEC: interface address {local} not signed for at start: {e}",
                    zone.apex()
                );
                return;
            }
        }
    }
}

/// The host's interface addresses of `family`. IPv6 link-local addresses
/// are left out: no resolver queries a name server on one, and a host has
/// one per interface.
fn interface_addresses(family: i32) -> Vec<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` on success; it is walked while valid
    // and freed once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut at = list;
        while let Some(ifa) = at.as_ref() {
            at = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || i32::from((*ifa.ifa_addr).sa_family) != family {
                continue;
            }
            let Some(addr) = crate::util::ip_of(ifa.ifa_addr as *const ngx::ffi::sockaddr) else {
                continue;
            };
            let link_local = matches!(addr, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
            if !link_local && !out.contains(&addr) {
                out.push(addr);
            }
        }
        libc::freeifaddrs(list);
        out
    }
}

/// Signs a server's zone again when its refresh time has come (from the
/// worker's tick, and when the worker starts: a worker forked long after
/// the configuration was read must not serve old signatures).
///
/// # Safety
/// `log` must be null or a live log.
pub unsafe fn refresh(conf: &SrvConf, now: u64, log: *mut ngx_log_t) {
    let Some(zone) = conf.zone.as_ref() else { return };
    let Some(due) = zone.try_borrow().ok().and_then(|z| z.next_refresh()) else {
        return;
    };
    if now < due.max(conf.dnssec.retry_at.get()) {
        return;
    }
    let Ok(mut zone) = zone.try_borrow_mut() else { return };
    let Some(resigned) = zone.signed().map(|signed| signed.resign(now)) else {
        return;
    };
    match resigned.and_then(|signed| zone.set_signed(signed)) {
        Ok(_) => {
            let (inception, expiration) = zone.signed().map_or((0, 0), |s| s.validity());
            info!(
                log,
                "dns_service {}: DNSSEC signatures made again, valid from {inception} to {expiration}",
                zone.apex()
            );
        }
        Err(e) => {
            conf.dnssec.retry_at.set(now + RETRY_SECS);
            warning!(
                log,
                "dns_service {}: DNSSEC: signing again failed: {e}; the signatures in use are kept, \
                 next attempt in {RETRY_SECS} s",
                zone.apex()
            );
        }
    }
}

/// Every signed service of a configuration, as `refresh` does it.
///
/// # Safety
/// As for `refresh`; `main`'s services must be live.
pub unsafe fn refresh_all(main: &MainConf, now: u64, log: *mut ngx_log_t) {
    for &conf in &main.services {
        refresh(&*conf, now, log);
    }
}

/// Logs what a query on a new local address did: each address signed for,
/// and a full table once per worker.
///
/// # Safety
/// `log` must be null or a live log.
pub unsafe fn report(conf: &SrvConf, served: &Served, log: *mut ngx_log_t) {
    let Some(new) = served.new_address else { return };
    let apex = conf
        .zone
        .as_ref()
        .and_then(|z| z.try_borrow().ok())
        .map(|z| z.apex().to_string());
    let apex = apex.unwrap_or_default();
    match new {
        NewAddress::Signed(local) => {
            info!(
                log,
                "dns_service {apex}: DNSSEC: signed for the new local address {local}"
            );
        }
        NewAddress::TableFull(local, size) => {
            if !conf.dnssec.table_full_logged.replace(true) {
                warning!(
                    log,
                    "dns_service {apex}: DNSSEC: cannot sign for the local address {local}: the table of \
                     {size} signed addresses is full, so DNSSEC queries on it get SERVFAIL; raise \
                     max_addresses of \"dns_dnssec_signing\" (logged once)"
                );
            }
        }
        NewAddress::Failed(local) => {
            warning!(
                log,
                "dns_service {apex}: DNSSEC: signing for the local address {local} failed"
            );
        }
    }
}
