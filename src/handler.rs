//! The stream content handler: answers UDP datagrams and serves TCP
//! connections (2-byte framing, pipelining, timeouts, a connection limit)
//! from the zone built at configuration time.

use crate::conf::{MainConf, SrvConf};
use crate::dns::zone::CookieStatus;
use crate::dns::{Answered, QueryContext, Transport, Zone};
use crate::health::policy::{decide, Action, Shape};
use crate::health::rrl::{self, Limit};
use crate::health::shared::{DropReason, Table};
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

use crate::dns::framing::{next_frame, Frame, MAX_TCP_QUERY as TCP_MAX_QUERY};
/// Largest UDP response: the largest EDNS payload `dns_edns_payload` allows.
const UDP_MAX_RESPONSE: usize = 4096;

/// What the last query of a session was, for the `$dns_*` variables.
pub struct LastQuery {
    pub qname: [u8; 255],
    pub qname_len: usize,
    pub qtype: Option<u16>,
    /// `None` when no response was sent.
    pub rcode: Option<u16>,
    /// What the shedding policy did (see `ACTION_NAMES`); 0 when no query.
    pub action: u8,
    /// Service state and load when the query was decided.
    pub state: u32,
    pub load_milli: u32,
}

pub const ACTION_NAMES: [&str; 5] = ["", "answered", "delayed", "dropped", "refused"];
const ANSWERED: u8 = 1;
const DELAYED: u8 = 2;
const DROPPED: u8 = 3;
const REFUSED: u8 = 4;

/// Per-session state, allocated from the connection's pool.
pub struct SessionCtx {
    pub last: LastQuery,
    tcp: TcpState,
    /// UDP answers of this session still waiting out a delay.
    udp_pending: usize,
    /// TCP: the timer of a delayed answer; the connection pauses meanwhile.
    delay_event: ngx_event_t,
}

/// Answers waiting out a shedding delay in this worker (all services).
static mut WAITING: usize = 0;

pub(crate) fn waiting() -> usize {
    // SAFETY: nginx workers are single-threaded.
    unsafe { *ptr::addr_of!(WAITING) }
}

pub(crate) fn add_waiting(delta: isize) {
    // SAFETY: nginx workers are single-threaded.
    unsafe { *ptr::addr_of_mut!(WAITING) = waiting().saturating_add_signed(delta) }
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
    /// A delayed answer is in the output: no reads or writes until its
    /// timer fires.
    paused: bool,
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

/// The shared table, and the service's slot in it.
unsafe fn slot_of<'a>(s: *mut ngx_stream_session_t, conf: &SrvConf) -> Option<(&'a Table, usize)> {
    let main = *(*s).main_conf.add(ngx_stream_dns_service_module.ctx_index) as *const MainConf;
    let table = main.as_ref()?.table.as_ref()?;
    Some((table, conf.load.slot?))
}

/// What to do with a response that is ready.
pub(crate) enum Outcome {
    Send(usize),
    Delay(usize, u32),
    Nothing,
}

/// Answers one query into `out` and applies the shedding policy: the
/// response is sent now, later, or not at all. Counts everything; records
/// the query for the `$dns_*` variables when `last` is given.
pub(crate) unsafe fn answer_query(
    conf: &SrvConf,
    zone: &Zone,
    shared: Option<(&Table, usize)>,
    msg: &[u8],
    qctx: &QueryContext,
    out: &mut [u8],
    mut last: Option<&mut LastQuery>,
) -> Outcome {
    use std::sync::atomic::Ordering::Relaxed;
    let tcp = qctx.transport == Transport::Tcp;
    let slot = shared.map(|(table, i)| &table.slots[i]);
    let answered = zone.respond(msg, qctx, out);
    let mut note = |action: u8, rcode: Option<u16>| {
        if let Some(last) = last.as_deref_mut() {
            record(last, msg, answered);
            last.action = action;
            last.rcode = rcode;
            if let Some(slot) = slot {
                last.state = slot.state.load(Relaxed);
                last.load_milli = slot.load_milli.load(Relaxed);
            }
        }
    };
    let Some(slot) = slot else {
        note(
            if answered.is_some() { ANSWERED } else { DROPPED },
            answered.map(|a| a.rcode),
        );
        return answered.map_or(Outcome::Nothing, |a| Outcome::Send(a.len));
    };
    let counters = &slot.counters;
    let Some(a) = answered else {
        counters.dropped(DropReason::Unanswerable);
        note(DROPPED, None);
        return Outcome::Nothing;
    };
    counters.query(tcp, a.qtype);
    let shape = Shape {
        delay_us: slot.delay_us.load(Relaxed),
        drop_ppm: slot.drop_ppm.load(Relaxed),
    };
    // Response rate limiting: UDP only (TCP cannot be spoofed), and not for
    // clients that proved their address with a valid cookie.
    if let (Some(limit), Some((table, index)), Some(ip)) = (conf.rate_limit, shared, qctx.client_addr) {
        if !tcp && a.cookie != Some(CookieStatus::Valid) {
            match rrl::check(&table.rrl, index, ip, qctx.now, limit.rate, limit.slip) {
                Limit::Pass => {}
                Limit::Drop => {
                    counters.dropped(DropReason::RateLimited);
                    note(DROPPED, None);
                    return Outcome::Nothing;
                }
                Limit::Slip => {
                    return match zone.slip(msg, qctx, out) {
                        Some(r) => {
                            counters.slipped.fetch_add(1, Relaxed);
                            counters.response(r.rcode, true);
                            note(ANSWERED, Some(r.rcode));
                            Outcome::Send(r.len)
                        }
                        None => Outcome::Nothing,
                    };
                }
            }
        }
    }
    match decide(shape, conf.load.silence, qctx.random) {
        Action::Answer => {
            counters.answered.fetch_add(1, Relaxed);
            counters.response(a.rcode, a.truncated);
            note(ANSWERED, Some(a.rcode));
            Outcome::Send(a.len)
        }
        Action::Drop => {
            counters.dropped(if shape.is_silent() {
                DropReason::Silent
            } else {
                DropReason::Shed
            });
            note(DROPPED, None);
            Outcome::Nothing
        }
        Action::Refuse => match zone.refuse(msg, qctx, out) {
            Some(r) => {
                counters.refused_by_policy.fetch_add(1, Relaxed);
                counters.response(r.rcode, false);
                note(REFUSED, Some(r.rcode));
                Outcome::Send(r.len)
            }
            None => Outcome::Nothing,
        },
        Action::Delay { ms } => {
            if waiting() >= conf.load.delay_queue {
                counters.dropped(DropReason::DelayQueueFull);
                note(DROPPED, None);
                return Outcome::Nothing;
            }
            counters.delayed.fetch_add(1, Relaxed);
            counters.response(a.rcode, a.truncated);
            note(DELAYED, Some(a.rcode));
            Outcome::Delay(a.len, ms)
        }
    }
}

/// Per-worker pseudo-random numbers for TTL jitter (xorshift64*; the
/// quality needed is "not synchronized between caches", nothing more).
pub(crate) fn next_random() -> u32 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        // SAFETY: getpid has no preconditions.
        x = (u64::from(unsafe { libc::getpid() } as u32) << 32)
            ^ unsafe { ngx_current_msec } as u64
            ^ 0x9e37_79b9_7f4a_7c15;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Ordering::Relaxed);
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

pub(crate) unsafe fn local_addr(c: *mut ngx_connection_t) -> Option<std::net::IpAddr> {
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
    // A name is only reported for a message that has one after its header.
    let available = msg.len().saturating_sub(12);
    last.qname_len = qname_len.unwrap_or(0).min(last.qname.len()).min(available);
    if last.qname_len > 0 {
        last.qname[..last.qname_len].copy_from_slice(&msg[12..12 + last.qname_len]);
    }
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

/// Scratch space for UDP responses; workers are single-threaded and a
/// response is sent (or copied for later) before the next one is built.
static mut UDP_OUT: [u8; UDP_MAX_RESPONSE] = [0; UDP_MAX_RESPONSE];
/// Scratch space for further datagrams of a live UDP session.
static mut UDP_IN: [u8; 65535] = [0; 65535];

unsafe fn serve_udp(s: *mut ngx_stream_session_t, c: *mut ngx_connection_t, zone: &Zone, ctx: &mut SessionCtx) {
    let buf = (*c).buffer;
    if !buf.is_null() && (*buf).last > (*buf).pos {
        let msg = std::slice::from_raw_parts((*buf).pos, (*buf).last.offset_from((*buf).pos) as usize);
        udp_datagram(s, c, zone, ctx, msg);
        (*buf).pos = (*buf).last;
    }
    if ctx.udp_pending == 0 {
        finalize(s, NGX_STREAM_OK);
    } else {
        // More datagrams from the same client address reach this session
        // while it waits.
        (*(*c).read).handler = Some(udp_read_handler);
    }
}

unsafe fn udp_datagram(
    s: *mut ngx_stream_session_t,
    c: *mut ngx_connection_t,
    zone: &Zone,
    ctx: &mut SessionCtx,
    msg: &[u8],
) {
    let conf = srv_conf(s);
    let qctx = QueryContext {
        transport: Transport::Udp,
        local_addr: local_addr(c),
        random: next_random(),
        client_addr: ip_of((*c).sockaddr),
        now: ngx::ffi::ngx_time() as u32,
        cookies: conf.cookie_secrets.as_ref(),
    };
    // SAFETY: see UDP_OUT.
    let out = &mut *ptr::addr_of_mut!(UDP_OUT);
    match answer_query(conf, zone, slot_of(s, conf), msg, &qctx, out, Some(&mut ctx.last)) {
        Outcome::Send(len) => {
            if let Some(send) = (*c).send {
                // Send errors are logged by nginx's UDP send.
                send(c, out.as_mut_ptr(), len);
            }
        }
        Outcome::Delay(len, ms) => {
            if !delay_udp(c, ctx, &out[..len], ms) {
                if let Some(send) = (*c).send {
                    send(c, out.as_mut_ptr(), len);
                }
            }
        }
        Outcome::Nothing => {}
    }
}

/// A UDP answer waiting out its delay.
#[repr(C)]
struct DelayedDatagram {
    event: ngx_event_t,
    connection: *mut ngx_connection_t,
    len: usize,
    // followed by `len` bytes of response
}

unsafe fn delay_udp(c: *mut ngx_connection_t, ctx: &mut SessionCtx, response: &[u8], ms: u32) -> bool {
    let size = std::mem::size_of::<DelayedDatagram>() + response.len();
    let d = ngx::ffi::ngx_pcalloc((*c).pool, size) as *mut DelayedDatagram;
    if d.is_null() {
        return false;
    }
    ptr::copy_nonoverlapping(
        response.as_ptr(),
        (d as *mut u8).add(std::mem::size_of::<DelayedDatagram>()),
        response.len(),
    );
    (*d).connection = c;
    (*d).len = response.len();
    (*d).event.handler = Some(udp_delay_expired);
    (*d).event.data = d as *mut c_void;
    (*d).event.log = (*c).log;
    ngx_add_timer(&mut (*d).event, ms as ngx_msec_t);
    ctx.udp_pending += 1;
    add_waiting(1);
    true
}

unsafe extern "C" fn udp_delay_expired(ev: *mut ngx_event_t) {
    let d = (*ev).data as *mut DelayedDatagram;
    let c = (*d).connection;
    let s = (*c).data as *mut ngx_stream_session_t;
    if !guard(false, || {
        udp_delay_expired_inner(d);
        true
    }) {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

unsafe fn udp_delay_expired_inner(d: *mut DelayedDatagram) {
    let c = (*d).connection;
    let s = (*c).data as *mut ngx_stream_session_t;
    guard((), || {
        if let Some(send) = (*c).send {
            send(c, (d as *mut u8).add(std::mem::size_of::<DelayedDatagram>()), (*d).len);
        }
    });
    add_waiting(-1);
    let Some(ctx) = session_ctx(s) else { return };
    ctx.udp_pending -= 1;
    if ctx.udp_pending == 0 {
        finalize(s, NGX_STREAM_OK);
    }
}

/// Further datagrams from the client of a UDP session that is waiting to
/// send delayed answers.
unsafe extern "C" fn udp_read_handler(rev: *mut ngx_event_t) {
    let c = (*rev).data as *mut ngx_connection_t;
    let s = (*c).data as *mut ngx_stream_session_t;
    let ok = guard(false, || {
        let conf = srv_conf(s);
        let (Some(zone), Some(ctx)) = (conf.zone.as_ref(), session_ctx(s)) else {
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
            udp_datagram(s, c, zone, ctx, &input[..n as usize]);
        }
        if ctx.udp_pending == 0 {
            finalize(s, NGX_STREAM_OK);
        }
        true
    });
    if !ok {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
    }
}

/// Pool cleanup of a TCP session: give back the connection slot and cancel
/// a pending delay timer.
#[repr(C)]
struct TcpCleanup {
    conf: *const SrvConf,
    ctx: *mut SessionCtx,
}

unsafe extern "C" fn release_tcp_slot(data: *mut c_void) {
    guard((), || release_tcp_slot_inner(data));
}

unsafe fn release_tcp_slot_inner(data: *mut c_void) {
    let cleanup = &*(data as *const TcpCleanup);
    let conf = &*cleanup.conf;
    conf.tcp_connections.set(conf.tcp_connections.get().saturating_sub(1));
    let ctx = &mut *cleanup.ctx;
    if ctx.delay_event.timer_set() != 0 {
        ngx_del_timer(&mut ctx.delay_event);
        add_waiting(-1);
    }
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
    let cleanup = ngx_pool_cleanup_add((*c).pool, std::mem::size_of::<TcpCleanup>());
    let out_cap = (2 + zone.max_response_len()) * 2;
    let input = ngx_pnalloc((*c).pool, TCP_MAX_QUERY + 2) as *mut u8;
    let output = ngx_pnalloc((*c).pool, out_cap) as *mut u8;
    if cleanup.is_null() || input.is_null() || output.is_null() {
        finalize(s, ngx::ffi::NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }
    conf.tcp_connections.set(conf.tcp_connections.get() + 1);
    let data = (*cleanup).data as *mut TcpCleanup;
    (*data).conf = conf;
    (*data).ctx = ctx;
    (*cleanup).handler = Some(release_tcp_slot);

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
        paused: false,
    };
    ctx.delay_event.handler = Some(tcp_delay_expired);
    ctx.delay_event.data = c as *mut c_void;
    ctx.delay_event.log = (*c).log;
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
        let what = if ev == (*c).write {
            "sending a response"
        } else {
            "waiting for a query"
        };
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
    let slot = slot_of((*c).data as *mut ngx_stream_session_t, conf);
    loop {
        if ctx.tcp.paused {
            return Next::Wait;
        }
        let st = &mut ctx.tcp;
        // Answer every complete query in the input, as output room allows.
        while st.out_cap - st.out_last >= room {
            let input = std::slice::from_raw_parts(st.input.add(st.in_pos), st.in_last - st.in_pos);
            let len = match next_frame(input) {
                Frame::Incomplete => break,
                Frame::Invalid { len } => {
                    ngx_log_error!(
                        NGX_LOG_INFO,
                        (*c).log,
                        "DNS TCP message of length {len} rejected, closing connection"
                    );
                    return Next::Close;
                }
                Frame::Message { len } => len,
            };
            let msg = &input[2..2 + len];
            let qctx = QueryContext {
                transport: Transport::Tcp,
                local_addr: local_addr(c),
                random: next_random(),
                client_addr: ip_of((*c).sockaddr),
                now: ngx::ffi::ngx_time() as u32,
                cookies: conf.cookie_secrets.as_ref(),
            };
            let out = std::slice::from_raw_parts_mut(st.output.add(st.out_last + 2), st.out_cap - st.out_last - 2);
            let outcome = answer_query(conf, zone, slot, msg, &qctx, out, Some(&mut ctx.last));
            let (Outcome::Send(len_out) | Outcome::Delay(len_out, _)) = outcome else {
                st.in_pos += 2 + len;
                st.message_deadline = None;
                continue;
            };
            let prefix = (len_out as u16).to_be_bytes();
            ptr::copy_nonoverlapping(prefix.as_ptr(), st.output.add(st.out_last), 2);
            st.out_last += 2 + len_out;
            st.in_pos += 2 + len;
            st.message_deadline = None;
            (*c).requests += 1;
            if let Outcome::Delay(_, ms) = outcome {
                // Everything already in the output goes out with it.
                st.paused = true;
                add_waiting(1);
                ngx_add_timer(&mut ctx.delay_event, ms as ngx_msec_t);
                return Next::Wait;
            }
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
        // Queries that waited for output room are answered before reading
        // more (or closing after the client's end of stream).
        if complete_message(st) {
            continue;
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

unsafe extern "C" fn tcp_delay_expired(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let s = (*c).data as *mut ngx_stream_session_t;
    add_waiting(-1);
    if let Some(ctx) = session_ctx(s) {
        ctx.tcp.paused = false;
    }
    // Guarded inside.
    tcp_event_handler((*c).write);
}

/// Whether the input holds a whole framed message (or an invalid length,
/// which the answer loop rejects).
fn complete_message(st: &TcpState) -> bool {
    // SAFETY: the input buffer holds `in_last` initialized bytes.
    let input = unsafe { std::slice::from_raw_parts(st.input.add(st.in_pos), st.in_last - st.in_pos) };
    next_frame(input) != Frame::Incomplete
}

/// Registers interest in the events the connection waits for and arms its
/// timers: the rest of a started message must arrive by its deadline, an
/// idle connection is closed after the timeout, and so is a stalled write.
unsafe fn arm_events(c: *mut ngx_connection_t, conf: &SrvConf, st: &TcpState) -> Result<(), ()> {
    let rev = (*c).read;
    let wev = (*c).write;
    if st.paused {
        // The delay timer resumes the connection; the idle timer must not
        // fire meanwhile (the delay is at most 10 s).
        if (*rev).timer_set() != 0 {
            ngx_del_timer(rev);
        }
        (*c).set_idle(0);
        return Ok(());
    }
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
