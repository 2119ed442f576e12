//! Glue for addresses that change while nginx runs (the logic is in
//! `dynamic`): the directives, the configuration step after a server's
//! merge, and the tick steps — every worker rebuilds its templates when
//! the shared set has a version it has not built, and the tick leader
//! reads the address file and keeps the parent's glue in step (`parent`).

use crate::conf::{MainConf, SrvConf};
use crate::directives::{directive, once, DirectiveError};
use crate::dns::addrset::{AddressMap, FileReading, Origin, SavedState};
use crate::dns::tsig;
use crate::dns::Addresses;
use crate::dynamic::{self, Dynamic, Level, ParentSettings};
use crate::health::shared::Table;
use crate::log::{log_at, notice, warning};
use crate::util::str_bytes;
use ngx::ffi::{
    ngx_add_path, ngx_command_t, ngx_conf_t, ngx_cycle, ngx_log_t, ngx_path_t, ngx_pcalloc, ngx_pnalloc, ngx_str_t,
    NGX_LOG_ERR, NGX_LOG_WARN, NGX_OK,
};
use ngx::ngx_conf_log_error;
use std::ffi::{c_char, c_void};

/// The directory under the prefix where state files go by default; nginx
/// creates it at start, owned by the worker processes' user.
const STATE_DIR: &str = "dns_state";

fn invalid(value: &str, reason: impl std::fmt::Display) -> DirectiveError {
    DirectiveError::Invalid {
        value: value.chars().take(200).collect(),
        reason: reason.to_string(),
    }
}

/// `path` made absolute against nginx's prefix (`conf`: the configuration
/// prefix, where key files live like certificates; else the prefix, where
/// state lives like logs).
unsafe fn full_name(cf: *mut ngx_conf_t, path: &str, conf: bool) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let cycle = &*(*cf).cycle;
    let prefix = if conf { &cycle.conf_prefix } else { &cycle.prefix };
    let prefix = String::from_utf8_lossy(str_bytes(prefix)).into_owned();
    if prefix.is_empty() || prefix.ends_with('/') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}/{path}")
    }
}

// ---------------------------------------------------------------------------
// Directives
// ---------------------------------------------------------------------------

pub unsafe extern "C" fn set_address_file(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let path = full_name(cf, arg(cf, 1), false);
    directive(cf, cmd, conf, |conf, _, _| {
        once(&conf.staged.dynamic.file)?;
        conf.staged.dynamic.file = Some(path);
        Ok(())
    })
}

pub unsafe extern "C" fn set_address_map(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.dynamic.map)?;
        let map = AddressMap::parse(args.iter().copied()).map_err(|e| invalid(&args.join(" "), e))?;
        conf.staged.dynamic.map = Some(map);
        Ok(())
    })
}

pub unsafe extern "C" fn set_update_key(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let path = full_name(cf, arg(cf, 1), true);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.dynamic.keys)?;
        let keys = read_keys(&path).map_err(|e| invalid(args[0], e))?;
        conf.staged.dynamic.keys = Some((path, keys));
        Ok(())
    })
}

pub unsafe extern "C" fn set_address_state(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let path = full_name(cf, arg(cf, 1), false);
    directive(cf, cmd, conf, |conf, _, _| {
        once(&conf.staged.dynamic.state)?;
        conf.staged.dynamic.state = Some(path);
        Ok(())
    })
}

pub unsafe extern "C" fn set_glue_update(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.dynamic.parent)?;
        let g = dynamic::parse_glue_update(args).map_err(|e| invalid(&args.join(" "), e))?;
        let mut keys = read_keys(&full_name(cf, &g.key, true)).map_err(|e| invalid(&g.key, e))?;
        conf.staged.dynamic.parent = Some(ParentSettings {
            server: g.server,
            zone: g.zone.wire().to_vec(),
            name: g.name.wire().to_vec(),
            zone_text: g.zone.to_string(),
            name_text: g.name.to_string(),
            ttl: g.ttl,
            // The first key of the file signs.
            key: keys.remove(0),
        });
        Ok(())
    })
}

/// Argument `n` of the directive being parsed (1: the first after its name).
unsafe fn arg<'a>(cf: *mut ngx_conf_t, n: usize) -> &'a str {
    args_of(cf).get(n - 1).copied().unwrap_or("")
}

unsafe fn args_of<'a>(cf: *mut ngx_conf_t) -> Vec<&'a str> {
    let array = &*(*cf).args;
    let values: &[ngx_str_t] = std::slice::from_raw_parts(array.elts as *const ngx_str_t, array.nelts);
    values[1..]
        .iter()
        .map(|v| std::str::from_utf8(str_bytes(v)).unwrap_or("\u{fffd}"))
        .collect()
}

/// The keys of a `tsig-keygen` file, read when the configuration is loaded.
fn read_keys(path: &str) -> Result<Vec<tsig::Key>, String> {
    let bytes = dynamic::read_small_file(path).map_err(|e| format!("cannot read the key file \"{path}\": {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("the key file \"{path}\" is not text"))?;
    tsig::parse_key_file(&text).map_err(|e| format!("key file \"{path}\": {e}"))
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// This feature's part of the server's merge (after `conf::merge_srv_conf`
/// check the settings, choose the state file, and build the zone with the
/// addresses the files give at load.
pub unsafe fn merge(cf: *mut ngx_conf_t, conf: &mut SrvConf) -> Result<(), String> {
    if conf.zone.is_none() {
        // Without dns_service the merge has already said so.
        return Ok(());
    }
    let at = conf
        .staged
        .service
        .as_ref()
        .map_or(String::new(), |(_, p)| format!(" in {}:{}", p.file, p.line));
    if conf.staged.dynamic.any() {
        build(cf, conf, &at)?;
    }
    same_as_other_servers(cf, conf, &at)
}

/// Checks the settings, chooses the state file, and builds the zone with
/// the addresses the files give at load.
unsafe fn build(cf: *mut ngx_conf_t, conf: &mut SrvConf, at: &str) -> Result<(), String> {
    let Some(zone) = conf.zone.as_ref().map(|z| z.borrow().clone()) else {
        return Ok(());
    };
    let staged = std::mem::take(&mut conf.staged.dynamic);
    let apex = zone.apex().to_string();
    let configured = zone.config().addresses.clone();
    if let Some(parent) = &staged.parent {
        let listed = zone
            .config()
            .nameservers
            .iter()
            .any(|n| n.wire() == parent.name.as_slice());
        if !listed {
            return Err(format!(
                "\"dns_glue_update\" name={} is not one of the dns_nameservers of {apex}{at}",
                parent.name_text
            ));
        }
        if configured == Addresses::Auto && staged.file.is_none() && staged.keys.is_none() {
            return Err(format!(
                "\"dns_glue_update\" of {apex} needs addresses to push: a dns_address list, dns_address_file or dns_update_key{at}"
            ));
        }
    }
    let sources = staged.file.is_some() || staged.keys.is_some();
    let state_path = match (&staged.state, sources) {
        (Some(path), _) => Some(path.clone()),
        (None, true) => Some(default_state(cf, &apex)?),
        (None, false) => None,
    };
    let mut d = Dynamic::new(apex.clone(), configured, staged, state_path);
    d.log = Some(log_to_cycle);
    let now = ngx::ffi::ngx_time() as u64;
    let (initial, warnings) = d.initial(now);
    for w in warnings {
        ngx_conf_log_error!(NGX_LOG_WARN, cf, "dns_service {apex}: {w}");
    }
    if d.file.is_some() && initial.is_none() {
        ngx_conf_log_error!(
            NGX_LOG_WARN,
            cf,
            "dns_service {apex}: no good address file and no saved state yet: answering with dns_address until the file is good"
        );
    }
    let want = d.addresses_for(initial.as_ref());
    if zone.config().addresses != want {
        let rebuilt = zone
            .with_addresses(want, now)
            .map_err(|e| format!("dns_service {apex}: the saved or file addresses cannot be served: {e}{at}"))?;
        conf.zone = Some(std::cell::RefCell::new(rebuilt));
    }
    conf.dynamic = Some(d);
    Ok(())
}

/// Servers of one name share one address set: they must agree on what
/// changes it (a server without these directives would otherwise keep
/// answering with its configured addresses).
unsafe fn same_as_other_servers(cf: *mut ngx_conf_t, conf: &SrvConf, at: &str) -> Result<(), String> {
    let main = MainConf::of_conf(cf);
    let apex = conf.zone.as_ref().map(|z| z.borrow().apex().clone());
    for &other in &main.services {
        let other = &*other;
        if std::ptr::eq(other, conf) || other.zone.as_ref().map(|z| z.borrow().apex().clone()) != apex {
            continue;
        }
        if !Dynamic::same_sources(conf.dynamic.as_ref(), other.dynamic.as_ref()) {
            return Err(format!(
                "the servers of \"dns_service\" {} must have the same dns_address_file, dns_address_state, \
                 dns_update_key and dns_glue_update settings: they share the addresses given out{at}",
                apex.map_or(String::new(), |a| a.to_string())
            ));
        }
    }
    Ok(())
}

/// `<prefix>/dns_state/<service>.state`, its directory created by nginx
/// at start and given to the workers' user (they write the file).
unsafe fn default_state(cf: *mut ngx_conf_t, apex: &str) -> Result<String, String> {
    let dir = full_name(cf, STATE_DIR, false);
    let path = ngx_pcalloc((*cf).pool, std::mem::size_of::<ngx_path_t>()) as *mut ngx_path_t;
    let name = ngx_pnalloc((*cf).pool, dir.len() + 1) as *mut u8;
    if path.is_null() || name.is_null() {
        return Err("out of memory".into());
    }
    std::ptr::copy_nonoverlapping(dir.as_ptr(), name, dir.len());
    *name.add(dir.len()) = 0;
    (*path).name = ngx_str_t {
        len: dir.len(),
        data: name,
    };
    let mut slot = path;
    if ngx_add_path(cf, &mut slot) != NGX_OK as isize {
        return Err(format!("cannot register the state directory \"{dir}\""));
    }
    Ok(format!("{dir}/{apex}.state"))
}

/// Where `Dynamic` logs: the current cycle's log.
fn log_to_cycle(level: Level, args: std::fmt::Arguments<'_>) {
    // SAFETY: ngx_cycle is the live cycle in any process that logs.
    let log = unsafe { (*ngx_cycle).log };
    match level {
        Level::Info => crate::log::info!(log, "{args}"),
        Level::Notice => notice!(log, "{args}"),
        Level::Warn => warning!(log, "{args}"),
        Level::Error => log_at!(NGX_LOG_ERR, log, "{args}"),
    }
}

// ---------------------------------------------------------------------------
// The tick
// ---------------------------------------------------------------------------

/// In every worker, each tick: when the shared set has a version this
/// worker's templates were not built from, rebuild them (a signed zone is
/// signed again). Never per query: queries only read the templates.
///
/// # Safety
/// `conf` must be a live server configuration of this worker, and no
/// reference to its zone may be held (the tick runs on its own event).
pub unsafe fn refresh(conf: *mut SrvConf, table: &Table, log: *mut ngx_log_t) {
    let conf = &mut *conf;
    let (Some(d), Some(index)) = (conf.dynamic.as_ref(), conf.load.slot) else {
        return;
    };
    let slot = &table.addresses[index];
    if slot.version() == d.built.get() {
        return;
    }
    let Some(published) = slot.read() else { return };
    d.built.set(published.version);
    let want = d.addresses_for(Some(&published.state));
    let Some(zone) = conf.zone.as_ref() else { return };
    if zone.borrow().config().addresses == want {
        return;
    }
    let rebuilt = zone.borrow().with_addresses(want, ngx::ffi::ngx_time() as u64);
    match rebuilt {
        Ok(rebuilt) => *zone.borrow_mut() = rebuilt,
        Err(e) => log_at!(
            NGX_LOG_ERR,
            log,
            "dns_service {}: cannot answer with the addresses of version {}: {e}; keeping the previous ones",
            d.service,
            published.version
        ),
    }
}

/// Address file conditions, logged once when they start and end.
const FILE_MISSING: u32 = 1;
const FILE_BAD: u32 = 2;

/// In the tick leader of a service: read the address file, and keep the
/// parent's glue in step.
pub unsafe fn lead(conf: &SrvConf, table: &Table, index: usize, now_ms: u64, log: *mut ngx_log_t) {
    let Some(d) = conf.dynamic.as_ref() else { return };
    let slot = &table.addresses[index];
    if let Some(reading) = d.read_address_file() {
        read_file(d, slot, reading, log);
    }
    if d.parent.is_some() {
        crate::parent::tick(d, slot, now_ms, log);
    }
}

unsafe fn read_file(
    d: &Dynamic,
    slot: &crate::health::address_slot::AddressSlot,
    reading: FileReading,
    log: *mut ngx_log_t,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let path = d.file.as_deref().unwrap_or("");
    let condition = match &reading {
        FileReading::Good(_) => 0,
        FileReading::Missing => FILE_MISSING,
        FileReading::Bad(_) => FILE_BAD,
    };
    let before = slot.file_conditions.swap(condition, Relaxed);
    if before != condition {
        match &reading {
            FileReading::Good(_) => notice!(log, "dns_service {}: address file \"{path}\" is good again", d.service),
            FileReading::Missing => warning!(
                log,
                "dns_service {}: address file \"{path}\" is missing; keeping the addresses given out",
                d.service
            ),
            FileReading::Bad(e) => warning!(
                log,
                "dns_service {}: address file \"{path}\": {e}; keeping the addresses given out",
                d.service
            ),
        }
    }
    let FileReading::Good(set) = reading else { return };
    if slot.read().is_some_and(|p| p.state.file == Some(set)) {
        return;
    }
    // Another writer (an UPDATE being applied): look again next tick.
    let Some(writer) = slot.try_write(std::process::id()) else {
        return;
    };
    let published = writer.read();
    if published.is_some_and(|p| p.state.file == Some(set)) {
        return;
    }
    let was = published.map(|p| d.addresses_for(Some(&p.state)));
    let state = SavedState {
        origin: Origin::File,
        changed: ngx::ffi::ngx_time() as u64,
        addresses: set,
        file: Some(set),
    };
    // The file itself is kept, so a failed save loses nothing at restart
    // (a file that differs from the saved one wins then): apply anyway.
    if let Err(e) = d.save(&state) {
        log_at!(
            NGX_LOG_ERR,
            log,
            "dns_service {}: cannot write the state file \"{}\": {e}",
            d.service,
            d.state_path.as_deref().unwrap_or("")
        );
    }
    let version = writer.publish(&state, None);
    drop(writer);
    notice!(
        log,
        "dns_service {}: addresses now {set} (were {}), from the address file \"{path}\" (version {version})",
        d.service,
        was.map_or_else(|| describe(&d.configured), |a| describe(&a))
    );
}

fn describe(addresses: &Addresses) -> String {
    match addresses {
        Addresses::Auto => "auto".into(),
        Addresses::List(list) if list.is_empty() => "(none)".into(),
        Addresses::List(list) => list.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(" "),
    }
}

/// The status of a service's addresses, when it has any of this feature.
pub fn status_json(conf: &SrvConf, table: &Table) -> Option<String> {
    let (d, index) = (conf.dynamic.as_ref()?, conf.load.slot?);
    Some(d.status_json(&table.addresses[index]))
}

pub fn status_prometheus(main: &MainConf, table: &Table) -> String {
    main.services
        .iter()
        .filter_map(|&conf| {
            // SAFETY: services of a live configuration.
            let conf = unsafe { &*conf };
            Some(conf.dynamic.as_ref()?.prometheus(&table.addresses[conf.load.slot?]))
        })
        .collect()
}
