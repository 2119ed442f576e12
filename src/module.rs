//! The composition root: the module tables nginx reads, and the hooks that
//! start each part. The shared object holds three nginx modules:
//! - `ngx_stream_dns_service_module`: the responder and its directives;
//! - `ngx_http_dns_service_status_module`: the `dns_service_status` handler;
//! - `ngx_dns_service_module`: a core module that runs once the whole
//!   configuration (http and stream blocks, in any order) has been read:
//!   it resolves `dns_load_upstream` names, so `nginx -t` rejects bad ones,
//!   and signs for the addresses DNSSEC services listen on.
//!
//! Where a query goes:
//!
//! ```text
//!  configuration   directives ──► conf (Staged ─merge─► SrvConf + Zone templates)
//!                                  └─► signing::sign_zone (keys, signed templates)
//!                  postconfiguration ──► shm (one shared table: state, counters)
//!                  whole configuration ──► upstream::resolve, signing (listen addresses)
//!
//!  each worker     init_process ──► signing::refresh_all (signatures due)
//!                               ├─► fastpath::start  (takes over UDP listeners)
//!                               └─► tick::start      (leader reads load sources,
//!                                                     publishes the shedding shape;
//!                                                     every worker re-signs when due;
//!                                                     addresses: rebuild templates on
//!                                                     a new shared version, leader reads
//!                                                     the address file, pushes glue)
//!
//!  UDP datagram ──► fastpath (recvmmsg batch) ──┐
//!  UDP session  ──► session (content handler) ──┼──► serve::Service::answer ──► send now,
//!  TCP stream   ──► tcp (framing, pipelining) ──┘     (UPDATE/TSIG first,        on a timer,
//!                                                      then zone, rate limit,    or not at all
//!                                                      policy, counters)
//! ```

use crate::conf::{self, MainConf};
use crate::log::emerg;
use crate::util::guard;
use crate::{addresses, directives, fastpath, replies, session, shm, signing, status, tick, upstream, variables};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{
    ngx_command_t, ngx_conf_t, ngx_core_module_t, ngx_cycle_t, ngx_http_module_t, ngx_int_t, ngx_module_t, ngx_str_t,
    ngx_stream_module_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CORE_MODULE,
    NGX_ERROR, NGX_HTTP_LOC_CONF, NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MODULE, NGX_OK, NGX_PROCESS_SINGLE,
    NGX_PROCESS_WORKER, NGX_STREAM_MODULE, NGX_STREAM_SRV_CONF, NGX_STREAM_SRV_CONF_OFFSET,
};
use std::ffi::{c_char, c_void};
use std::ptr;

macro_rules! command {
    ($name:literal, $type:expr, $set:path, $conf:expr) => {
        ngx_command_t {
            name: ngx_str_t {
                len: $name.len(),
                data: concat!($name, "\0").as_ptr() as *mut u8,
            },
            type_: ($type) as ngx_uint_t,
            set: Some($set),
            conf: $conf,
            offset: 0,
            post: ptr::null_mut(),
        }
    };
    ($name:literal, $args:expr, $set:path) => {
        command!($name, NGX_STREAM_SRV_CONF | $args, $set, NGX_STREAM_SRV_CONF_OFFSET)
    };
}

static mut STREAM_COMMANDS: [ngx_command_t; 31] = [
    command!("dns_service", NGX_CONF_TAKE1, set_service),
    command!("dns_nameservers", NGX_CONF_1MORE, directives::set_nameservers),
    command!("dns_address", NGX_CONF_1MORE, directives::set_address),
    command!("dns_ttl", NGX_CONF_TAKE12, directives::set_ttl),
    command!("dns_soa", NGX_CONF_1MORE, directives::set_soa),
    command!("dns_edns_payload", NGX_CONF_TAKE1, directives::set_edns_payload),
    command!("dns_nsid", NGX_CONF_TAKE1, directives::set_nsid),
    command!("dns_tcp_timeout", NGX_CONF_TAKE1, directives::set_tcp_timeout),
    command!(
        "dns_tcp_max_connections",
        NGX_CONF_TAKE1,
        directives::set_tcp_max_connections
    ),
    command!("dns_load_upstream", NGX_CONF_TAKE12, directives::set_load_upstream),
    command!("dns_load_probe", NGX_CONF_1MORE, directives::set_load_probe),
    command!("dns_load_file", NGX_CONF_1MORE, directives::set_load_file),
    command!("dns_load_host", NGX_CONF_TAKE1, directives::set_load_host),
    command!("dns_load_smoothing", NGX_CONF_TAKE1, directives::set_load_smoothing),
    command!("dns_shed", NGX_CONF_1MORE, directives::set_shed),
    command!("dns_silence", NGX_CONF_TAKE1, directives::set_silence),
    command!("dns_delay_queue", NGX_CONF_TAKE1, directives::set_delay_queue),
    command!("dns_udp_fast_path", NGX_CONF_TAKE1, directives::set_udp_fast_path),
    command!("dns_wildcard", NGX_CONF_TAKE1, directives::set_wildcard),
    command!("dns_cookies", NGX_CONF_TAKE1, directives::set_cookies),
    command!("dns_cookie_secret", NGX_CONF_TAKE1, directives::set_cookie_secret),
    command!("dns_rate_limit", NGX_CONF_TAKE12, directives::set_rate_limit),
    command!("dns_dnssec_key", NGX_CONF_TAKE1, directives::set_dnssec_key),
    command!(
        "dns_dnssec_public_keys",
        NGX_CONF_1MORE,
        directives::set_dnssec_public_keys
    ),
    command!("dns_dnssec_signing", NGX_CONF_1MORE, directives::set_dnssec_signing),
    // Addresses that change while running (see `addresses`).
    command!("dns_address_file", NGX_CONF_TAKE1, addresses::set_address_file),
    command!("dns_address_map", NGX_CONF_1MORE, addresses::set_address_map),
    command!("dns_address_state", NGX_CONF_TAKE1, addresses::set_address_state),
    command!("dns_update_key", NGX_CONF_TAKE1, addresses::set_update_key),
    command!("dns_glue_update", NGX_CONF_1MORE, addresses::set_glue_update),
    ngx_command_t::empty(),
];

static STREAM_CTX: ngx_stream_module_t = ngx_stream_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: Some(postconfiguration),
    create_main_conf: Some(conf::create_main_conf),
    init_main_conf: None,
    create_srv_conf: Some(conf::create_srv_conf),
    merge_srv_conf: Some(merge_srv_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_stream_dns_service_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(STREAM_CTX) as *mut _,
    commands: ptr::addr_of_mut!(STREAM_COMMANDS) as *mut ngx_command_t,
    type_: NGX_STREAM_MODULE as ngx_uint_t,
    init_process: Some(init_process),
    exit_process: Some(exit_process),
    ..ngx_module_t::default()
};

static mut HTTP_COMMANDS: [ngx_command_t; 2] = [
    command!(
        "dns_service_status",
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        status::set_status,
        NGX_HTTP_LOC_CONF_OFFSET
    ),
    ngx_command_t::empty(),
];

static HTTP_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: None,
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: None,
    merge_srv_conf: None,
    create_loc_conf: Some(status::create_loc_conf),
    merge_loc_conf: None,
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_dns_service_status_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(HTTP_CTX) as *mut _,
    commands: ptr::addr_of_mut!(HTTP_COMMANDS) as *mut ngx_command_t,
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

static mut CORE_CTX: ngx_core_module_t = ngx_core_module_t {
    name: ngx_str_t {
        len: 11,
        data: c"dns_service".as_ptr() as *mut u8,
    },
    create_conf: None,
    init_conf: Some(init_core_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_dns_service_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of_mut!(CORE_CTX) as *mut _,
    commands: ptr::null_mut(),
    type_: NGX_CORE_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};

/// `dns_service`: stage the name, then make the server's content handler
/// the DNS responder, as `ngx_stream_return_module` does.
unsafe extern "C" fn set_service(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    let rc = directives::set_service(cf, cmd, conf);
    if rc == NGX_CONF_OK {
        (*conf::core_srv_conf_of_conf(cf)).handler = Some(session::dns_handler);
    }
    rc
}

/// A server's configuration is merged into its zone, which is then signed
/// when the server has DNSSEC keys.
unsafe extern "C" fn merge_srv_conf(cf: *mut ngx_conf_t, parent: *mut c_void, child: *mut c_void) -> *mut c_char {
    let rc = conf::merge_srv_conf(cf, parent, child);
    if rc != NGX_CONF_OK {
        return rc;
    }
    guard(NGX_CONF_ERROR, || {
        // Sign first: the address step re-signs for the first address set
        // it finds (an address file, a saved state).
        let conf = &mut *(child as *mut conf::SrvConf);
        match signing::sign_zone(cf, conf).and_then(|()| addresses::merge(cf, conf)) {
            Ok(()) => NGX_CONF_OK,
            Err(message) => {
                emerg!((*cf).log, "{message}");
                NGX_CONF_ERROR
            }
        }
    })
}

/// After the stream block: one shared zone for every service's state and
/// counters (kept across reloads, so counters and health survive them).
unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        let main = MainConf::of_conf(cf);
        if main.services.is_empty() || shm::add_zone(cf, main).is_ok() {
            NGX_OK as ngx_int_t
        } else {
            NGX_ERROR as ngx_int_t
        }
    })
}

/// Runs once the whole configuration is parsed (also for `nginx -t` and on
/// reload, where an error keeps the running configuration): resolves the
/// upstreams services read, and signs for the addresses they listen on.
unsafe extern "C" fn init_core_conf(cycle: *mut ngx_cycle_t, _conf: *mut c_void) -> *mut c_char {
    guard(NGX_CONF_ERROR, || {
        let Some(main) = MainConf::of_cycle(cycle) else {
            return NGX_CONF_OK;
        };
        match upstream::resolve(cycle, main).and_then(|()| signing::sign_listen_addresses(cycle, main)) {
            Ok(()) => NGX_CONF_OK,
            Err(message) => {
                emerg!((*cycle).log, "{message}");
                NGX_CONF_ERROR
            }
        }
    })
}

/// In each worker: bring old signatures up to date, take over the UDP
/// listeners, then start the tick. The
/// cache manager and loader processes run this hook too; they serve no
/// queries and must not lead the evaluation or probe.
unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    guard(NGX_OK as ngx_int_t, || {
        let process = ngx::ffi::ngx_process as u32;
        if process != NGX_PROCESS_WORKER && process != NGX_PROCESS_SINGLE {
            return NGX_OK as ngx_int_t;
        }
        let Some(main) = MainConf::of_cycle(cycle) else {
            return NGX_OK as ngx_int_t;
        };
        if main.services.is_empty() {
            return NGX_OK as ngx_int_t;
        }
        signing::refresh_all(main, ngx::ffi::ngx_time() as u64, (*cycle).log);
        fastpath::start(cycle, main);
        tick::start(cycle);
        NGX_OK as ngx_int_t
    })
}

/// A worker exits: every delayed reply has been sent (their timers hold
/// the exit), so the worker's duplicate descriptors and the fast path's
/// buffers can go.
unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    guard((), || {
        replies::close_all();
        fastpath::stop();
    });
}
