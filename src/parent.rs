//! Keeping the parent zone's glue in step (`dns_glue_update`): when the
//! addresses a host gives out change, the tick leader sends the parent's
//! primary an RFC 2136 UPDATE, signed with TSIG, that replaces the A/AAAA
//! records of the host's name server name. The exchange runs on a
//! non-blocking UDP socket in the event loop with a timeout, never in the
//! way of answers; its outcome goes to the shared slot, where the next
//! leader tick logs it (each outcome once) and schedules a retry with
//! backoff (see `PushState`).

use crate::dns::addrset::AddressSet;
use crate::dns::{tsig, update};
use crate::dynamic::{Dynamic, ParentSettings};
use crate::health::address_slot::{AddressSlot, PushOutcome};
use crate::log::{notice, warning};
use crate::util::{guard, next_random};
use ngx::ffi::{
    ngx_add_timer, ngx_close_connection, ngx_connection_t, ngx_event_t, ngx_handle_read_event, ngx_log_t,
    ngx_peer_connection_t, ngx_str_t, NGX_AGAIN, NGX_OK,
};
use std::ptr;

/// How long one exchange may take (the leader gives up a little later,
/// `PUSH_DEADLINE_MS`, should this worker exit meanwhile).
const TIMEOUT_MS: u64 = 3_000;
const BUFFER: usize = 4096;

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
                notice!(log, "{what}: done ({})", f.set);
            }
            (outcome, Some(retry)) if f.log => warning!(
                log,
                "{what} failed: {outcome}; retrying in {} s, then with a growing backoff (the same failure is not logged again)",
                retry / 1000
            ),
            _ => {}
        }
    }
    if let (true, Some(set)) = (start, want) {
        start_push(parent, slot, set, log);
    }
}

/// A push in flight, owned by its connection until it ends.
struct Push {
    peer: ngx_peer_connection_t,
    address: libc::sockaddr_storage,
    name: String,
    name_str: ngx_str_t,
    slot: *const AddressSlot,
    key: *const tsig::Key,
    digest: u64,
    id: u16,
    mac: [u8; tsig::MAX_MAC],
    buffer: [u8; BUFFER],
}

unsafe fn start_push(parent: &ParentSettings, slot: &AddressSlot, set: AddressSet, log: *mut ngx_log_t) {
    let digest = set.digest();
    let mut push = Box::new(Push {
        peer: std::mem::zeroed(),
        address: std::mem::zeroed(),
        name: parent.server.to_string(),
        name_str: ngx_str_t {
            len: 0,
            data: ptr::null_mut(),
        },
        slot,
        key: &parent.key,
        digest,
        id: next_random() as u16,
        mac: [0; tsig::MAX_MAC],
        buffer: [0; BUFFER],
    });
    let now = ngx::ffi::ngx_time() as u64;
    let Some(len) = update::build_replace(push.id, &parent.zone, &parent.name, parent.ttl, &set, &mut push.buffer)
        .and_then(|len| tsig::sign_request(&parent.key, &mut push.buffer, len, now))
        .map(|(len, mac)| {
            push.mac = mac;
            len
        })
    else {
        slot.push.post(digest, PushOutcome::Garbled);
        return;
    };
    let p = &mut *push;
    let connected = crate::probe::connect(
        &mut p.peer,
        &mut p.address,
        &mut p.name_str,
        &p.name,
        parent.server,
        libc::SOCK_DGRAM,
        log,
    );
    if connected.is_err() {
        slot.push.post(digest, PushOutcome::Network);
        return;
    }
    let c = push.peer.connection;
    let push = Box::into_raw(push);
    (*c).data = push as *mut _;
    (*c).log = log;
    (*(*c).read).handler = Some(on_read);
    (*(*c).read).log = log;
    (*(*c).write).handler = Some(ignore);
    // An exiting worker does not wait for the answer; the leader of the
    // next configuration tries again.
    (*(*c).read).set_cancelable(1);
    let sent = match (*c).send {
        Some(send) => send(c, (*push).buffer.as_mut_ptr(), len),
        None => -1,
    };
    if sent != len as isize || ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
        finish(push, c, PushOutcome::Network);
        return;
    }
    ngx_add_timer((*c).read, TIMEOUT_MS as _);
}

unsafe extern "C" fn ignore(_ev: *mut ngx_event_t) {}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let push = (*c).data as *mut Push;
    let outcome = guard(Some(PushOutcome::Garbled), || read_response(ev, c, &mut *push));
    if let Some(outcome) = outcome {
        finish(push, c, outcome);
    }
}

/// Reads what arrived; `Some` once the push has an outcome.
unsafe fn read_response(ev: *mut ngx_event_t, c: *mut ngx_connection_t, push: &mut Push) -> Option<PushOutcome> {
    if (*ev).timedout() != 0 {
        return Some(PushOutcome::Timeout);
    }
    let recv = (*c).recv?;
    // Bounded: stray datagrams (not our ID) are skipped, a few per event.
    for _ in 0..8 {
        let n = recv(c, push.buffer.as_mut_ptr(), BUFFER);
        if n == NGX_AGAIN as isize {
            if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
                return Some(PushOutcome::Network);
            }
            return None;
        }
        if n <= 0 {
            return Some(PushOutcome::Network);
        }
        let msg = &push.buffer[..n as usize];
        let Some(code) = update::response_code(msg, push.id) else {
            continue;
        };
        let key = &*push.key;
        let mac = &push.mac[..key.algorithm().mac_len()];
        return Some(
            match tsig::verify_response(key, mac, msg, ngx::ffi::ngx_time() as u64) {
                Ok(()) if code == 0 => PushOutcome::Ok,
                Ok(()) => PushOutcome::Rcode(code),
                Err(tsig::ResponseError::Server(e)) => PushOutcome::TsigError(e),
                // An unsigned refusal (a server without our key, or TSIG off)
                // says more by its code than by its missing signature.
                Err(_) if code != 0 => PushOutcome::Rcode(code),
                Err(_) => PushOutcome::BadResponseSignature,
            },
        );
    }
    if ngx_handle_read_event((*c).read, 0) != NGX_OK as isize {
        return Some(PushOutcome::Network);
    }
    None
}

unsafe fn finish(push: *mut Push, c: *mut ngx_connection_t, outcome: PushOutcome) {
    let push = Box::from_raw(push);
    (*push.slot).push.post(push.digest, outcome);
    ngx_close_connection(c);
    drop(push);
}
