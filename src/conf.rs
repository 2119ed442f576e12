//! The module's configuration: what the directives staged (`Staged`), what a
//! server block serves with once merged (`SrvConf`), the stream-level list
//! of services (`MainConf`), and the only places that index nginx's
//! per-module configuration arrays with the module's `ctx_index`.
//!
//! Each directive handler (in `directives`) checks its own value at once, so
//! that `nginx -t` names the directive, file and line; rules that involve
//! several directives are checked in `merge_srv_conf`, which also builds the
//! answer templates.

use crate::dns::config::{Addresses, ConfigError, ZoneConfig};
use crate::dns::cookie::CookieSecrets;
use crate::dns::{Name, QueryContext, SigningSettings, Transport, Zone};
use crate::health::policy::{Policy, Silence};
use crate::health::settings::{FileSettings, HostSource, ProbeSettings};
use crate::health::shared::Table;
use crate::module::{ngx_http_dns_service_status_module, ngx_stream_dns_service_module};
use crate::serve::{self, LastQuery, RateLimit, Service, Shared};
use crate::util::{guard, next_random};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_conf_t, ngx_cycle_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_core_module, ngx_http_module,
    ngx_http_request_t, ngx_http_upstream_main_conf_t, ngx_http_upstream_module, ngx_http_upstream_srv_conf_t,
    ngx_module_t, ngx_msec_t, ngx_pool_cleanup_add, ngx_pool_t, ngx_shm_zone_t, ngx_stream_conf_ctx_t,
    ngx_stream_core_module, ngx_stream_core_srv_conf_t, ngx_stream_module, ngx_stream_session_t,
    ngx_stream_upstream_main_conf_t, ngx_stream_upstream_module, ngx_stream_upstream_srv_conf_t,
};
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_void};
use std::net::IpAddr;
use std::ptr;

pub const DEFAULT_TCP_TIMEOUT_MS: ngx_msec_t = 10_000;
pub const DEFAULT_TCP_MAX_CONNECTIONS: usize = 512;
/// Default per-worker bound on answers waiting out a shedding delay.
pub const DEFAULT_DELAY_QUEUE: usize = 4096;
pub const DEFAULT_SMOOTHING_MS: u64 = 2000;

// ---------------------------------------------------------------------------
// Configuration types
// ---------------------------------------------------------------------------

/// A place in the configuration, for errors found after parsing.
#[derive(Clone, Debug)]
pub struct Place {
    pub file: String,
    pub line: usize,
}

/// SOA settings as given by `dns_soa`.
#[derive(Clone, Copy, Debug, Default)]
pub struct SoaTimers {
    pub refresh: Option<u32>,
    pub retry: Option<u32>,
    pub expire: Option<u32>,
    pub minimum: Option<u32>,
}

/// Values as the directives give them, in any order; `None` when a
/// directive is absent. `merge_srv_conf` combines them.
#[derive(Default)]
pub struct Staged {
    pub service: Option<(Name, Place)>,
    pub nameservers: Option<(Vec<Name>, Place)>,
    pub addresses: Option<Addresses>,
    pub ttl: Option<(u32, u32)>,
    pub soa_contact: Option<Name>,
    pub soa_timers: Option<SoaTimers>,
    pub edns_payload: Option<u16>,
    pub nsid: Option<Option<Vec<u8>>>,
    pub tcp_timeout: Option<ngx_msec_t>,
    pub tcp_max_connections: Option<usize>,
    /// The first `dns_*` directive other than `dns_service`, to reject one
    /// that is given in a server without `dns_service`.
    pub first_setting: Option<(&'static str, Place)>,
    pub upstream: Option<UpstreamSettings>,
    pub probe: Option<ProbeSettings>,
    pub file: Option<FileSettings>,
    pub host: Option<HostSource>,
    pub smoothing_ms: Option<u64>,
    pub policy: Option<Policy>,
    pub silence: Option<Silence>,
    pub delay_queue: Option<usize>,
    pub udp_fast_path: Option<bool>,
    pub wildcard: Option<bool>,
    pub cookies: Option<bool>,
    pub rate_limit: Option<Option<RateLimit>>,
    pub cookie_file: Option<(String, CookieSecrets)>,
    /// Address file, map, UPDATE keys, state file, parent glue.
    pub dynamic: crate::dynamic::Staged,
    /// `dns_dnssec_key`: the key files (full paths) and where each was given.
    pub dnssec_keys: Vec<(String, Place)>,
    /// `dns_dnssec_public_keys`: other signers' public key files.
    pub dnssec_published: Vec<(String, Place)>,
    pub dnssec_signing: Option<(SigningSettings, Place)>,
}

/// Per-server configuration.
#[derive(Default)]
pub struct SrvConf {
    pub staged: Staged,
    /// The built zone; `Some` exactly when this server answers DNS. Each
    /// worker has its own copy after the fork and changes its signatures
    /// (see `serve::Service::zone`).
    pub zone: Option<RefCell<Zone>>,
    /// How queries are decided (rate limit, silence, delay queue).
    pub serve: Option<serve::Settings>,
    /// Load and health settings in effect (after merge).
    pub load: LoadConf,
    /// Serve UDP on the batched fast path (see `fastpath`).
    pub fast_path: bool,
    /// DNS cookies: on, and the secrets in use (from `dns_cookie_secret`,
    /// else the shared table's, set when the zone is initialized).
    pub cookies_on: bool,
    pub cookie_secrets: Option<CookieSecrets>,
    pub tcp_timeout_ms: ngx_msec_t,
    pub tcp_max_connections: usize,
    /// Open DNS TCP connections of this server in this worker.
    pub tcp_connections: Cell<usize>,
    /// Addresses that change while running (see `addresses`); `None` when
    /// no such directive is given.
    pub dynamic: Option<crate::dynamic::Dynamic>,
    /// DNSSEC upkeep in this worker (see `signing`).
    pub dnssec: DnssecUpkeep,
}

/// What a worker remembers about keeping its signatures fresh.
#[derive(Default)]
pub struct DnssecUpkeep {
    /// A failed re-signing is tried again at this time (seconds since the
    /// epoch), not on every tick.
    pub retry_at: Cell<u64>,
    /// The full table of signed addresses was logged (once per worker).
    pub table_full_logged: Cell<bool>,
}

/// `dns_load_upstream`: an upstream whose shared peer state is a load source.
#[derive(Clone, Debug)]
pub struct UpstreamSettings {
    pub name: String,
    /// `http`, `stream`, or either when not given.
    pub kind: Option<UpstreamKind>,
    pub capacity: Option<u64>,
    pub place: Place,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    Http,
    Stream,
}

/// The upstream a service reads, found once the whole configuration is
/// read (see `upstream::resolve`).
#[derive(Clone, Copy, Debug)]
pub enum PeersRef {
    None,
    Http(*mut ngx_http_upstream_srv_conf_t),
    Stream(*mut ngx_stream_upstream_srv_conf_t),
}

/// Load/health configuration of one service, as the worker uses it.
pub struct LoadConf {
    pub upstream: Option<UpstreamSettings>,
    pub upstream_peers: PeersRef,
    pub probe: Option<ProbeSettings>,
    pub file: Option<FileSettings>,
    pub host: Option<HostSource>,
    pub smoothing_ms: u64,
    pub policy: Policy,
    /// Index of this service's slot in the shared table.
    pub slot: Option<usize>,
}

impl Default for LoadConf {
    fn default() -> Self {
        LoadConf {
            upstream: None,
            upstream_peers: PeersRef::None,
            probe: None,
            file: None,
            host: None,
            smoothing_ms: DEFAULT_SMOOTHING_MS,
            policy: Policy::default(),
            slot: None,
        }
    }
}

/// Stream-level configuration of the module: every server that answers
/// DNS (in configuration order) and the shared zone they use.
pub struct MainConf {
    pub services: Vec<*mut SrvConf>,
    pub shm_zone: *mut ngx_shm_zone_t,
    /// The shared table, once the zone is initialized.
    pub table: *const Table,
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

impl SrvConf {
    /// The service as the per-query decision sees it; `None` for a server
    /// without `dns_service`.
    pub fn service<'a>(&'a self, table: Option<&'a Table>) -> Option<Service<'a>> {
        Some(Service {
            zone: self.zone.as_ref()?,
            settings: self.serve.as_ref()?,
            shared: table.zip(self.load.slot).map(|(table, index)| Shared { table, index }),
            dynamic: self.dynamic.as_ref(),
        })
    }

    /// What the engine needs to know about one query besides its bytes.
    pub fn query_context(
        &self,
        transport: Transport,
        local_addr: Option<IpAddr>,
        client_addr: Option<IpAddr>,
        now: u32,
    ) -> QueryContext<'_> {
        QueryContext {
            transport,
            local_addr,
            random: next_random(),
            client_addr,
            now,
            cookies: self.cookie_secrets.as_ref(),
        }
    }
}

// ---------------------------------------------------------------------------
// ctx_index accessors: the only places that index nginx's arrays
// ---------------------------------------------------------------------------

impl MainConf {
    /// The module's stream main configuration while the configuration is
    /// parsed (`cf` in a stream context).
    ///
    /// # Safety
    /// `cf` must be nginx's configuration being parsed, in a stream block.
    pub unsafe fn of_conf<'a>(cf: *mut ngx_conf_t) -> &'a mut MainConf {
        let ctx = (*cf).ctx as *mut ngx_stream_conf_ctx_t;
        &mut *(*(*ctx).main_conf.add(ngx_stream_dns_service_module.ctx_index) as *mut MainConf)
    }

    /// The module's stream main configuration of a cycle, if it has a
    /// stream block.
    ///
    /// # Safety
    /// `cycle` must be a live cycle whose configuration is complete.
    pub unsafe fn of_cycle<'a>(cycle: *mut ngx_cycle_t) -> Option<&'a MainConf> {
        let ctx = *(*cycle).conf_ctx.add(ngx_stream_module.index) as *mut ngx_stream_conf_ctx_t;
        if ctx.is_null() {
            return None;
        }
        let main = *(*ctx).main_conf.add(ngx_stream_dns_service_module.ctx_index) as *const MainConf;
        main.as_ref()
    }

    /// The main configuration of a session's server.
    ///
    /// # Safety
    /// `s` must be a live stream session.
    pub unsafe fn of_session<'a>(s: *mut ngx_stream_session_t) -> Option<&'a MainConf> {
        let main = *(*s).main_conf.add(ngx_stream_dns_service_module.ctx_index) as *const MainConf;
        main.as_ref()
    }

    /// The shared table, once nginx has initialized the zone.
    pub fn table(&self) -> Option<&Table> {
        // SAFETY: set by the zone's init to memory that outlives the cycle.
        unsafe { self.table.as_ref() }
    }
}

impl SrvConf {
    /// The module's configuration of a session's server.
    ///
    /// # Safety
    /// `s` must be a live stream session.
    pub unsafe fn of_session<'a>(s: *mut ngx_stream_session_t) -> &'a SrvConf {
        &*(*(*s).srv_conf.add(ngx_stream_dns_service_module.ctx_index) as *const SrvConf)
    }

    /// The module's configuration of a stream server, given its
    /// configuration context (as a listening address records it).
    ///
    /// # Safety
    /// `ctx` must be null or a stream configuration context of a live cycle.
    pub unsafe fn of_stream_ctx<'a>(ctx: *mut ngx_stream_conf_ctx_t) -> Option<&'a SrvConf> {
        if ctx.is_null() {
            return None;
        }
        (*(*ctx).srv_conf.add(ngx_stream_dns_service_module.ctx_index) as *const SrvConf).as_ref()
    }
}

/// The stream core module's configuration of the server being parsed.
///
/// # Safety
/// `cf` must be nginx's configuration being parsed, in a stream server.
pub unsafe fn core_srv_conf_of_conf(cf: *mut ngx_conf_t) -> *mut ngx_stream_core_srv_conf_t {
    core_srv_conf_of_ctx((*cf).ctx as *mut ngx_stream_conf_ctx_t)
}

/// The stream core module's configuration in a configuration context.
///
/// # Safety
/// `ctx` must be a valid stream configuration context.
pub unsafe fn core_srv_conf_of_ctx(ctx: *mut ngx_stream_conf_ctx_t) -> *mut ngx_stream_core_srv_conf_t {
    *(*ctx).srv_conf.add(ngx_stream_core_module.ctx_index) as *mut ngx_stream_core_srv_conf_t
}

/// The HTTP core module's configuration of the location being parsed.
///
/// # Safety
/// `cf` must be nginx's configuration being parsed, in an HTTP location.
pub unsafe fn http_core_loc_conf_of_conf(cf: *mut ngx_conf_t) -> *mut ngx_http_core_loc_conf_t {
    let ctx = (*cf).ctx as *mut ngx_http_conf_ctx_t;
    *(*ctx).loc_conf.add(ngx_http_core_module.ctx_index) as *mut ngx_http_core_loc_conf_t
}

/// The HTTP upstream module's main configuration of a cycle, if it has an
/// http block.
///
/// # Safety
/// `cycle` must be a live cycle whose configuration is complete.
pub unsafe fn http_upstream_main_conf<'a>(cycle: *mut ngx_cycle_t) -> Option<&'a ngx_http_upstream_main_conf_t> {
    let ctx = (*(*cycle).conf_ctx.add(ngx_http_module.index) as *mut ngx_http_conf_ctx_t).as_ref()?;
    (*ctx.main_conf.add(ngx_http_upstream_module.ctx_index) as *const ngx_http_upstream_main_conf_t).as_ref()
}

/// The stream upstream module's main configuration of a cycle, if it has a
/// stream block.
///
/// # Safety
/// `cycle` must be a live cycle whose configuration is complete.
pub unsafe fn stream_upstream_main_conf<'a>(cycle: *mut ngx_cycle_t) -> Option<&'a ngx_stream_upstream_main_conf_t> {
    let ctx = (*(*cycle).conf_ctx.add(ngx_stream_module.index) as *mut ngx_stream_conf_ctx_t).as_ref()?;
    (*ctx.main_conf.add(ngx_stream_upstream_module.ctx_index) as *const ngx_stream_upstream_main_conf_t).as_ref()
}

/// Whether a stream server (by its configuration context) has `allow` or
/// `deny` rules of `ngx_stream_access_module`, found by name because nginx
/// may be built without it (then no server has rules).
///
/// # Safety
/// `ctx` must be a stream configuration context of a complete configuration.
pub unsafe fn has_access_rules(ctx: *mut ngx_stream_conf_ctx_t) -> bool {
    let module = libc::dlsym(libc::RTLD_DEFAULT, c"ngx_stream_access_module".as_ptr()) as *const ngx_module_t;
    if module.is_null() || ctx.is_null() {
        return false;
    }
    // ngx_stream_access_srv_conf_t: the IPv4, IPv6 and unix-domain rule
    // arrays (all three exist on Linux builds); merged from the stream
    // level, so inherited rules count too.
    let rules = *(*ctx).srv_conf.add((*module).ctx_index) as *const [*const c_void; 3];
    rules.as_ref().is_some_and(|r| r.iter().any(|a| !a.is_null()))
}

/// The module's per-session context slot. Every context stored there (the
/// UDP and the TCP session's) is `#[repr(C)]` and starts with the session's
/// `LastQuery`, so that `last_query` reads it whatever the transport.
///
/// # Safety
/// `s` must be a live stream session.
pub unsafe fn session_ctx_slot(s: *mut ngx_stream_session_t) -> *mut *mut c_void {
    (*s).ctx.add(ngx_stream_dns_service_module.ctx_index)
}

/// The last query of a session the DNS handler served (for `$dns_*`).
///
/// # Safety
/// `s` must be a live stream session.
pub unsafe fn last_query<'a>(s: *mut ngx_stream_session_t) -> Option<&'a LastQuery> {
    (*session_ctx_slot(s) as *const LastQuery).as_ref()
}

/// The service a session's server answers for, with its configuration.
///
/// # Safety
/// `s` must be a live stream session.
pub unsafe fn session_service<'a>(s: *mut ngx_stream_session_t) -> Option<(&'a SrvConf, Service<'a>)> {
    let conf = SrvConf::of_session(s);
    let table = MainConf::of_session(s).and_then(MainConf::table);
    Some((conf, conf.service(table)?))
}

/// The status module's location configuration of an HTTP request.
///
/// # Safety
/// `r` must be a live HTTP request.
pub unsafe fn status_loc_conf<T>(r: *mut ngx_http_request_t) -> *const T {
    *(*r).loc_conf.add(ngx_http_dns_service_status_module.ctx_index) as *const T
}

// ---------------------------------------------------------------------------
// Create and merge
// ---------------------------------------------------------------------------

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

pub unsafe extern "C" fn create_main_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    guard(ptr::null_mut(), || {
        pool_allocate((*cf).pool, MainConf::default()) as *mut c_void
    })
}

pub unsafe extern "C" fn create_srv_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    guard(ptr::null_mut(), || {
        pool_allocate((*cf).pool, SrvConf::default()) as *mut c_void
    })
}

/// Combines the staged values of a server block into its zone.
pub unsafe extern "C" fn merge_srv_conf(cf: *mut ngx_conf_t, _parent: *mut c_void, child: *mut c_void) -> *mut c_char {
    guard(NGX_CONF_ERROR, || {
        let conf = &mut *(child as *mut SrvConf);
        match merge(conf) {
            Ok(()) => {
                if conf.zone.is_none() {
                    return NGX_CONF_OK;
                }
                let main = MainConf::of_conf(cf);
                if let Some(message) = conflicting_service(main, conf) {
                    crate::log::emerg!((*cf).log, "{message}");
                    return NGX_CONF_ERROR;
                }
                main.services.push(conf as *mut SrvConf);
                NGX_CONF_OK
            }
            Err(message) => {
                crate::log::emerg!((*cf).log, "{message}");
                NGX_CONF_ERROR
            }
        }
    })
}

/// Server blocks that serve the same name share one slot of the shared
/// table: one state, one evaluation. They may differ in listen addresses
/// and answer settings, but not in what decides the state (the load
/// sources and the shedding curve), or only the first block's would count.
unsafe fn conflicting_service(main: &MainConf, conf: &SrvConf) -> Option<String> {
    let (name, at) = conf.staged.service.as_ref()?;
    main.services.iter().find_map(|&other| {
        let (other_name, other_at) = (*other).staged.service.as_ref()?;
        (other_name == name && !(*other).load.same_decision(&conf.load)).then(|| {
            format!(
                "\"dns_service\" {name} in {}:{} is also served by the server in {}:{} with other load \
                 sources or shedding settings; servers of one name share one state, so give them the same \
                 dns_load_*, dns_load_smoothing and dns_shed settings, or use one server block",
                at.file, at.line, other_at.file, other_at.line
            )
        })
    })
}

impl LoadConf {
    /// Whether two services would evaluate and publish the same state.
    fn same_decision(&self, other: &LoadConf) -> bool {
        let upstream = |u: &Option<UpstreamSettings>| u.as_ref().map(|u| (u.name.clone(), u.kind, u.capacity));
        upstream(&self.upstream) == upstream(&other.upstream)
            && self.probe == other.probe
            && self.file == other.file
            && self.host == other.host
            && self.smoothing_ms == other.smoothing_ms
            && self.policy.curve == other.policy.curve
            && self.policy.high == other.policy.high
    }
}

fn merge(conf: &mut SrvConf) -> Result<(), String> {
    let staged = &conf.staged;
    conf.tcp_timeout_ms = staged.tcp_timeout.unwrap_or(DEFAULT_TCP_TIMEOUT_MS);
    conf.tcp_max_connections = staged.tcp_max_connections.unwrap_or(DEFAULT_TCP_MAX_CONNECTIONS);
    let Some((apex, at)) = staged.service.clone() else {
        if let Some((name, at)) = &staged.first_setting {
            return Err(format!(
                "\"{name}\" requires \"dns_service\" in the same server in {}:{}",
                at.file, at.line
            ));
        }
        return Ok(());
    };
    let zone = build_zone(staged, apex, &at)?;
    conf.zone = Some(RefCell::new(zone));
    conf.fast_path = staged.udp_fast_path.unwrap_or(true);
    conf.cookies_on = staged.cookies.unwrap_or(true);
    conf.cookie_secrets = if conf.cookies_on {
        staged.cookie_file.as_ref().map(|(_, s)| *s)
    } else {
        None
    };
    let mut policy = staged.policy.clone().unwrap_or_default();
    policy.silence = staged.silence.unwrap_or(Silence::Refuse);
    conf.serve = Some(serve::Settings {
        rate_limit: staged.rate_limit.flatten(),
        silence: policy.silence,
        delay_queue: staged.delay_queue.unwrap_or(DEFAULT_DELAY_QUEUE),
    });
    conf.load = LoadConf {
        upstream: staged.upstream.clone(),
        probe: staged.probe.clone(),
        file: staged.file.clone(),
        host: staged.host,
        smoothing_ms: staged.smoothing_ms.unwrap_or(DEFAULT_SMOOTHING_MS),
        policy,
        ..LoadConf::default()
    };
    Ok(())
}

/// The zone's templates from the staged DNS settings.
fn build_zone(staged: &Staged, apex: Name, at: &Place) -> Result<Zone, String> {
    let mut zone = ZoneConfig::new(apex);
    zone.nameservers = staged.nameservers.as_ref().map(|(n, _)| n.clone()).unwrap_or_default();
    if let Some(addresses) = &staged.addresses {
        zone.addresses = addresses.clone();
    }
    if let Some((ttl, jitter)) = staged.ttl {
        zone.ttl = ttl;
        zone.ttl_jitter = jitter;
    }
    zone.soa_contact = staged.soa_contact.clone();
    if let Some(t) = staged.soa_timers {
        zone.soa_refresh = t.refresh.unwrap_or(zone.soa_refresh);
        zone.soa_retry = t.retry.unwrap_or(zone.soa_retry);
        zone.soa_expire = t.expire.unwrap_or(zone.soa_expire);
        zone.soa_minimum = t.minimum.unwrap_or(zone.soa_minimum);
    }
    if let Some(payload) = staged.edns_payload {
        zone.edns_payload = payload;
    }
    if let Some(nsid) = &staged.nsid {
        zone.nsid = nsid.clone();
    }
    zone.wildcard = staged.wildcard.unwrap_or(false);
    let ns_at = staged.nameservers.as_ref().map_or(at, |(_, place)| place);
    Zone::build(&zone).map_err(|e| match e {
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
    })
}
