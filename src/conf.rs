//! Directives → a validated zone. Each directive handler parses and checks its
//! own value at once (so `nginx -t` names the directive, file and line);
//! rules that involve several directives are checked in `merge_srv_conf`,
//! which also builds the answer templates.

use crate::dns::config::{self, Addresses, ConfigError, NsidSetting, ZoneConfig};
use crate::dns::{Name, Zone};
use crate::health::policy::{Policy, Silence};
use crate::health::settings::{self, FileSettings, HostSource, ProbeSettings, SettingError};
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

    upstream: Option<UpstreamSettings>,
    probe: Option<ProbeSettings>,
    file: Option<FileSettings>,
    host: Option<HostSource>,
    smoothing_ms: Option<u64>,
    policy: Option<Policy>,
    silence: Option<Silence>,
    delay_queue: Option<usize>,
    udp_fast_path: Option<bool>,
    wildcard: Option<bool>,
    cookies: Option<bool>,
    rate_limit_set: Option<Option<RateLimit>>,
    cookie_file: Option<(String, crate::dns::cookie::CookieSecrets)>,

    /// The built zone; `Some` exactly when this server answers DNS.
    pub zone: Option<Zone>,
    /// Load and health settings in effect (after merge).
    pub load: LoadConf,
    /// Serve UDP on the batched fast path (see `fastpath`).
    pub fast_path: bool,
    /// DNS cookies: on, and the secrets in use (from `dns_cookie_secret`,
    /// else the shared table's, set when the zone is initialized).
    pub cookies_on: bool,
    /// Response rate limiting (`dns_rate_limit`), off when `None`.
    pub rate_limit: Option<RateLimit>,
    pub cookie_secrets: Option<crate::dns::cookie::CookieSecrets>,
    pub tcp_timeout_ms: ngx_msec_t,
    pub tcp_max_connections_limit: usize,
    /// Open DNS TCP connections of this server in this worker.
    pub tcp_connections: Cell<usize>,
}

/// `dns_load_upstream`: an upstream whose shared peer state is a load source.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub name: String,
    /// `http`, `stream`, or either when not given.
    pub kind: Option<UpstreamKind>,
    pub capacity: Option<u64>,
    pub place: (String, usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    Http,
    Stream,
}

/// `dns_rate_limit`: responses per second per client network, and every
/// how many limited responses a truncated reply is sent (0: never).
#[derive(Clone, Copy, Debug)]
pub struct RateLimit {
    pub rate: u32,
    pub slip: u32,
}

/// Default per-worker bound on answers waiting out a shedding delay.
pub const DEFAULT_DELAY_QUEUE: usize = 4096;
pub const DEFAULT_SMOOTHING_MS: u64 = 2000;

/// Load/health configuration of one service, as the worker uses it.
pub struct LoadConf {
    pub upstream: Option<UpstreamSettings>,
    /// Set when the configuration is complete (see `upstream::resolve`).
    pub upstream_peers: crate::upstream::PeersRef,
    pub probe: Option<ProbeSettings>,
    pub file: Option<FileSettings>,
    pub host: Option<HostSource>,
    pub smoothing_ms: u64,
    pub policy: Policy,
    pub silence: Silence,
    pub delay_queue: usize,
    /// Index of this service's slot in the shared table.
    pub slot: Option<usize>,
}

impl Default for LoadConf {
    fn default() -> Self {
        LoadConf {
            upstream: None,
            upstream_peers: crate::upstream::PeersRef::None,
            probe: None,
            file: None,
            host: None,
            smoothing_ms: DEFAULT_SMOOTHING_MS,
            policy: Policy::default(),
            silence: Silence::Refuse,
            delay_queue: DEFAULT_DELAY_QUEUE,
            slot: None,
        }
    }
}

/// Stream-level configuration of the module: every server that answers
/// DNS (in configuration order) and the shared zone they use.
pub struct MainConf {
    pub services: Vec<*mut SrvConf>,
    pub shm_zone: *mut ngx::ffi::ngx_shm_zone_t,
    /// The shared table, once the zone is initialized.
    pub table: *const crate::health::shared::Table,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            services: Vec::new(),
            shm_zone: ptr::null_mut(),
            table: ptr::null(),
        }
    }
}

pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    guard(ptr::null_mut(), || {
        pool_allocate((*cf).pool, MainConf::default()) as *mut c_void
    })
}

/// The module's stream main configuration while parsing.
unsafe fn main_conf<'a>(cf: *mut ngx_conf_t) -> &'a mut MainConf {
    let ctx = (*cf).ctx as *mut ngx_stream_conf_ctx_t;
    &mut *(*(*ctx)
        .main_conf
        .add(crate::module::ngx_stream_dns_service_module.ctx_index) as *mut MainConf)
}

/// Allocates `value` in `pool` and drops it when the pool is destroyed (on
/// reload or exit), so Rust-owned memory in the configuration is not leaked.
unsafe fn pool_allocate<T>(pool: *mut ngx_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_value<T>(data: *mut c_void) {
        guard((), || ptr::drop_in_place(data as *mut T));
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
    guard(ptr::null_mut(), || {
        pool_allocate((*cf).pool, SrvConf::default()) as *mut c_void
    })
}

unsafe fn place(cf: *mut ngx_conf_t) -> Place {
    let file = &*(*cf).conf_file;
    Place {
        file: String::from_utf8_lossy(str_bytes(&file.file.name)).into_owned(),
        line: file.line,
    }
}

/// The directive's arguments (without its name) as strings.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> Vec<&'a str> {
    let array = &*(*cf).args;
    let values: &[ngx_str_t] = std::slice::from_raw_parts(array.elts as *const ngx_str_t, array.nelts);
    values[1..]
        .iter()
        .map(|v| std::str::from_utf8(str_bytes(v)).unwrap_or("\u{fffd}"))
        .collect()
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
            Err(DirectiveError::Setting { value, error }) => {
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
    Setting { value: String, error: SettingError },
}

fn invalid_setting(value: &str) -> impl FnOnce(SettingError) -> DirectiveError + '_ {
    move |error| DirectiveError::Setting {
        value: value.to_string(),
        error,
    }
}

fn invalid(value: &str) -> impl FnOnce(ConfigError) -> DirectiveError + '_ {
    move |error| DirectiveError::Invalid {
        value: value.to_string(),
        error,
    }
}

/// An `on | off` directive value.
fn on_off(arg: &str) -> Result<bool, DirectiveError> {
    match arg {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(invalid(other)(ConfigError::Parameter(other.into()))),
    }
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
            let cscf = *(*ctx).srv_conf.add(ngx_stream_core_module.ctx_index) as *mut ngx_stream_core_srv_conf_t;
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
        let names = args
            .iter()
            .map(|a| config::parse_host(a).map_err(invalid(a)))
            .collect::<Result<_, _>>()?;
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
            NsidSetting::Hostname => {
                Some(hostname().ok_or_else(|| invalid(args[0])(ConfigError::Nsid(args[0].into())))?)
            }
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

pub unsafe extern "C" fn set_load_upstream(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.upstream)?;
        let (kind, name) = match args[0].split_once(':') {
            Some(("http", name)) => (Some(UpstreamKind::Http), name),
            Some(("stream", name)) => (Some(UpstreamKind::Stream), name),
            Some(_) => return Err(invalid(args[0])(ConfigError::Parameter(args[0].into()))),
            None => (None, args[0]),
        };
        if name.is_empty() {
            return Err(invalid(args[0])(ConfigError::Parameter(args[0].into())));
        }
        let mut capacity = None;
        for arg in &args[1..] {
            let (_, value) = config::split_parameter(arg, &["capacity"]).map_err(invalid(arg))?;
            capacity = Some(settings::parse_count(arg, value, 1, 100_000_000).map_err(invalid_setting(arg))?);
        }
        conf.upstream = Some(UpstreamSettings {
            name: name.to_string(),
            kind,
            capacity,
            place: (at.file, at.line),
        });
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_probe(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.probe)?;
        conf.probe = Some(settings::parse_probe(args).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_file(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.file)?;
        conf.file = Some(settings::parse_file(args).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_host(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.host)?;
        conf.host = Some(settings::parse_host_source(args[0]).map_err(invalid_setting(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_smoothing(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.smoothing_ms)?;
        let ms = settings::parse_ms_value(args[0])
            .filter(|ms| *ms <= 600_000)
            .ok_or_else(|| invalid_setting(args[0])(SettingError::Range(args[0].into(), 0, 600)))?;
        conf.smoothing_ms = Some(ms);
        Ok(())
    })
}

pub unsafe extern "C" fn set_shed(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.policy)?;
        conf.policy = Some(settings::parse_shed(args, Silence::Drop).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_silence(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.silence)?;
        conf.silence = Some(settings::parse_silence(args[0]).map_err(invalid_setting(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_delay_queue(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.delay_queue)?;
        let n = settings::parse_count(args[0], args[0], 0, 1_000_000).map_err(invalid_setting(args[0]))?;
        conf.delay_queue = Some(n as usize);
        Ok(())
    })
}

pub unsafe extern "C" fn set_wildcard(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.wildcard)?;
        conf.wildcard = Some(on_off(args[0])?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_cookies(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.cookies)?;
        conf.cookies = Some(on_off(args[0])?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_cookie_secret(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.cookie_file)?;
        let path = args[0];
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(path)(ConfigError::Parameter(format!("cannot read the secret file: {e}"))))?;
        let secrets = crate::dns::cookie::parse_secrets(&text).ok_or_else(|| {
            invalid(path)(ConfigError::Parameter(
                "the secret file must hold 32 hex digits (the current secret), optionally a second line with the previous one".into(),
            ))
        })?;
        conf.cookie_file = Some((path.to_string(), secrets));
        Ok(())
    })
}

pub unsafe extern "C" fn set_rate_limit(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.rate_limit_set)?;
        if args[0] == "off" && args.len() == 1 {
            conf.rate_limit_set = Some(None);
            return Ok(());
        }
        let rate = settings::parse_count(args[0], args[0], 1, 1_000_000).map_err(invalid_setting(args[0]))? as u32;
        let mut slip = 2;
        for arg in &args[1..] {
            let (_, value) = config::split_parameter(arg, &["slip"]).map_err(invalid(arg))?;
            slip = settings::parse_count(arg, value, 0, 100).map_err(invalid_setting(arg))? as u32;
        }
        conf.rate_limit_set = Some(Some(RateLimit { rate, slip }));
        Ok(())
    })
}

pub unsafe extern "C" fn set_udp_fast_path(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.udp_fast_path)?;
        conf.udp_fast_path = Some(on_off(args[0])?);
        Ok(())
    })
}

/// Combines the staged values of a server block into its zone.
pub unsafe extern "C" fn merge_srv_conf(cf: *mut ngx_conf_t, _parent: *mut c_void, child: *mut c_void) -> *mut c_char {
    guard(CONF_ERROR, || {
        let conf = &mut *(child as *mut SrvConf);
        match build_zone(conf) {
            Ok(()) => {
                if conf.zone.is_some() {
                    main_conf(cf).services.push(conf as *mut SrvConf);
                }
                CONF_OK
            }
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
            return Err(format!(
                "\"{name}\" requires \"dns_service\" in the same server in {}:{}",
                at.file, at.line
            ));
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
    zone.wildcard = conf.wildcard.unwrap_or(false);
    let ns_at = conf.nameservers_at.as_ref().unwrap_or(&at);
    let built = Zone::build(&zone).map_err(|e| match e {
        ConfigError::NoNameServers => format!(
            "\"dns_nameservers\" is required with \"dns_service\" {} in {}:{}",
            zone.apex, at.file, at.line
        ),
        e @ (ConfigError::NameServerInZone(..) | ConfigError::DuplicateNameServer(_)) => {
            format!(
                "invalid \"dns_nameservers\" directive: {e} in {}:{}",
                ns_at.file, ns_at.line
            )
        }
        other => format!("\"dns_service\" {}: {other} in {}:{}", zone.apex, at.file, at.line),
    })?;
    conf.zone = Some(built);
    conf.fast_path = conf.udp_fast_path.unwrap_or(true);
    conf.cookies_on = conf.cookies.unwrap_or(true);
    conf.rate_limit = conf.rate_limit_set.flatten();
    conf.cookie_secrets = if conf.cookies_on {
        conf.cookie_file.as_ref().map(|(_, s)| *s)
    } else {
        None
    };
    let mut policy = conf.policy.clone().unwrap_or_default();
    policy.silence = conf.silence.unwrap_or(Silence::Refuse);
    conf.load = LoadConf {
        upstream: conf.upstream.clone(),
        probe: conf.probe.clone(),
        file: conf.file.clone(),
        host: conf.host,
        smoothing_ms: conf.smoothing_ms.unwrap_or(DEFAULT_SMOOTHING_MS),
        silence: policy.silence,
        policy,
        delay_queue: conf.delay_queue.unwrap_or(DEFAULT_DELAY_QUEUE),
        ..LoadConf::default()
    };
    Ok(())
}

/// After the stream block: one shared zone for every service's state and
/// counters (kept across reloads, so counters and health survive them).
pub unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx::ffi::ngx_int_t {
    guard(ngx::ffi::NGX_ERROR as ngx::ffi::ngx_int_t, || {
        let main = main_conf(cf);
        if main.services.is_empty() {
            return ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t;
        }
        match crate::shm::add_zone(cf, main) {
            Ok(()) => ngx::ffi::NGX_OK as ngx::ffi::ngx_int_t,
            Err(()) => ngx::ffi::NGX_ERROR as ngx::ffi::ngx_int_t,
        }
    })
}
