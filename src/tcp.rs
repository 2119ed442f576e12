//! DNS over TCP (RFC 7766): 2-byte length framing, any number of queries per
//! connection answered in order and pipelined, a deadline for each started
//! message, an idle timeout, a per-worker connection limit, and shedding
//! delays that pause the connection (everything already in the output goes
//! out with the delayed answer).

use crate::conf::{session_ctx_slot, session_service, SrvConf};
use crate::dns::framing::{next_frame, Frame, MAX_TCP_QUERY};
use crate::dns::Transport;
use crate::serve::{self, LastQuery, Outcome, Service};
use crate::util::{finalize, guard, ip_of, local_addr};
use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_current_msec, ngx_del_timer, ngx_event_t, ngx_handle_read_event,
    ngx_handle_write_event, ngx_msec_t, ngx_pnalloc, ngx_pool_cleanup_add, ngx_stream_session_t, NGX_AGAIN, NGX_OK,
    NGX_STREAM_INTERNAL_SERVER_ERROR, NGX_STREAM_OK, NGX_STREAM_SERVICE_UNAVAILABLE,
};
use std::ffi::c_void;
use std::ptr;

/// A TCP session's context, allocated zeroed from the connection's pool
/// (see `conf::session_ctx_slot` for why `last` comes first).
#[repr(C)]
struct TcpSession {
    last: LastQuery,
    tcp: TcpState,
}

/// The TCP session context of `s`, if `start` created one.
unsafe fn tcp_session<'a>(s: *mut ngx_stream_session_t) -> Option<&'a mut TcpSession> {
    (*session_ctx_slot(s) as *mut TcpSession).as_mut()
}

/// A TCP connection's buffers and progress.
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
    /// The timer of a delayed answer.
    delay_event: ngx_event_t,
}

/// Pool cleanup of a TCP session: give back the connection slot and cancel
/// a pending delay timer.
#[repr(C)]
struct TcpCleanup {
    conf: *const SrvConf,
    ctx: *mut TcpSession,
}

unsafe extern "C" fn release_tcp_slot(data: *mut c_void) {
    guard((), || release_tcp_slot_inner(data));
}

unsafe fn release_tcp_slot_inner(data: *mut c_void) {
    let cleanup = &*(data as *const TcpCleanup);
    let conf = &*cleanup.conf;
    conf.tcp_connections.set(conf.tcp_connections.get().saturating_sub(1));
    let ctx = &mut *cleanup.ctx;
    if ctx.tcp.delay_event.timer_set() != 0 {
        ngx_del_timer(&mut ctx.tcp.delay_event);
        serve::release();
    }
}

/// Starts serving a TCP connection (the session's content phase).
pub unsafe fn start(s: *mut ngx_stream_session_t, c: *mut ngx_connection_t, conf: &SrvConf, service: Service) {
    if conf.tcp_connections.get() >= conf.tcp_max_connections {
        crate::log::info!(
            (*c).log,
            "dns_tcp_max_connections ({}) reached, closing connection",
            conf.tcp_max_connections
        );
        finalize(s, NGX_STREAM_SERVICE_UNAVAILABLE);
        return;
    }
    let cleanup = ngx_pool_cleanup_add((*c).pool, std::mem::size_of::<TcpCleanup>());
    let out_cap = (2 + service.max_response_len()) * 2;
    let input = ngx_pnalloc((*c).pool, MAX_TCP_QUERY + 2) as *mut u8;
    let output = ngx_pnalloc((*c).pool, out_cap) as *mut u8;
    let ctx = ngx::ffi::ngx_pcalloc((*c).pool, std::mem::size_of::<TcpSession>()) as *mut TcpSession;
    if cleanup.is_null() || input.is_null() || output.is_null() || ctx.is_null() {
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
        return;
    }
    *session_ctx_slot(s) = ctx as *mut c_void;
    let ctx = &mut *ctx;
    conf.tcp_connections.set(conf.tcp_connections.get() + 1);
    let data = (*cleanup).data as *mut TcpCleanup;
    (*data).conf = conf;
    (*data).ctx = ctx;
    (*cleanup).handler = Some(release_tcp_slot);

    // The rest of the state starts zeroed (the context is pcalloc'ed).
    let st = &mut ctx.tcp;
    st.input = input;
    st.output = output;
    st.out_cap = out_cap;
    st.delay_event.handler = Some(tcp_delay_expired);
    st.delay_event.data = c as *mut c_void;
    st.delay_event.log = (*c).log;
    // Data a preread phase already read is the start of the stream.
    let buf = (*c).buffer;
    if !buf.is_null() && (*buf).last > (*buf).pos {
        let len = ((*buf).last.offset_from((*buf).pos) as usize).min(MAX_TCP_QUERY + 2);
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
        finalize(s, NGX_STREAM_INTERNAL_SERVER_ERROR);
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
        crate::log::info!((*c).log, "DNS TCP client timed out while {what}");
        finalize(s, NGX_STREAM_OK);
        return;
    }
    if (*c).close() != 0 {
        // nginx is shutting down and closes idle connections.
        finalize(s, NGX_STREAM_OK);
        return;
    }
    let (Some((conf, service)), Some(ctx)) = (session_service(s), tcp_session(s)) else {
        finalize(s, NGX_STREAM_OK);
        return;
    };
    match tcp_run(c, conf, service, ctx) {
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
unsafe fn tcp_run(c: *mut ngx_connection_t, conf: &SrvConf, service: Service, ctx: &mut TcpSession) -> Next {
    let room = 2 + service.max_response_len();
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
                    crate::log::info!((*c).log, "DNS TCP message of length {len} rejected, closing connection");
                    return Next::Close;
                }
                Frame::Message { len } => len,
            };
            let msg = &input[2..2 + len];
            let qctx = conf.query_context(
                Transport::Tcp,
                local_addr(c),
                ip_of((*c).sockaddr),
                ngx::ffi::ngx_time() as u32,
            );
            let out = std::slice::from_raw_parts_mut(st.output.add(st.out_last + 2), st.out_cap - st.out_last - 2);
            let served = service.answer(msg, &qctx, out, serve::held_back(), Some(&mut ctx.last));
            if served.reason == serve::Reason::Updated {
                crate::tick::soon();
            }
            crate::signing::report(conf, &served, (*c).log);
            crate::log::debug!((*c).log, "{}", served.log_line(&service, true, qctx.client_addr));
            let outcome = served.outcome;
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
                serve::hold();
                ngx_add_timer(&mut st.delay_event, ms as ngx_msec_t);
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
        let mut free = MAX_TCP_QUERY + 2 - st.in_last;
        // An exiting worker (reload, quit) reads no further than the end of
        // the message in flight, answers it and closes: a resolver that
        // keeps pipelining must not keep the old configuration serving; it
        // reconnects to a new worker.
        if ngx::ffi::ngx_exiting != 0 {
            match rest_of_message(st) {
                None => return Next::Close,
                Some(rest) => free = free.min(rest),
            }
        }
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
    serve::release();
    if let Some(ctx) = tcp_session(s) {
        ctx.tcp.paused = false;
    }
    // Guarded inside.
    tcp_event_handler((*c).write);
}

/// How many more bytes complete the message the input has begun; `None`
/// when the input is empty (nothing in flight).
fn rest_of_message(st: &TcpState) -> Option<usize> {
    let have = st.in_last - st.in_pos;
    if have == 0 {
        return None;
    }
    if have < 2 {
        return Some(2 - have);
    }
    // SAFETY: the input buffer holds `in_last` initialized bytes.
    let prefix = unsafe { [*st.input.add(st.in_pos), *st.input.add(st.in_pos + 1)] };
    Some(
        (2 + usize::from(u16::from_be_bytes(prefix)))
            .saturating_sub(have)
            .max(1),
    )
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
