//! Module registration. The shared object holds three nginx modules:
//! - `ngx_stream_dns_service_module`: the responder and its directives;
//! - `ngx_http_dns_service_status_module`: the `dns_service_status` handler;
//! - `ngx_dns_service_module`: a core module whose only job is to resolve
//!   `dns_load_upstream` names once the whole configuration (http and stream
//!   blocks, in any order) has been read, so `nginx -t` rejects bad names.

use crate::{conf, load, status, variables};
use ngx::ffi::{
    ngx_command_t, ngx_core_module_t, ngx_cycle_t, ngx_http_module_t, ngx_module_t, ngx_str_t, ngx_stream_module_t,
    ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_NOARGS, NGX_CONF_TAKE1, NGX_CONF_TAKE12, NGX_CORE_MODULE, NGX_HTTP_LOC_CONF,
    NGX_HTTP_LOC_CONF_OFFSET, NGX_HTTP_MODULE, NGX_LOG_EMERG, NGX_STREAM_MODULE, NGX_STREAM_SRV_CONF,
    NGX_STREAM_SRV_CONF_OFFSET,
};
use ngx::ngx_log_error;
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

static mut STREAM_COMMANDS: [ngx_command_t; 23] = [
    command!("dns_service", NGX_CONF_TAKE1, conf::set_service),
    command!("dns_nameservers", NGX_CONF_1MORE, conf::set_nameservers),
    command!("dns_address", NGX_CONF_1MORE, conf::set_address),
    command!("dns_ttl", NGX_CONF_TAKE12, conf::set_ttl),
    command!("dns_soa", NGX_CONF_1MORE, conf::set_soa),
    command!("dns_edns_payload", NGX_CONF_TAKE1, conf::set_edns_payload),
    command!("dns_nsid", NGX_CONF_TAKE1, conf::set_nsid),
    command!("dns_tcp_timeout", NGX_CONF_TAKE1, conf::set_tcp_timeout),
    command!("dns_tcp_max_connections", NGX_CONF_TAKE1, conf::set_tcp_max_connections),
    command!("dns_load_upstream", NGX_CONF_TAKE12, conf::set_load_upstream),
    command!("dns_load_probe", NGX_CONF_1MORE, conf::set_load_probe),
    command!("dns_load_file", NGX_CONF_1MORE, conf::set_load_file),
    command!("dns_load_host", NGX_CONF_TAKE1, conf::set_load_host),
    command!("dns_load_smoothing", NGX_CONF_TAKE1, conf::set_load_smoothing),
    command!("dns_shed", NGX_CONF_1MORE, conf::set_shed),
    command!("dns_silence", NGX_CONF_TAKE1, conf::set_silence),
    command!("dns_delay_queue", NGX_CONF_TAKE1, conf::set_delay_queue),
    command!("dns_udp_fast_path", NGX_CONF_TAKE1, conf::set_udp_fast_path),
    command!("dns_wildcard", NGX_CONF_TAKE1, conf::set_wildcard),
    command!("dns_cookies", NGX_CONF_TAKE1, conf::set_cookies),
    command!("dns_cookie_secret", NGX_CONF_TAKE1, conf::set_cookie_secret),
    command!("dns_rate_limit", NGX_CONF_TAKE12, conf::set_rate_limit),
    ngx_command_t::empty(),
];

static STREAM_CTX: ngx_stream_module_t = ngx_stream_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: Some(conf::postconfiguration),
    create_main_conf: Some(conf::create_main_conf),
    init_main_conf: None,
    create_srv_conf: Some(conf::create_srv_conf),
    merge_srv_conf: Some(conf::merge_srv_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_stream_dns_service_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(STREAM_CTX) as *mut _,
    commands: ptr::addr_of_mut!(STREAM_COMMANDS) as *mut ngx_command_t,
    type_: NGX_STREAM_MODULE as ngx_uint_t,
    init_process: Some(load::init_process),
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

/// Runs once the whole configuration is parsed (also for `nginx -t` and on
/// reload, where an error keeps the running configuration).
unsafe extern "C" fn init_core_conf(cycle: *mut ngx_cycle_t, _conf: *mut c_void) -> *mut c_char {
    crate::util::guard(usize::MAX as *mut c_char, || {
        let Some(main) = load::worker_main_conf(cycle) else {
            return ptr::null_mut();
        };
        match crate::upstream::resolve(cycle, main) {
            Ok(()) => ptr::null_mut(),
            Err(message) => {
                ngx_log_error!(NGX_LOG_EMERG, (*cycle).log, "{message}");
                usize::MAX as *mut c_char
            }
        }
    })
}
