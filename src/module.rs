//! Module registration: the directive table, the stream module context and
//! the `ngx_module_t` nginx loads.

use crate::{conf, variables};
use ngx::ffi::{
    ngx_command_t, ngx_module_t, ngx_str_t, ngx_stream_module_t, ngx_uint_t, NGX_CONF_1MORE, NGX_CONF_TAKE1,
    NGX_CONF_TAKE12, NGX_STREAM_MODULE, NGX_STREAM_SRV_CONF, NGX_STREAM_SRV_CONF_OFFSET,
};
use std::ptr;

macro_rules! command {
    ($name:literal, $args:expr, $set:path) => {
        ngx_command_t {
            name: ngx_str_t { len: $name.len(), data: concat!($name, "\0").as_ptr() as *mut u8 },
            type_: (NGX_STREAM_SRV_CONF | $args) as ngx_uint_t,
            set: Some($set),
            conf: NGX_STREAM_SRV_CONF_OFFSET,
            offset: 0,
            post: ptr::null_mut(),
        }
    };
}

static mut COMMANDS: [ngx_command_t; 10] = [
    command!("dns_service", NGX_CONF_TAKE1, conf::set_service),
    command!("dns_nameservers", NGX_CONF_1MORE, conf::set_nameservers),
    command!("dns_address", NGX_CONF_1MORE, conf::set_address),
    command!("dns_ttl", NGX_CONF_TAKE12, conf::set_ttl),
    command!("dns_soa", NGX_CONF_1MORE, conf::set_soa),
    command!("dns_edns_payload", NGX_CONF_TAKE1, conf::set_edns_payload),
    command!("dns_nsid", NGX_CONF_TAKE1, conf::set_nsid),
    command!("dns_tcp_timeout", NGX_CONF_TAKE1, conf::set_tcp_timeout),
    command!("dns_tcp_max_connections", NGX_CONF_TAKE1, conf::set_tcp_max_connections),
    ngx_command_t::empty(),
];

static MODULE_CTX: ngx_stream_module_t = ngx_stream_module_t {
    preconfiguration: Some(variables::add_variables),
    postconfiguration: None,
    create_main_conf: None,
    init_main_conf: None,
    create_srv_conf: Some(conf::create_srv_conf),
    merge_srv_conf: Some(conf::merge_srv_conf),
};

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_stream_dns_service_module: ngx_module_t = ngx_module_t {
    ctx: ptr::addr_of!(MODULE_CTX) as *mut _,
    commands: ptr::addr_of_mut!(COMMANDS) as *mut ngx_command_t,
    type_: NGX_STREAM_MODULE as ngx_uint_t,
    ..ngx_module_t::default()
};
