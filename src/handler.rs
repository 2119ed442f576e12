//! The stream content handler: answers UDP datagrams and serves TCP
//! connections (2-byte framing, pipelining, timeouts, a connection limit)
//! from the zone built at configuration time.

use crate::conf::SrvConf;
use crate::dns::{Answered, QueryContext, Transport, Zone};
use crate::module::ngx_stream_dns_service_module;
use crate::util::{guard, ip_of};
use ngx::ffi::{
    ngx_add_timer, ngx_connection_local_sockaddr, ngx_connection_t, ngx_current_msec, ngx_del_timer, ngx_event_t,
    ngx_handle_read_event, ngx_handle_write_event, ngx_msec_t, ngx_pnalloc, ngx_pool_cleanup_add,
    ngx_stream_finalize_session, ngx_stream_session_t, NGX_AGAIN, NGX_LOG_INFO, NGX_OK, NGX_STREAM_OK,
    NGX_STREAM_SERVICE_UNAVAILABLE,
};
use ngx::ngx_log_error;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest TCP query accepted (a query is a few hundred octets; longer
/// messages are not queries this server can answer).
const TCP_MAX_QUERY: usize = 4096;
/// Largest UDP response: the largest EDNS payload `dns_edns_payload` allows.
const UDP_MAX_RESPONSE: usize = 4096;

/// What the last query of a session was, for the `$dns_*` variables.
pub struct LastQuery {
    pub qname: [u8; 255],
    pub qname_len: usize,
    pub qtype: Option<u16>,
    /// `None` when no response was sent.
    pub rcode: Option<u16>,
}

/// Per-session state, allocated from the connection's pool.
pub struct SessionCtx {
    pub last: LastQuery,
    tcp: TcpState,
}

struct TcpState {
    input: *mut u8,
    in_pos: usize,
    in_last: usize,
    output: *mut u8,
    out_cap: usize,
    out_pos: usize,
    out_last: usize,
    /// When the message being received must be complete.
    message_deadline: Option<ngx_msec_t>,
    eof: bool,
}

/// The session's context, if the DNS handler created one.
///
/// # Safety
/// `s` must be a live stream session.
pub unsafe fn session_ctx<'a>(s: *mut ngx_stream_session_t) -> Option<&'a mut SessionCtx> {
    let ctx = *(*s).ctx.add(ngx_stream_dns_service_module.ctx_index) as *mut SessionCtx;
    ctx.as_mut()
}

unsafe fn srv_conf<'a>(s: *mut ngx_stream_session_t) -> &'a SrvConf {
    &*(*(*s).srv_conf.add(ngx_stream_dns_service_module.ctx_index) as *const SrvConf)
}

/// Per-worker pseudo-random numbers for TTL jitter (xorshift64*; the
/// quality needed is "not synchronized between caches", nothing more).
fn next_random() -> u32 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        // SAFETY: getpid has no preconditions.
        x = (u64::from(unsafe { libc::getpid() } as u32) << 32) ^ unsafe { ngx_current_msec } as u64 ^ 0x9e37_79b9_7f4a_7c15;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

unsafe fn local_addr(c: *mut ngx_connection_t) -> Option<std::net::IpAddr> {
    if ngx_connection_local_sockaddr(c, ptr::null_mut(), 0) != NGX_OK as isize {
        return None;
    }
    ip_of((*c).local_sockaddr)
}

fn record(last: &mut LastQuery, msg: &[u8], answered: Option<Answered>) {
    let (qtype, qname_len) = match answered {
        Some(a) => (a.qtype, a.qname_len),
        None => match crate::dns::zone::peek_question(msg) {
            Some((qtype, len)) => (Some(qtype), Some(len)),
            None => (None, None),
        },
    };
    last.qtype = qtype;
    last.qname_len = qname_len.unwrap_or(0).min(last.qname.len());
    last.qname[..last.qname_len].copy_from_slice(&msg[12..12 + last.qname_len]);
    last.rcode = answered.map(|a| a.rcode);
}

unsafe fn finalize(s: *mut ngx_stream_session_t, rc: u32) {
    ngx_stream_finalize_session(s, rc as _);
}

/// The content handler set on every stream server with `dns_service`.
pub unsafe extern "C" fn dns_handler(s: *mut ngx_stream_session_t) {
    let ok = guard(false, || {
        serve(s);
        true
    });
    if !ok {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

unsafe fn serve(s: *mut ngx_stream_session_t) {
    let c = (*s).connection;
    let conf = srv_conf(s);
    let Some(zone) = conf.zone.as_ref() else {
        finalize(s, NGX_STREAM_SERVICE_UNAVAILABLE);
        return;
    };
    let ctx = ngx::ffi::ngx_pcalloc((*c).pool, std::mem::size_of::<SessionCtx>()) as *mut SessionCtx;
    if ctx.is_null() {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }
    // All-zero is a valid SessionCtx (no question, null buffers, None).
    *(*s).ctx.add(ngx_stream_dns_service_module.ctx_index) = ctx as *mut c_void;
    (*(*c).log).action = c"serving DNS".as_ptr() as *mut _;

    if (*c).type_ == libc::SOCK_DGRAM {
        serve_udp(s, c, zone, &mut *ctx);
    } else {
        start_tcp(s, c, conf, zone, &mut *ctx);
    }
}

unsafe fn serve_udp(s: *mut ngx_stream_session_t, c: *mut ngx_connection_t, zone: &Zone, ctx: &mut SessionCtx) {
    static mut OUT: [u8; UDP_MAX_RESPONSE] = [0; UDP_MAX_RESPONSE];
    let buf = (*c).buffer;
    if buf.is_null() || (*buf).last <= (*buf).pos {
        finalize(s, NGX_STREAM_OK);
        return;
    }
    let msg = std::slice::from_raw_parts((*buf).pos, (*buf).last.offset_from((*buf).pos) as usize);
    let qctx = QueryContext { transport: Transport::Udp, local_addr: local_addr(c), random: next_random() };
    // SAFETY: workers are single-threaded and the buffer is used only within
    // this call, so it is never aliased.
    let out = &mut *ptr::addr_of_mut!(OUT);
    let answered = zone.respond(msg, &qctx, out);
    record(&mut ctx.last, msg, answered);
    (*buf).pos = (*buf).last;
    if let (Some(a), Some(send)) = (answered, (*c).send) {
        // Send errors are logged by nginx's UDP send.
        send(c, out.as_mut_ptr(), a.len);
    }
    finalize(s, NGX_STREAM_OK);
}

unsafe extern "C" fn release_tcp_slot(data: *mut c_void) {
    let conf = &*(data as *const SrvConf);
    conf.tcp_connections.set(conf.tcp_connections.get().saturating_sub(1));
}

unsafe fn start_tcp(
    s: *mut ngx_stream_session_t,
    c: *mut ngx_connection_t,
    conf: &SrvConf,
    zone: &Zone,
    ctx: &mut SessionCtx,
) {
    if conf.tcp_connections.get() >= conf.tcp_max_connections_limit {
        ngx_log_error!(
            NGX_LOG_INFO,
            (*c).log,
            "dns_tcp_max_connections ({}) reached, closing connection",
            conf.tcp_max_connections_limit
        );
        finalize(s, NGX_STREAM_SERVICE_UNAVAILABLE);
        return;
    }
    let cleanup = ngx_pool_cleanup_add((*c).pool, 0);
    let out_cap = (2 + zone.max_response_len()) * 2;
    let input = ngx_pnalloc((*c).pool, TCP_MAX_QUERY + 2) as *mut u8;
    let output = ngx_pnalloc((*c).pool, out_cap) as *mut u8;
    if cleanup.is_null() || input.is_null() || output.is_null() {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }
    conf.tcp_connections.set(conf.tcp_connections.get() + 1);
    (*cleanup).handler = Some(release_tcp_slot);
    (*cleanup).data = conf as *const SrvConf as *mut c_void;

    ctx.tcp = TcpState {
        input,
        in_pos: 0,
        in_last: 0,
        output,
        out_cap,
        out_pos: 0,
        out_last: 0,
        message_deadline: None,
        eof: false,
    };
    // Data a preread phase already read is the start of the stream.
    let buf = (*c).buffer;
    if !buf.is_null() && (*buf).last > (*buf).pos {
        let len = ((*buf).last.offset_from((*buf).pos) as usize).min(TCP_MAX_QUERY + 2);
        ptr::copy_nonoverlapping((*buf).pos, input, len);
        ctx.tcp.in_last = len;
        (*buf).pos = (*buf).pos.add(len);
    }
    (*(*c).read).handler = Some(tcp_event_handler);
    (*(*c).write).handler = Some(tcp_event_handler);
    tcp_event_handler((*c).read);
}

unsafe extern "C" fn tcp_event_handler(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let s = (*c).data as *mut ngx_stream_session_t;
    let ok = guard(false, || {
        tcp_step(s, c, ev);
        true
    });
    if !ok {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

enum Next {
    Wait,
    Close,
}

unsafe fn tcp_step(s: *mut ngx_stream_session_t, c: *mut ngx_connection_t, ev: *mut ngx_event_t) {
    if (*ev).timedout() != 0 {
        let what = if ev == (*c).write { "sending a response" } else { "waiting for a query" };
        ngx_log_error!(NGX_LOG_INFO, (*c).log, "DNS TCP client timed out while {what}");
        finalize(s, NGX_STREAM_OK);
        return;
    }
    if (*c).close() != 0 {
        // nginx is shutting down and closes idle connections.
        finalize(s, NGX_STREAM_OK);
        return;
    }
    let conf = srv_conf(s);
    let (Some(zone), Some(ctx)) = (conf.zone.as_ref(), session_ctx(s)) else {
        finalize(s, NGX_STREAM_OK);
        return;
    };
    match tcp_run(c, conf, zone, ctx) {
        Next::Close => finalize(s, NGX_STREAM_OK),
        Next::Wait => {
            if arm_events(c, conf, &ctx.tcp).is_err() {
                finalize(s, NGX_STREAM_OK);
            }
        }
    }
}

/// Answers complete queries, writes answers, reads more, until the socket
/// would block or the connection is done.
unsafe fn tcp_run(c: *mut ngx_connection_t, conf: &SrvConf, zone: &Zone, ctx: &mut SessionCtx) -> Next {
    let room = 2 + zone.max_response_len();
    loop {
        let st = &mut ctx.tcp;
        // Answer every complete query in the input, as output room allows.
        while st.out_cap - st.out_last >= room {
            let available = st.in_last - st.in_pos;
            if available < 2 {
                break;
            }
            let input = std::slice::from_raw_parts(st.input.add(st.in_pos), available);
            let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
            if len == 0 || len > TCP_MAX_QUERY {
                ngx_log_error!(NGX_LOG_INFO, (*c).log, "DNS TCP message of length {len} rejected, closing connection");
                return Next::Close;
            }
            if available < 2 + len {
                break;
            }
            let msg = &input[2..2 + len];
            let qctx = QueryContext { transport: Transport::Tcp, local_addr: local_addr(c), random: next_random() };
            let out = std::slice::from_raw_parts_mut(st.output.add(st.out_last + 2), st.out_cap - st.out_last - 2);
            let answered = zone.respond(msg, &qctx, out);
            record(&mut ctx.last, msg, answered);
            if let Some(a) = answered {
                let prefix = (a.len as u16).to_be_bytes();
                ptr::copy_nonoverlapping(prefix.as_ptr(), st.output.add(st.out_last), 2);
                st.out_last += 2 + a.len;
            }
            st.in_pos += 2 + len;
            st.message_deadline = None;
            (*c).requests += 1;
        }
        // Keep the unread part at the start of the input buffer.
        if st.in_pos == st.in_last {
            st.in_pos = 0;
            st.in_last = 0;
        } else if st.in_pos > 0 {
            ptr::copy(st.input.add(st.in_pos), st.input, st.in_last - st.in_pos);
            st.in_last -= st.in_pos;
            st.in_pos = 0;
        }
        // Write what is pending.
        if st.out_last > st.out_pos {
            let Some(send) = (*c).send else { return Next::Close };
            let n = send(c, st.output.add(st.out_pos), st.out_last - st.out_pos);
            if n == NGX_AGAIN as isize {
                return Next::Wait;
            }
            if n < 0 {
                return Next::Close;
            }
            st.out_pos += n as usize;
            if st.out_pos < st.out_last {
                return Next::Wait;
            }
            st.out_pos = 0;
            st.out_last = 0;
        }
        if st.eof {
            return Next::Close;
        }
        // Read more.
        let free = TCP_MAX_QUERY + 2 - st.in_last;
        if free == 0 {
            return Next::Close;
        }
        let Some(recv) = (*c).recv else { return Next::Close };
        let n = recv(c, st.input.add(st.in_last), free);
        if n == NGX_AGAIN as isize {
            if st.in_last > 0 && st.message_deadline.is_none() {
                st.message_deadline = Some(ngx_current_msec + conf.tcp_timeout_ms);
            }
            return Next::Wait;
        }
        if n == 0 {
            // The client is done sending: answer what is complete, then close.
            st.eof = true;
            continue;
        }
        if n < 0 {
            return Next::Close;
        }
        st.in_last += n as usize;
        if st.message_deadline.is_none() {
            st.message_deadline = Some(ngx_current_msec + conf.tcp_timeout_ms);
        }
    }
}

/// Registers interest in the events the connection waits for and arms its
/// timers: the rest of a started message must arrive by its deadline, an
/// idle connection is closed after the timeout, and so is a stalled write.
unsafe fn arm_events(c: *mut ngx_connection_t, conf: &SrvConf, st: &TcpState) -> Result<(), ()> {
    let rev = (*c).read;
    let wev = (*c).write;
    let writing = st.out_last > st.out_pos;
    if writing {
        if ngx_handle_write_event(wev, 0) != NGX_OK as isize {
            return Err(());
        }
        ngx_add_timer(wev, conf.tcp_timeout_ms);
    } else if (*wev).timer_set() != 0 {
        ngx_del_timer(wev);
    }
    if ngx_handle_read_event(rev, 0) != NGX_OK as isize {
        return Err(());
    }
    let timeout = match st.message_deadline {
        Some(deadline) if st.in_last > 0 => deadline.saturating_sub(ngx_current_msec).max(1),
        _ => conf.tcp_timeout_ms,
    };
    // `ngx_add_timer` keeps an existing timer within its lazy delay; a
    // deadline must not move later, so re-arm exactly.
    if (*rev).timer_set() != 0 {
        ngx_del_timer(rev);
    }
    ngx_add_timer(rev, timeout);
    (*c).set_idle(u32::from(st.in_last == 0 && !writing));
    Ok(())
}
