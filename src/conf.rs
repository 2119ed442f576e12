//! Directives → a validated zone. Each directive handler parses and checks its
//! own value at once (so `nginx -t` names the directive, file and line);
//! rules that involve several directives are checked in `merge_srv_conf`,
//! which also builds the answer templates.

use crate::dns::config::{self, Addresses, ConfigError, NsidSetting, ZoneConfig};
use crate::dns::{Name, Zone};
use crate::util::{guard, str_bytes};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_msec_t, ngx_pool_cleanup_add, ngx_pool_t, ngx_str_t, ngx_stream_conf_ctx_t,
    ngx_stream_core_module, ngx_stream_core_srv_conf_t, NGX_LOG_EMERG,
};
use ngx::{ngx_conf_log_error, ngx_log_error};
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::ptr;

const CONF_OK: *mut c_char = ptr::null_mut();
const CONF_ERROR: *mut c_char = usize::MAX as *mut c_char;
const DUPLICATE: *mut c_char = c"is duplicate".as_ptr() as *mut c_char;

pub const DEFAULT_TCP_TIMEOUT_MS: ngx_msec_t = 10_000;
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 512;

/// A place in the configuration, for errors found after parsing.
#[derive(Clone, Debug)]
struct Place {
    file: String,
    line: usize,
}

/// SOA settings as given by `dns_soa`.
#[derive(Clone, Copy, Debug, Default)]
struct SoaTimers {
    refresh: Option<u32>,
    retry: Option<u32>,
    expire: Option<u32>,
    minimum: Option<u32>,
}

/// Per-server configuration. Values are staged as the directives come (in
/// any order) and combined into `zone` by `merge_srv_conf`.
#[derive(Default)]
pub struct SrvConf {
    service: Option<(Name, Place)>,
    nameservers: Option<Vec<Name>>,
    nameservers_at: Option<Place>,
    addresses: Option<Addresses>,
    ttl: Option<(u32, u32)>,
    soa_contact: Option<Name>,
    soa_timers: Option<SoaTimers>,
    edns_payload: Option<u16>,
    nsid: Option<Option<Vec<u8>>>,
    tcp_timeout: Option<ngx_msec_t>,
    tcp_max_connections: Option<usize>,
    /// The first `dns_*` directive other than `dns_service`, to reject one
    /// that is given in a server without `dns_service`.
    first_setting: Option<(&'static str, Place)>,

    /// The built zone; `Some` exactly when this server answers DNS.
    pub zone: Option<Zone>,
    pub tcp_timeout_ms: ngx_msec_t,
    pub tcp_max_connections_limit: usize,
    /// Open DNS TCP connections of this server in this worker.
    pub tcp_connections: Cell<usize>,
}

/// Allocates `value` in `pool` and drops it when the pool is destroyed (on
/// reload or exit), so Rust-owned memory in the configuration is not leaked.
unsafe fn pool_allocate<T>(pool: *mut ngx_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
        ptr::drop_in_place(data as *mut T);
    }
    let cleanup = ngx_pool_cleanup_add(pool, std::mem::size_of::<T>());
    if cleanup.is_null() {
        return ptr::null_mut();
    }
    let p = (*cleanup).data as *mut T;
    if p.is_null() || (p as usize) % std::mem::align_of::<T>() != 0 {
        return ptr::null_mut();
    }
    ptr::write(p, value);
    (*cleanup).handler = Some(drop_value::<T>);
    p
}

pub unsafe extern "C" fn create_srv_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    guard(ptr::null_mut(), || pool_allocate((*cf).pool, SrvConf::default()) as *mut c_void)
}

unsafe fn place(cf: *mut ngx_conf_t) -> Place {
    let file = &*(*cf).conf_file;
    Place { file: String::from_utf8_lossy(str_bytes(&file.file.name)).into_owned(), line: file.line }
}

/// The directive's arguments (without its name) as strings.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> Vec<&'a str> {
    let array = &*(*cf).args;
    let values: &[ngx_str_t] = std::slice::from_raw_parts(array.elts as *const ngx_str_t, array.nelts);
    values[1..].iter().map(|v| std::str::from_utf8(str_bytes(v)).unwrap_or("\u{fffd}")).collect()
}

unsafe fn directive_name<'a>(cmd: *mut ngx_command_t) -> &'a str {
    std::str::from_utf8(str_bytes(&(*cmd).name)).unwrap_or("dns")
}

/// Runs a directive handler with panic containment and uniform errors:
/// `invalid value "X" in "dns_foo" directive: reason` at the directive's line.
unsafe fn directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    set: impl FnOnce(&mut SrvConf, &[&str], &'static str) -> Result<(), DirectiveError>,
) -> *mut c_char {
    guard(CONF_ERROR, || {
        let conf = &mut *(conf as *mut SrvConf);
        let name: &'static str = std::mem::transmute::<&str, &'static str>(directive_name(cmd));
        let args = args(cf);
        match set(conf, &args, name) {
            Ok(()) => {
                if name != "dns_service" && conf.first_setting.is_none() {
                    conf.first_setting = Some((name, place(cf)));
                }
                CONF_OK
            }
            Err(DirectiveError::Duplicate) => DUPLICATE,
            Err(DirectiveError::Invalid { value, error }) => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid value \"{value}\" in \"{name}\" directive: {error}"
                );
                CONF_ERROR
            }
        }
    })
}

enum DirectiveError {
    Duplicate,
    Invalid { value: String, error: ConfigError },
}

fn invalid(value: &str) -> impl FnOnce(ConfigError) -> DirectiveError + '_ {
    move |error| DirectiveError::Invalid { value: value.to_string(), error }
}

fn once<T>(slot: &Option<T>) -> Result<(), DirectiveError> {
    if slot.is_some() {
        Err(DirectiveError::Duplicate)
    } else {
        Ok(())
    }
}

pub unsafe extern "C" fn set_service(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    let at = place(cf);
    let rc = directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.service)?;
        let name = config::parse_host(args[0]).map_err(invalid(args[0]))?;
        conf.service = Some((name, at));
        Ok(())
    });
    if rc == CONF_OK {
        // As ngx_stream_return_module does: make this server's content
        // handler the DNS responder.
        guard((), || {
            let ctx = (*cf).ctx as *mut ngx_stream_conf_ctx_t;
            let cscf =
                *(*ctx).srv_conf.add(ngx_stream_core_module.ctx_index) as *mut ngx_stream_core_srv_conf_t;
            (*cscf).handler = Some(crate::handler::dns_handler);
        });
    }
    rc
}

pub unsafe extern "C" fn set_nameservers(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.nameservers)?;
        let names = args.iter().map(|a| config::parse_host(a).map_err(invalid(a))).collect::<Result<_, _>>()?;
        conf.nameservers = Some(names);
        conf.nameservers_at = Some(at);
        Ok(())
    })
}

pub unsafe extern "C" fn set_address(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.addresses)?;
        let joined = args.join(" ");
        conf.addresses = Some(config::parse_addresses(args.iter().copied()).map_err(|e| {
            let value = match &e {
                ConfigError::Address(a) => a.clone(),
                _ => joined,
            };
            DirectiveError::Invalid { value, error: e }
        })?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_ttl(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.ttl)?;
        let ttl = config::parse_ttl(args[0]).map_err(invalid(args[0]))?;
        let mut jitter = 0;
        if let Some(arg) = args.get(1) {
            let (_, value) = config::split_parameter(arg, &["jitter"]).map_err(invalid(arg))?;
            jitter = config::parse_timer(value).map_err(invalid(arg))?;
            if jitter >= ttl {
                return Err(invalid(arg)(ConfigError::Jitter { ttl, jitter }));
            }
        }
        conf.ttl = Some((ttl, jitter));
        Ok(())
    })
}

pub unsafe extern "C" fn set_soa(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.soa_timers)?;
        let mut timers = SoaTimers::default();
        for arg in args {
            let keys = ["contact", "refresh", "retry", "expire", "minimum"];
            let (key, value) = config::split_parameter(arg, &keys).map_err(invalid(arg))?;
            if key == "contact" {
                conf.soa_contact = Some(config::parse_mailbox(value).map_err(invalid(arg))?);
                continue;
            }
            let secs = config::parse_timer(value).map_err(invalid(arg))?;
            match key {
                "refresh" => timers.refresh = Some(secs),
                "retry" => timers.retry = Some(secs),
                "expire" => timers.expire = Some(secs),
                _ => timers.minimum = Some(secs),
            }
        }
        conf.soa_timers = Some(timers);
        Ok(())
    })
}

pub unsafe extern "C" fn set_edns_payload(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.edns_payload)?;
        conf.edns_payload = Some(config::parse_edns_payload(args[0]).map_err(invalid(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_nsid(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.nsid)?;
        conf.nsid = Some(match config::parse_nsid(args[0]).map_err(invalid(args[0]))? {
            NsidSetting::Off => None,
            NsidSetting::Value(v) => Some(v),
            NsidSetting::Hostname => Some(hostname().ok_or_else(|| invalid(args[0])(ConfigError::Nsid(args[0].into())))?),
        });
        Ok(())
    })
}

fn hostname() -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (truncation is handled by the length search).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    let name = buf[..len.min(config::MAX_NSID_LEN)].to_vec();
    (!name.is_empty()).then_some(name)
}

pub unsafe extern "C" fn set_tcp_timeout(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.tcp_timeout)?;
        let secs = config::parse_seconds(args[0]).map_err(invalid(args[0]))?;
        if secs == 0 || secs > 3600 {
            return Err(invalid(args[0])(ConfigError::Time(args[0].into())));
        }
        conf.tcp_timeout = Some(secs as ngx_msec_t * 1000);
        Ok(())
    })
}

pub unsafe extern "C" fn set_tcp_max_connections(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.tcp_max_connections)?;
        let n = args[0]
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| invalid(args[0])(ConfigError::Parameter(args[0].into())))?;
        conf.tcp_max_connections = Some(n);
        Ok(())
    })
}

/// Combines the staged values of a server block into its zone.
pub unsafe extern "C" fn merge_srv_conf(cf: *mut ngx_conf_t, _parent: *mut c_void, child: *mut c_void) -> *mut c_char {
    guard(CONF_ERROR, || {
        let conf = &mut *(child as *mut SrvConf);
        match build_zone(conf) {
            Ok(()) => CONF_OK,
            Err(message) => {
                ngx_log_error!(NGX_LOG_EMERG, (*cf).log, "{message}");
                CONF_ERROR
            }
        }
    })
}

fn build_zone(conf: &mut SrvConf) -> Result<(), String> {
    conf.tcp_timeout_ms = conf.tcp_timeout.unwrap_or(DEFAULT_TCP_TIMEOUT_MS);
    conf.tcp_max_connections_limit = conf.tcp_max_connections.unwrap_or(DEFAULT_TCP_MAX_CONNECTIONS);
    let Some((apex, at)) = conf.service.clone() else {
        if let Some((name, at)) = &conf.first_setting {
            return Err(format!("\"{name}\" requires \"dns_service\" in the same server in {}:{}", at.file, at.line));
        }
        return Ok(());
    };
    let mut zone = ZoneConfig::new(apex);
    zone.nameservers = conf.nameservers.clone().unwrap_or_default();
    if let Some(addresses) = &conf.addresses {
        zone.addresses = addresses.clone();
    }
    if let Some((ttl, jitter)) = conf.ttl {
        zone.ttl = ttl;
        zone.ttl_jitter = jitter;
    }
    zone.soa_contact = conf.soa_contact.clone();
    if let Some(t) = conf.soa_timers {
        zone.soa_refresh = t.refresh.unwrap_or(zone.soa_refresh);
        zone.soa_retry = t.retry.unwrap_or(zone.soa_retry);
        zone.soa_expire = t.expire.unwrap_or(zone.soa_expire);
        zone.soa_minimum = t.minimum.unwrap_or(zone.soa_minimum);
    }
    if let Some(payload) = conf.edns_payload {
        zone.edns_payload = payload;
    }
    if let Some(nsid) = &conf.nsid {
        zone.nsid = nsid.clone();
    }
    let ns_at = conf.nameservers_at.as_ref().unwrap_or(&at);
    let built = Zone::build(&zone).map_err(|e| match e {
        ConfigError::NoNameServers => format!(
            "\"dns_nameservers\" is required with \"dns_service\" {} in {}:{}",
            zone.apex, at.file, at.line
        ),
        e @ (ConfigError::NameServerInZone(..) | ConfigError::DuplicateNameServer(_)) => {
            format!("invalid \"dns_nameservers\" directive: {e} in {}:{}", ns_at.file, ns_at.line)
        }
        other => format!("\"dns_service\" {}: {other} in {}:{}", zone.apex, at.file, at.line),
    })?;
    conf.zone = Some(built);
    Ok(())
}
