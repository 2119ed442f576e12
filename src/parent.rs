//! Keeping the parent zone's glue in step (`dns_glue_update`): when the
//! addresses a host gives out change, the tick leader sends the parent's
//! primary an RFC 2136 UPDATE, signed with TSIG, that replaces the A/AAAA
//! records of the host's name server name. The exchange runs on a
//! non-blocking UDP socket in the event loop with a timeout, never in the
//! way of answers; a truncated response (TC=1) moves the same UPDATE to
//! TCP at once, and after pushes that got no response at all the next
//! attempts alternate between TCP and UDP (`PushState`). Its outcome goes
//! to the shared slot, where the next leader tick logs it (each outcome
//! once) and schedules a retry with backoff (see `PushState`).

use crate::dns::addrset::AddressSet;
use crate::dns::{tsig, update};
use crate::dynamic::{Dynamic, ParentSettings};
use crate::health::address_slot::{AddressSlot, PushOutcome};
use crate::log::{notice, warning};
use crate::util::{guard, next_random};
use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_event_t, ngx_handle_read_event, ngx_handle_write_event, ngx_log_t,
    ngx_peer_connection_t, ngx_str_t, NGX_AGAIN, NGX_OK,
};
use std::ptr;

/// How long one exchange may take, a move from UDP to TCP included (the
/// leader gives up a little later, `PUSH_DEADLINE_MS`, should this worker
/// exit meanwhile).
const TIMEOUT_MS: u64 = 3_000;
/// The least time a TCP exchange after a truncated UDP response gets.
const MIN_TCP_MS: u64 = 500;
const BUFFER: usize = 4096;
/// The TC bit in the second octet of the header's flags.
const TC: u8 = 0x02;

/// One tick of the leader: log the outcome of the last push, start the
/// next one when the parent does not have the addresses given out.
///
/// # Safety
/// Runs in a worker's event loop; `d` lives as long as the worker's cycle.
pub unsafe fn tick(d: &Dynamic, slot: &AddressSlot, now_ms: u64, log: *mut ngx_log_t) {
    let Some(parent) = d.parent.as_ref() else { return };
    let want = d.pushable(slot.read().as_ref());
    let (finished, start) = slot.push.tick(now_ms, want.as_ref());
    if let Some(f) = finished {
        let what = format!(
            "dns_service {}: glue update of {} in {} at {}",
            d.service, parent.name_text, parent.zone_text, parent.server
        );
        match (f.outcome, f.retry_in_ms) {
            (PushOutcome::Ok, _) => {
                slot.push
                    .last_success
                    .store(ngx::ffi::ngx_time() as u64, std::sync::atomic::Ordering::Relaxed);
                notice!(log, "{what}: done ({}){}", f.set, if f.tcp { " over TCP" } else { "" });
            }
            (outcome, Some(retry)) if f.log => warning!(
                log,
                "{what} failed{}: {outcome}; retrying in {} s, then with a growing backoff (the same failure is not logged again)",
                if f.tcp { " over TCP" } else { "" },
                retry / 1000
            ),
            _ => {}
        }
    }
    if let (true, Some(set)) = (start, want) {
        start_push(parent, slot, set, slot.push.flight_over_tcp(), log);
    }
}

/// A push in flight, owned by its connection until it ends.
struct Push {
    peer: ngx_peer_connection_t,
    address: libc::sockaddr_storage,
    name: String,
    name_str: ngx_str_t,
    server: std::net::SocketAddr,
    slot: *const AddressSlot,
    key: *const tsig::Key,
    digest: u64,
    id: u16,
    mac: [u8; tsig::MAX_MAC],
    /// The signed UPDATE after two octets for its length over TCP.
    request: [u8; BUFFER + 2],
    len: usize,
    tcp: bool,
    connected: bool,
    /// TCP: octets of the request sent, of the response received.
    sent: usize,
    got: usize,
    started_ms: u64,
    buffer: [u8; BUFFER + 2],
}

unsafe fn start_push(parent: &ParentSettings, slot: &AddressSlot, set: AddressSet, tcp: bool, log: *mut ngx_log_t) {
    let digest = set.digest();
    let mut push = Box::new(Push {
        peer: std::mem::zeroed(),
        address: std::mem::zeroed(),
        name: parent.server.to_string(),
        name_str: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        server: parent.server,
        slot,
        key: &parent.key,
        digest,
        id: next_random() as u16,
        mac: [0; tsig::MAX_MAC],
        request: [0; BUFFER + 2],
        len: 0,
        tcp,
        connected: false,
        sent: 0,
        got: 0,
        started_ms: ngx::ffi::ngx_current_msec as u64,
        buffer: [0; BUFFER + 2],
    });
    let now = ngx::ffi::ngx_time() as u64;
    let id = push.id;
    let Some(len) = update::build_replace(id, &parent.zone, &parent.name, parent.ttl, &set, &mut push.request[2..])
        .and_then(|len| tsig::sign_request(&parent.key, &mut push.request[2..], len, now))
        .map(|(len, mac)| {
            push.mac = mac;
            len
        })
    else {
        slot.push.post_via(digest, PushOutcome::Garbled, tcp);
        return;
    };
    push.len = len;
    push.request[..2].copy_from_slice(&(len as u16).to_be_bytes());
    exchange(Box::into_raw(push), TIMEOUT_MS, log);
}

/// Connects to the parent over the push's transport and sends the UPDATE
/// (over TCP once connected); the response arrives in `on_event`.
unsafe fn exchange(push: *mut Push, timeout_ms: u64, log: *mut ngx_log_t) {
    let p = &mut *push;
    p.peer = std::mem::zeroed();
    p.connected = false;
    p.sent = 0;
    p.got = 0;
    let connected = crate::probe::connect(
        &mut p.peer,
        &mut p.address,
        &mut p.name_str,
        &p.name,
        p.server,
        if p.tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM },
        log,
    );
    let Ok(connected_now) = connected else {
        let b = Box::from_raw(push);
        (*b.slot).push.post_via(b.digest, PushOutcome::Network, b.tcp);
        return;
    };
    let c = p.peer.connection;
    crate::probe::watch(c, push as *mut _, on_event, timeout_ms, log);
    if connected_now || !p.tcp {
        p.connected = true;
        let outcome = guard(Some(PushOutcome::Garbled), || send_request(c, &mut *push));
        if let Some(outcome) = outcome {
            finish(push, c, outcome);
        }
    }
}

/// Sends the UPDATE: one datagram, or the framed message over TCP (as far
/// as the socket takes it); `Some` when the push failed.
unsafe fn send_request(c: *mut ngx_connection_t, push: &mut Push) -> Option<PushOutcome> {
    let send = (*c).send?;
    if !push.tcp {
        let sent = send(c, push.request.as_mut_ptr().add(2), push.len);
        if sent != push.len as isize || ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
            return Some(PushOutcome::Network);
        }
        return None;
    }
    let total = push.len + 2;
    while push.sent < total {
        let n = send(c, push.request.as_mut_ptr().add(push.sent), total - push.sent);
        if n == NGX_AGAIN as isize {
            if ngx_handle_write_event((*c).write, 0) != NGX_OK as isize {
                return Some(PushOutcome::Network);
            }
            return None;
        }
        if n <= 0 {
            return Some(PushOutcome::Network);
        }
        push.sent += n as usize;
    }
    if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
        return Some(PushOutcome::Network);
    }
    None
}

/// What a response said: an outcome, or that it was truncated.
enum Response {
    Done(PushOutcome),
    Truncated,
}

unsafe extern "C" fn on_event(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let push = (*c).data as *mut Push;
    let log = (*c).log;
    let response = guard(Some(Response::Done(PushOutcome::Garbled)), || {
        let p = &mut *push;
        if (*ev).timedout() != 0 {
            return Some(Response::Done(PushOutcome::Timeout));
        }
        if !p.connected {
            if !crate::probe::connect_succeeded(c) {
                return Some(Response::Done(PushOutcome::Network));
            }
            p.connected = true;
        }
        if p.tcp && p.sent < p.len + 2 {
            if let Some(outcome) = send_request(c, p) {
                return Some(Response::Done(outcome));
            }
            if p.sent < p.len + 2 || (*ev).write() != 0 {
                return None;
            }
        }
        if (*ev).write() != 0 {
            return None;
        }
        read_response(c, p)
    });
    match response {
        None => {}
        Some(Response::Done(outcome)) => finish(push, c, outcome),
        Some(Response::Truncated) => {
            // The same signed UPDATE again over TCP, in the time left.
            ngx_close_connection(c);
            let p = &mut *push;
            p.tcp = true;
            let spent = (ngx::ffi::ngx_current_msec as u64).saturating_sub(p.started_ms);
            exchange(push, TIMEOUT_MS.saturating_sub(spent).max(MIN_TCP_MS), log);
        }
    }
}

/// Reads what arrived; `Some` once the push has an outcome (or moves to TCP).
unsafe fn read_response(c: *mut ngx_connection_t, push: &mut Push) -> Option<Response> {
    let recv = (*c).recv?;
    if push.tcp {
        // The two-octet length, then the message, in as many reads as it takes.
        for _ in 0..16 {
            let want = if push.got < 2 {
                2
            } else {
                2 + usize::from(u16::from_be_bytes([push.buffer[0], push.buffer[1]]))
            };
            if want > push.buffer.len() {
                return Some(Response::Done(PushOutcome::Garbled));
            }
            if push.got >= 2 && push.got == want {
                let msg = &push.buffer[2..want];
                let Some(code) = update::response_code(msg, push.id) else {
                    return Some(Response::Done(PushOutcome::Garbled));
                };
                return Some(Response::Done(judge(push, msg, code)));
            }
            let n = recv(c, push.buffer.as_mut_ptr().add(push.got), want - push.got);
            if n == NGX_AGAIN as isize {
                return wait_for_response(c);
            }
            if n <= 0 {
                return Some(Response::Done(PushOutcome::Network));
            }
            push.got += n as usize;
        }
        return wait_for_response(c);
    }
    // Bounded: stray datagrams (not our ID) are skipped, a few per event.
    for _ in 0..8 {
        let n = recv(c, push.buffer.as_mut_ptr(), BUFFER);
        if n == NGX_AGAIN as isize {
            return wait_for_response(c);
        }
        if n <= 0 {
            return Some(Response::Done(PushOutcome::Network));
        }
        let msg = &push.buffer[..n as usize];
        let Some(code) = update::response_code(msg, push.id) else {
            continue;
        };
        if msg[2] & TC != 0 {
            return Some(Response::Truncated);
        }
        return Some(Response::Done(judge(push, msg, code)));
    }
    wait_for_response(c)
}

/// The outcome a complete response gives, its signature checked.
/// Waits for the next read event (None), or fails the push when it cannot.
unsafe fn wait_for_response(c: *mut ngx_connection_t) -> Option<Response> {
    if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
        return Some(Response::Done(PushOutcome::Network));
    }
    None
}

unsafe fn judge(push: &Push, msg: &[u8], code: u16) -> PushOutcome {
    let key = &*push.key;
    let mac = &push.mac[..key.algorithm().mac_len()];
    match tsig::verify_response(key, mac, msg, ngx::ffi::ngx_time() as u64) {
        Ok(()) if code == 0 => PushOutcome::Ok,
        Ok(()) => PushOutcome::Rcode(code),
        Err(tsig::ResponseError::Server(e)) => PushOutcome::TsigError(e),
        // An unsigned refusal (a server without our key, or TSIG off)
        // says more by its code than by its missing signature.
        Err(_) if code != 0 => PushOutcome::Rcode(code),
        Err(_) => PushOutcome::BadResponseSignature,
    }
}

unsafe fn finish(push: *mut Push, c: *mut ngx_connection_t, outcome: PushOutcome) {
    let push = Box::from_raw(push);
    (*push.slot).push.post_via(push.digest, outcome, push.tcp);
    ngx_close_connection(c);
    drop(push);
}
