//! The active health probe: an HTTP GET (or a bare TCP connect) to the
//! application, run inside the worker's event loop with non-blocking
//! sockets and a timer. The response read is bounded in size and time; the
//! verdict is handed to the tick leader through the shared table.

use crate::health::settings::{ProbeSettings, ProbeTarget};
use crate::health::shared::ServiceSlot;
use crate::health::sources::{judge_http_response, ProbeVerdict};
use crate::util::guard;
use ngx::ffi::{
    ngx_add_timer, ngx_close_connection, ngx_connection_log_error_e_NGX_ERROR_INFO, ngx_connection_t,
    ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_handle_read_event, ngx_handle_write_event, ngx_log_t,
    ngx_peer_connection_t, ngx_str_t, sockaddr, socklen_t, NGX_AGAIN, NGX_OK,
};
use std::net::SocketAddr;
use std::ptr;

/// Longest response read; a healthy status line and a load header or body
/// figure fit well within it, and an endless body is cut off here.
const MAX_RESPONSE: usize = 4096;

struct Probe {
    peer: ngx_peer_connection_t,
    address: libc::sockaddr_storage,
    name: String,
    name_str: ngx_str_t,
    slot: *const ServiceSlot,
    settings: *const ProbeSettings,
    request: Vec<u8>,
    sent: usize,
    response: Vec<u8>,
    connected: bool,
}

pub(crate) fn to_sockaddr(addr: SocketAddr, storage: &mut libc::sockaddr_storage) -> socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as _;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>() as socklen_t
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as _;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>() as socklen_t
        }
    }
}

/// Starts a non-blocking connection of `kind` to `to` through nginx's peer
/// connection, which keeps pointers to `address` and `name_str` (pointing at
/// `name`): the caller holds all of them at a fixed place (a `Box`) until the
/// connection ends. `Ok(true)` when connected already, `Ok(false)` while in
/// progress; on failure nothing is left open.
///
/// # Safety
/// `log` must be a live log; the arguments must outlive the connection.
pub(crate) unsafe fn connect(
    peer: &mut ngx_peer_connection_t,
    address: &mut libc::sockaddr_storage,
    name_str: &mut ngx_str_t,
    name: &str,
    to: SocketAddr,
    kind: libc::c_int,
    log: *mut ngx_log_t,
) -> Result<bool, ()> {
    let socklen = to_sockaddr(to, address);
    *name_str = ngx_str_t {
        len: name.len(),
        data: name.as_ptr() as *mut u8,
    };
    peer.sockaddr = address as *mut _ as *mut sockaddr;
    peer.socklen = socklen;
    peer.name = name_str;
    peer.get = Some(ngx_event_get_peer);
    peer.log = log;
    peer.set_log_error(ngx_connection_log_error_e_NGX_ERROR_INFO as _);
    peer.type_ = kind;
    let rc = ngx_event_connect_peer(peer);
    if rc != NGX_OK as isize && rc != NGX_AGAIN as isize {
        if !peer.connection.is_null() {
            ngx_close_connection(peer.connection);
        }
        return Err(());
    }
    Ok(rc == NGX_OK as isize)
}

/// Starts one probe; its result reaches `slot` when it ends.
pub unsafe fn start(settings: &ProbeSettings, slot: &ServiceSlot, log: *mut ngx_log_t) {
    let mut probe = Box::new(Probe {
        peer: std::mem::zeroed(),
        address: std::mem::zeroed(),
        name: settings.target.addr().to_string(),
        name_str: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        slot,
        settings,
        request: settings.target.request(),
        sent: 0,
        response: Vec::with_capacity(MAX_RESPONSE),
        connected: false,
    });
    let p = &mut *probe;
    let to = settings.target.addr();
    let Ok(connected_now) = connect(
        &mut p.peer,
        &mut p.address,
        &mut p.name_str,
        &p.name,
        to,
        libc::SOCK_STREAM,
        log,
    ) else {
        slot.post_probe_result(false, None);
        return;
    };
    let c = probe.peer.connection;
    let probe = Box::into_raw(probe);
    watch(c, probe as *mut _, on_event, (*settings).timeout_ms, log);
    if connected_now {
        (*probe).connected = true;
        step(probe, c);
    }
}

/// Hands a connection from `connect` to its owner: `data` and `handler`
/// for both events, the log, and a read timeout. The events are
/// cancelable: an exiting worker does not wait for the exchange; the next
/// configuration's leader starts again.
pub unsafe fn watch(
    c: *mut ngx_connection_t,
    data: *mut std::ffi::c_void,
    handler: unsafe extern "C" fn(*mut ngx_event_t),
    timeout_ms: u64,
    log: *mut ngx_log_t,
) {
    (*c).data = data;
    (*c).log = log;
    for ev in [(*c).read, (*c).write] {
        (*ev).handler = Some(handler);
        (*ev).log = log;
        (*ev).set_cancelable(1);
    }
    ngx_add_timer((*c).read, timeout_ms as _);
}

unsafe extern "C" fn on_event(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let probe = (*c).data as *mut Probe;
    let finished = guard(Some((false, None)), || {
        if (*ev).timedout() != 0 {
            return Some((false, None));
        }
        if !(*probe).connected {
            if !connect_succeeded(c) {
                return Some((false, None));
            }
            (*probe).connected = true;
        }
        step_inner(probe, c)
    });
    if let Some((ok, load)) = finished {
        finish(probe, c, ok, load);
    }
}

unsafe fn step(probe: *mut Probe, c: *mut ngx_connection_t) {
    let finished = guard(Some((false, None)), || step_inner(probe, c));
    if let Some((ok, load)) = finished {
        finish(probe, c, ok, load);
    }
}

pub(crate) unsafe fn connect_succeeded(c: *mut ngx_connection_t) -> bool {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let rc = libc::getsockopt(
        (*c).fd,
        libc::SOL_SOCKET,
        libc::SO_ERROR,
        &mut err as *mut _ as *mut _,
        &mut len,
    );
    rc == 0 && err == 0
}

/// Advances the probe; `Some` when it has a verdict.
unsafe fn step_inner(probe: *mut Probe, c: *mut ngx_connection_t) -> Option<(bool, Option<f64>)> {
    let p = &mut *probe;
    let settings = &*p.settings;
    let ProbeTarget::Http { .. } = settings.target else {
        // A TCP probe passes once the connection is established.
        return Some((true, None));
    };
    let send = (*c).send?;
    while p.sent < p.request.len() {
        let n = send(c, p.request.as_mut_ptr().add(p.sent), p.request.len() - p.sent);
        if n == NGX_AGAIN as isize {
            if ngx_handle_write_event((*c).write, 0) != NGX_OK as isize {
                return Some((false, None));
            }
            return None;
        }
        if n <= 0 {
            return Some((false, None));
        }
        p.sent += n as usize;
    }
    let recv = (*c).recv?;
    let mut buf = [0u8; 1024];
    loop {
        let room = (MAX_RESPONSE - p.response.len()).min(buf.len());
        let n = if room == 0 { 0 } else { recv(c, buf.as_mut_ptr(), room) };
        if n == NGX_AGAIN as isize {
            if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
                return Some((false, None));
            }
            return match judge_http_response(&p.response, &settings.load_in, false) {
                ProbeVerdict::Incomplete => None,
                ProbeVerdict::Healthy { load } => Some((true, load)),
                ProbeVerdict::Unhealthy => Some((false, None)),
            };
        }
        if n < 0 {
            return Some((false, None));
        }
        if n > 0 {
            p.response.extend_from_slice(&buf[..n as usize]);
            if p.response.len() < MAX_RESPONSE {
                continue;
            }
        }
        // End of stream, or the read limit: the response is as complete as it gets.
        return match judge_http_response(&p.response, &settings.load_in, true) {
            ProbeVerdict::Healthy { load } => Some((true, load)),
            _ => Some((false, None)),
        };
    }
}

unsafe fn finish(probe: *mut Probe, c: *mut ngx_connection_t, ok: bool, load: Option<f64>) {
    let probe = Box::from_raw(probe);
    (*probe.slot).post_probe_result(ok, load);
    ngx_close_connection(c);
    drop(probe);
}
