//! The stream content handler, set on every server with `dns_service`, and
//! the UDP session path: nginx's own per-datagram session, used when the
//! fast path does not own the listening socket (`dns_udp_fast_path off`,
//! several servers by name on one address). TCP connections continue in
//! `tcp`.
//!
//! A UDP session answers its datagram and finalizes at once, unless the
//! answer waits out a shedding delay; then further datagrams from the same
//! client address reach the same session until its delayed answers are
//! sent.

use crate::conf::{session_ctx_slot, session_service, SrvConf};
use crate::dns::Transport;
use crate::replies::{self, Control};
use crate::serve::{self, LastQuery, Outcome, Service};
use crate::tcp;
use crate::util::{finalize, guard, ip_of, local_addr};
use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_del_timer, ngx_event_t, ngx_msec_t, ngx_pcalloc, ngx_pool_cleanup_add,
    ngx_stream_session_t, NGX_STREAM_INTERNAL_SERVER_ERROR, NGX_STREAM_OK, NGX_STREAM_SERVICE_UNAVAILABLE,
};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

/// A UDP session's context, allocated zeroed from the connection's pool
/// (see `conf::session_ctx_slot` for why `last` comes first).
#[repr(C)]
struct UdpSession {
    last: LastQuery,
    /// Answers of this session still waiting out a delay.
    pending: usize,
    /// Every answer this session delayed (in its pool), newest first, so
    /// that the session's end cancels the timers still set.
    delayed: *mut DelayedDatagram,
}

/// The UDP session context of `s`, if the handler created one.
unsafe fn udp_session<'a>(s: *mut ngx_stream_session_t) -> Option<&'a mut UdpSession> {
    (*session_ctx_slot(s) as *mut UdpSession).as_mut()
}

/// The content handler set on every stream server with `dns_service`.
pub unsafe extern "C" fn dns_handler(s: *mut ngx_stream_session_t) {
    if !guard(false, || {
        start(s);
        true
    }) {
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

unsafe fn start(s: *mut ngx_stream_session_t) {
    let c = (*s).connection;
    let Some((conf, service)) = session_service(s) else {
        finalize(s, NGX_STREAM_SERVICE_UNAVAILABLE);
        return;
    };
    (*(*c).log).action = c"serving DNS".as_ptr() as *mut _;
    if (*c).type_ != libc::SOCK_DGRAM {
        tcp::start(s, c, conf, service);
        return;
    }
    let ctx = ngx_pcalloc((*c).pool, std::mem::size_of::<UdpSession>()) as *mut UdpSession;
    if ctx.is_null() {
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }
    *session_ctx_slot(s) = ctx as *mut c_void;
    serve_udp(s, c, conf, service, &mut *ctx);
}

// ---------------------------------------------------------------------------
// UDP session path
// ---------------------------------------------------------------------------

/// Scratch space for UDP responses; workers are single-threaded and a
/// response is sent (or copied for later) before the next one is built.
static mut UDP_OUT: [u8; serve::MAX_UDP_RESPONSE] = [0; serve::MAX_UDP_RESPONSE];
/// Scratch space for further datagrams of a live UDP session.
static mut UDP_IN: [u8; 65535] = [0; 65535];

unsafe fn serve_udp(
    s: *mut ngx_stream_session_t,
    c: *mut ngx_connection_t,
    conf: &SrvConf,
    service: Service,
    ctx: &mut UdpSession,
) {
    let buf = (*c).buffer;
    if !buf.is_null() && (*buf).last > (*buf).pos {
        let msg = std::slice::from_raw_parts((*buf).pos, (*buf).last.offset_from((*buf).pos) as usize);
        udp_datagram(c, conf, service, ctx, msg);
        (*buf).pos = (*buf).last;
    }
    if ctx.pending == 0 {
        finalize(s, NGX_STREAM_OK);
    } else {
        (*(*c).read).handler = Some(udp_read_handler);
    }
}

unsafe fn udp_datagram(c: *mut ngx_connection_t, conf: &SrvConf, service: Service, ctx: &mut UdpSession, msg: &[u8]) {
    let qctx = conf.query_context(
        Transport::Udp,
        local_addr(c),
        ip_of((*c).sockaddr),
        ngx::ffi::ngx_time() as u32,
    );
    // SAFETY: see UDP_OUT.
    let out = &mut *ptr::addr_of_mut!(UDP_OUT);
    let served = service.answer(msg, &qctx, out, serve::held_back(), Some(&mut ctx.last));
    if served.reason == serve::Reason::Updated {
        crate::tick::soon();
    }
    crate::signing::report(conf, &served, (*c).log);
    crate::log::debug!((*c).log, "{}", served.log_line(&service, false, qctx.client_addr));
    match served.outcome {
        Outcome::Send(len) => send_now(c, service, &mut out[..len]),
        Outcome::Delay(len, ms) => {
            if !delay_udp(c, ctx, &out[..len], ms) {
                send_now(c, service, &mut out[..len]);
            }
        }
        Outcome::Nothing => {}
    }
}

/// Sends a reply at once. nginx's `send` of a UDP connection is a plain
/// `sendto`, so on a wildcard listening socket the reply carries the
/// address the query arrived on as its source (as nginx's own `send_chain`
/// does); otherwise it would leave from another address of the host and
/// the client would drop it.
unsafe fn send_now(c: *mut ngx_connection_t, service: Service, reply: &mut [u8]) {
    if (*(*c).listening).wildcard() != 0 {
        if let Some(local) = local_addr(c) {
            let mut control = Control::default();
            let len = replies::source_control(local, &mut control);
            let peer = (*c).sockaddr as *const libc::sockaddr;
            if !replies::send((*c).fd, reply, peer, (*c).socklen, &control.0[..len]) {
                if let Some(shared) = service.shared {
                    shared.slot().counters.send_failed.fetch_add(1, Relaxed);
                }
            }
            return;
        }
    }
    if let Some(send) = (*c).send {
        // Send errors are logged by nginx's UDP send.
        send(c, reply.as_mut_ptr(), reply.len());
    }
}

/// A UDP answer waiting out its delay, in the session's pool. It is sent on
/// the worker's own duplicate of the listening socket (see `replies`): a
/// UDP session's descriptor is the listening socket's, which nginx closes
/// when the worker begins to exit.
#[repr(C)]
struct DelayedDatagram {
    event: ngx_event_t,
    connection: *mut ngx_connection_t,
    socket: libc::c_int,
    next: *mut DelayedDatagram,
    len: usize,
    // followed by `len` bytes of response
}

unsafe fn delay_udp(c: *mut ngx_connection_t, ctx: &mut UdpSession, response: &[u8], ms: u32) -> bool {
    let Some(socket) = replies::socket_of((*c).listening) else {
        return false;
    };
    if ctx.delayed.is_null() && !on_pool_cleanup(c, ctx as *mut UdpSession, cancel_delays) {
        return false;
    }
    let size = std::mem::size_of::<DelayedDatagram>() + response.len();
    let d = ngx_pcalloc((*c).pool, size) as *mut DelayedDatagram;
    if d.is_null() {
        return false;
    }
    ptr::copy_nonoverlapping(
        response.as_ptr(),
        (d as *mut u8).add(std::mem::size_of::<DelayedDatagram>()),
        response.len(),
    );
    (*d).connection = c;
    (*d).socket = socket;
    (*d).len = response.len();
    (*d).next = ctx.delayed;
    ctx.delayed = d;
    (*d).event.handler = Some(udp_delay_expired);
    (*d).event.data = d as *mut c_void;
    (*d).event.log = (*c).log;
    // Not cancelable: an exiting worker sends what it holds back first.
    ngx_add_timer(&mut (*d).event, ms as ngx_msec_t);
    ctx.pending += 1;
    serve::hold();
    true
}

/// Registers `handler(data)` to run when the connection's pool is destroyed,
/// however the session ends.
unsafe fn on_pool_cleanup<T>(
    c: *mut ngx_connection_t,
    data: *mut T,
    handler: unsafe extern "C" fn(*mut c_void),
) -> bool {
    let cleanup = ngx_pool_cleanup_add((*c).pool, 0);
    if cleanup.is_null() {
        return false;
    }
    (*cleanup).data = data as *mut c_void;
    (*cleanup).handler = Some(handler);
    true
}

/// The session ends with answers still delayed (an error path): their
/// timers must not fire into the freed pool.
unsafe extern "C" fn cancel_delays(data: *mut c_void) {
    guard((), || {
        let ctx = &mut *(data as *mut UdpSession);
        let mut d = ctx.delayed;
        while !d.is_null() {
            if (*d).event.timer_set() != 0 {
                ngx_del_timer(&mut (*d).event);
                serve::release();
            }
            d = (*d).next;
        }
        ctx.delayed = ptr::null_mut();
    });
}

unsafe extern "C" fn udp_delay_expired(ev: *mut ngx_event_t) {
    let d = (*ev).data as *mut DelayedDatagram;
    let c = (*d).connection;
    let s = (*c).data as *mut ngx_stream_session_t;
    if !guard(false, || {
        send_delayed(d);
        true
    }) {
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

unsafe fn send_delayed(d: *mut DelayedDatagram) {
    let c = (*d).connection;
    let s = (*c).data as *mut ngx_stream_session_t;
    let data = std::slice::from_raw_parts((d as *const u8).add(std::mem::size_of::<DelayedDatagram>()), (*d).len);
    // On a wildcard listening socket the reply must leave from the address
    // the query arrived on.
    let mut control = Control::default();
    let control_len = match (*(*c).listening).wildcard() != 0 {
        true => local_addr(c).map_or(0, |a| replies::source_control(a, &mut control)),
        false => 0,
    };
    let sent = replies::send(
        (*d).socket,
        data,
        (*c).sockaddr as *const libc::sockaddr,
        (*c).socklen,
        &control.0[..control_len],
    );
    serve::release();
    let Some(ctx) = udp_session(s) else { return };
    if !sent {
        if let Some(shared) = session_service(s).and_then(|(_, service)| service.shared) {
            shared.slot().counters.send_failed.fetch_add(1, Relaxed);
        }
    }
    ctx.pending -= 1;
    if ctx.pending == 0 {
        finalize(s, NGX_STREAM_OK);
    }
}

/// Further datagrams from the client of a UDP session that is waiting to
/// send delayed answers.
unsafe extern "C" fn udp_read_handler(rev: *mut ngx_event_t) {
    let c = (*rev).data as *mut ngx_connection_t;
    let s = (*c).data as *mut ngx_stream_session_t;
    let ok = guard(false, || {
        let (Some((conf, service)), Some(ctx)) = (session_service(s), udp_session(s)) else {
            return false;
        };
        let Some(recv) = (*c).recv else { return false };
        // Bounded: one event delivers at most a handful of datagrams.
        for _ in 0..64 {
            // SAFETY: see UDP_IN.
            let input = &mut *ptr::addr_of_mut!(UDP_IN);
            let n = recv(c, input.as_mut_ptr(), input.len());
            if n <= 0 {
                break;
            }
            udp_datagram(c, conf, service, ctx, &input[..n as usize]);
        }
        if ctx.pending == 0 {
            finalize(s, NGX_STREAM_OK);
        }
        true
    });
    if !ok {
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}
