//! The stream listening sockets and the server behind each of their
//! addresses, as nginx arranged them after reading the configuration. Its
//! layout changed in nginx 1.25.5, when stream servers gained names: an
//! address's configuration then names its default server instead of a
//! configuration context.

use crate::conf::SrvConf;
use crate::util::ip_of;
use ngx::ffi::{
    ngx_listening_t, ngx_stream_addr_conf_t, ngx_stream_core_srv_conf_t, ngx_stream_in6_addr_t, ngx_stream_in_addr_t,
    ngx_stream_init_connection, ngx_stream_port_t,
};
use std::net::IpAddr;

/// Whether `ls` is a listening socket of the stream module.
pub fn is_stream(ls: &ngx_listening_t) -> bool {
    ls.handler.map(|h| h as usize) == Some(ngx_stream_init_connection as *const () as usize)
}

/// The addresses a stream listening socket serves, each with its
/// configuration. The address is `None` for the entry that takes every
/// datagram or connection no other entry names: the only entry of a socket
/// bound to one address, or the wildcard of a port with several (as in
/// nginx's stream dispatch, it comes last).
///
/// # Safety
/// `ls` must be a stream listening socket of a complete configuration.
pub unsafe fn addresses(ls: &ngx_listening_t) -> Vec<(Option<IpAddr>, &ngx_stream_addr_conf_t)> {
    let port = ls.servers as *const ngx_stream_port_t;
    if port.is_null() || (*port).naddrs == 0 {
        return Vec::new();
    }
    let n = (*port).naddrs;
    let family = i32::from((*ls.sockaddr).sa_family);
    (0..n)
        .map(|i| {
            let (addr, conf) = if family == libc::AF_INET6 {
                let a = &*((*port).addrs as *const ngx_stream_in6_addr_t).add(i);
                (IpAddr::from(a.addr6.__in6_u.__u6_addr8), &a.conf)
            } else {
                let a = &*((*port).addrs as *const ngx_stream_in_addr_t).add(i);
                (IpAddr::from(u32::from_be(a.addr).to_be_bytes()), &a.conf)
            };
            let key = if n > 1 && i + 1 < n { Some(addr) } else { None };
            (key, conf)
        })
        .collect()
}

/// The local address of an entry of `addresses`: the one it names, or the
/// socket's own when it is bound to one address; `None` for a wildcard.
///
/// # Safety
/// `ls` must be a live listening socket.
pub unsafe fn local_address(ls: &ngx_listening_t, key: Option<IpAddr>) -> Option<IpAddr> {
    key.or_else(|| if ls.wildcard() == 0 { ip_of(ls.sockaddr) } else { None })
}

/// The stream core configuration of an address's default server (null if
/// it has none).
///
/// # Safety
/// `conf` must be an address configuration of a complete configuration.
#[cfg(ngx_stream_virtual_servers)]
pub unsafe fn default_server(conf: &ngx_stream_addr_conf_t) -> *mut ngx_stream_core_srv_conf_t {
    conf.default_server
}

/// The stream core configuration of an address's server (null if it has
/// none).
///
/// # Safety
/// `conf` must be an address configuration of a complete configuration.
#[cfg(not(ngx_stream_virtual_servers))]
pub unsafe fn default_server(conf: &ngx_stream_addr_conf_t) -> *mut ngx_stream_core_srv_conf_t {
    if conf.ctx.is_null() {
        return std::ptr::null_mut();
    }
    crate::conf::core_srv_conf_of_ctx(conf.ctx)
}

/// The module's configuration of an address's default server.
///
/// # Safety
/// As for `default_server`.
pub unsafe fn service_conf<'a>(conf: &ngx_stream_addr_conf_t) -> Option<&'a SrvConf> {
    let cscf = default_server(conf);
    if cscf.is_null() {
        return None;
    }
    SrvConf::of_stream_ctx((*cscf).ctx)
}
