//! The fast UDP path. nginx's stream UDP path creates a connection, a pool
//! and a session for every datagram; for a DNS answer that costs more than
//! the answer itself. In each worker, the module takes over the read
//! handler of its own UDP listening sockets and serves datagrams in batches
//! (`recvmmsg`/`sendmmsg`) straight from the templates, inside nginx's event
//! loop: the same engine, shedding decisions (delays on timers) and shared
//! counters, without the per-datagram session. Stream phases do not run on
//! this path, so a listener whose addresses use `proxy_protocol` or whose
//! servers have `allow`/`deny` rules stays on the session path (logged at
//! start); `access_log` and `limit_conn` are not applied here, and
//! `dns_udp_fast_path off` keeps a server on the session path.

use crate::conf::{MainConf, SrvConf};
use crate::dns::Transport;
use crate::health::shared::{DropReason, ServiceSlot, Table};
use crate::listen;
use crate::replies::{self, write_control, Control, CONTROL};
use crate::serve::{self, Outcome};
use crate::util::{guard, ip_of};
use ngx::ffi::{
    ngx_add_timer, ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_listening_t, ngx_log_t, ngx_msec_t,
    ngx_stream_core_srv_conf_t,
};
use std::ffi::c_void;
use std::mem::{size_of, zeroed};
use std::net::IpAddr;
use std::ptr;

/// Datagrams per `recvmmsg` call, and calls per read event: bounded work
/// per event keeps the worker fair to its other connections (the listening
/// socket is level-triggered, so what is left is served on the next turn).
const BATCH: usize = 32;
const ROUNDS: usize = 4;
/// Largest query accepted on this path; longer datagrams are dropped.
const IN_SIZE: usize = 4096;
const OUT_SIZE: usize = serve::MAX_UDP_RESPONSE;

/// A listening socket served here, and the services behind its addresses.
struct Listener {
    ls: *const ngx_listening_t,
    fd: libc::c_int,
    wildcard: bool,
    /// The socket's own address (for `dns_address auto` when not wildcard).
    local: Option<IpAddr>,
    /// (address, service); `None` matches any address. With one entry the
    /// service is known without looking at the datagram's destination.
    services: Vec<(Option<IpAddr>, *const SrvConf)>,
    table: *const Table,
    /// The listening socket's log.
    log: *mut ngx_log_t,
}

struct Buffers {
    input: [[u8; IN_SIZE]; BATCH],
    output: [[u8; OUT_SIZE]; BATCH],
    peers: [libc::sockaddr_storage; BATCH],
    in_control: [Control; BATCH],
    out_control: [Control; BATCH],
    /// The service slot of each reply, to count a failed send.
    reply_slots: [*const ServiceSlot; BATCH],
    in_iov: [libc::iovec; BATCH],
    out_iov: [libc::iovec; BATCH],
    in_msgs: [libc::mmsghdr; BATCH],
    out_msgs: [libc::mmsghdr; BATCH],
}

static mut BUFFERS: *mut Buffers = ptr::null_mut();
static mut LISTENERS: Vec<Box<Listener>> = Vec::new();

/// Why a listening socket is not served here.
enum NotHere {
    /// Not (only) DNS services that allow the fast path: nothing to say.
    Other,
    /// A stream feature only the session path honours.
    Needs(&'static str),
}

/// The DNS service of a stream server, if it may use this path.
unsafe fn service_of(cscf: *mut ngx_stream_core_srv_conf_t) -> Result<*const SrvConf, NotHere> {
    if cscf.is_null() {
        return Err(NotHere::Other);
    }
    let conf = SrvConf::of_stream_ctx((*cscf).ctx).ok_or(NotHere::Other)?;
    if conf.zone.is_none() || !conf.fast_path {
        return Err(NotHere::Other);
    }
    if crate::conf::has_access_rules((*cscf).ctx) {
        return Err(NotHere::Needs("allow/deny rules"));
    }
    Ok(conf as *const SrvConf)
}

unsafe fn addr_service(conf: &ngx::ffi::ngx_stream_addr_conf_t) -> Result<*const SrvConf, NotHere> {
    #[cfg(ngx_stream_virtual_servers)]
    if !conf.virtual_names.is_null() {
        // Several servers by name on one address: not for this path.
        return Err(NotHere::Other);
    }
    // nginx rejects "udp proxy_protocol" today; should it ever accept it,
    // the header must not be parsed as DNS.
    if conf.proxy_protocol() != 0 {
        return Err(NotHere::Needs("proxy_protocol"));
    }
    service_of(listen::default_server(conf))
}

/// The services behind a stream UDP listening socket, if every address on
/// it belongs to a DNS service that allows the fast path.
unsafe fn services_of(ls: &ngx_listening_t) -> Result<Vec<(Option<IpAddr>, *const SrvConf)>, NotHere> {
    let addresses = listen::addresses(ls);
    if addresses.is_empty() {
        return Err(NotHere::Other);
    }
    addresses
        .into_iter()
        .map(|(key, conf)| Ok((key, addr_service(conf)?)))
        .collect()
}

/// Takes over this worker's DNS UDP listening sockets (from the module's
/// `init_process`, after the event module has set up each worker's
/// listening connections).
pub unsafe fn start(cycle: *mut ngx_cycle_t, main: &MainConf) {
    let listening = &(*cycle).listening;
    let all = std::slice::from_raw_parts(listening.elts as *mut ngx_listening_t, listening.nelts);
    for ls in all {
        if ls.type_ != libc::SOCK_DGRAM || ls.connection.is_null() || !listen::is_stream(ls) {
            continue;
        }
        let services = match services_of(ls) {
            Ok(services) => services,
            Err(NotHere::Other) => continue,
            Err(NotHere::Needs(feature)) => {
                let addr = String::from_utf8_lossy(crate::util::str_bytes(&ls.addr_text));
                crate::log::notice!(
                    (*cycle).log,
                    "DNS on UDP {addr} takes nginx's session path, which applies {feature}"
                );
                continue;
            }
        };
        if BUFFERS.is_null() {
            let layout = std::alloc::Layout::new::<Buffers>();
            let p = std::alloc::alloc_zeroed(layout) as *mut Buffers;
            if p.is_null() {
                return;
            }
            BUFFERS = p;
        }
        let c = ls.connection;
        let listener = Box::new(Listener {
            ls,
            fd: (*c).fd,
            wildcard: ls.wildcard() != 0,
            local: ip_of(ls.sockaddr),
            services,
            table: main.table,
            log: (*c).log,
        });
        (*c).data = &*listener as *const Listener as *mut c_void;
        (*(*c).read).handler = Some(on_readable);
        (*ptr::addr_of_mut!(LISTENERS)).push(listener);
    }
}

/// The worker exits (no event runs after this): give back the buffers,
/// listeners and recycled replies the fast path keeps for the process's
/// lifetime, so that a memory checker sees nothing left behind when nginx
/// unloads the module.
pub unsafe fn stop() {
    *ptr::addr_of_mut!(LISTENERS) = Vec::new();
    *ptr::addr_of_mut!(FREE) = Vec::new();
    if !BUFFERS.is_null() {
        std::alloc::dealloc(BUFFERS as *mut u8, std::alloc::Layout::new::<Buffers>());
        BUFFERS = ptr::null_mut();
    }
}

/// Destination address of a received datagram, from its packet info.
unsafe fn destination(msg: &libc::msghdr) -> Option<IpAddr> {
    let mut cmsg = libc::CMSG_FIRSTHDR(msg);
    while !cmsg.is_null() {
        let level = (*cmsg).cmsg_level;
        let kind = (*cmsg).cmsg_type;
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
            let info = &*(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
            return Some(IpAddr::from(u32::from_be(info.ipi_addr.s_addr).to_be_bytes()));
        }
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            let info = &*(libc::CMSG_DATA(cmsg) as *const libc::in6_pktinfo);
            return Some(IpAddr::from(info.ipi6_addr.s6_addr));
        }
        cmsg = libc::CMSG_NXTHDR(msg, cmsg);
    }
    None
}

/// Builds the control message that makes a reply leave from the address
/// the query arrived on (needed on a wildcard socket).
unsafe fn source_control(received: &libc::msghdr, out: &mut Control) -> usize {
    let mut cmsg = libc::CMSG_FIRSTHDR(received);
    while !cmsg.is_null() {
        let level = (*cmsg).cmsg_level;
        let kind = (*cmsg).cmsg_type;
        if level == libc::IPPROTO_IP && kind == libc::IP_PKTINFO {
            let got = &*(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
            let mut info: libc::in_pktinfo = zeroed();
            info.ipi_spec_dst = got.ipi_addr;
            return write_control(out, libc::IPPROTO_IP, libc::IP_PKTINFO, &info);
        }
        if level == libc::IPPROTO_IPV6 && kind == libc::IPV6_PKTINFO {
            let got = &*(libc::CMSG_DATA(cmsg) as *const libc::in6_pktinfo);
            let info = libc::in6_pktinfo {
                ipi6_addr: got.ipi6_addr,
                ipi6_ifindex: got.ipi6_ifindex,
            };
            return write_control(out, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info);
        }
        cmsg = libc::CMSG_NXTHDR(received, cmsg);
    }
    0
}

unsafe extern "C" fn on_readable(ev: *mut ngx_event_t) {
    let c = (*ev).data as *mut ngx_connection_t;
    let listener = &*((*c).data as *const Listener);
    guard((), || serve(listener));
}

unsafe fn serve(l: &Listener) {
    let b = &mut *BUFFERS;
    let table = l.table.as_ref();
    let now = ngx::ffi::ngx_time() as u32;
    let debug = crate::log::debug_enabled(l.log);
    for _ in 0..ROUNDS {
        for i in 0..BATCH {
            b.in_iov[i] = libc::iovec {
                iov_base: b.input[i].as_mut_ptr() as *mut c_void,
                iov_len: IN_SIZE,
            };
            let hdr = &mut b.in_msgs[i].msg_hdr;
            hdr.msg_name = &mut b.peers[i] as *mut _ as *mut c_void;
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as u32;
            hdr.msg_iov = &mut b.in_iov[i];
            hdr.msg_iovlen = 1;
            hdr.msg_control = b.in_control[i].0.as_mut_ptr() as *mut c_void;
            hdr.msg_controllen = if l.wildcard { CONTROL as _ } else { 0 };
            hdr.msg_flags = 0;
        }
        let n = libc::recvmmsg(
            l.fd,
            b.in_msgs.as_mut_ptr(),
            BATCH as u32,
            libc::MSG_DONTWAIT,
            ptr::null_mut(),
        );
        if n <= 0 {
            return;
        }
        let n = n as usize;
        let mut replies = 0;
        for i in 0..n {
            let hdr = &b.in_msgs[i].msg_hdr;
            let len = b.in_msgs[i].msg_len as usize;
            let local = if l.wildcard { destination(hdr) } else { l.local };
            let service = match l.services.as_slice() {
                [(_, only)] => *only,
                many => match many.iter().find(|(addr, _)| addr.is_none() || *addr == local) {
                    Some((_, s)) => *s,
                    None => continue,
                },
            };
            let conf = &*service;
            let Some(service) = conf.service(table) else { continue };
            if hdr.msg_flags & libc::MSG_TRUNC != 0 {
                if let Some(shared) = service.shared {
                    shared.slot().counters.dropped(DropReason::Unanswerable);
                }
                continue;
            }
            let client = ip_of(&b.peers[i] as *const _ as *const ngx::ffi::sockaddr);
            let qctx = conf.query_context(Transport::Udp, local, client, now);
            let out = &mut b.output[replies];
            let served = service.answer(&b.input[i][..len], &qctx, out, serve::held_back(), None);
            if served.reason == serve::Reason::Updated {
                crate::tick::soon();
            }
            crate::signing::report(conf, &served, l.log);
            if debug {
                crate::log::debug!(l.log, "{}", served.log_line(&service, false, client));
            }
            match served.outcome {
                Outcome::Send(reply_len) => {
                    let controllen = if l.wildcard {
                        source_control(hdr, &mut b.out_control[replies])
                    } else {
                        0
                    };
                    b.out_iov[replies] = libc::iovec {
                        iov_base: out.as_mut_ptr() as *mut c_void,
                        iov_len: reply_len,
                    };
                    let o = &mut b.out_msgs[replies].msg_hdr;
                    o.msg_name = &mut b.peers[i] as *mut _ as *mut c_void;
                    o.msg_namelen = hdr.msg_namelen;
                    o.msg_iov = &mut b.out_iov[replies];
                    o.msg_iovlen = 1;
                    o.msg_control = if controllen > 0 {
                        b.out_control[replies].0.as_mut_ptr() as *mut c_void
                    } else {
                        ptr::null_mut()
                    };
                    o.msg_controllen = controllen as _;
                    o.msg_flags = 0;
                    b.reply_slots[replies] = service.shared.map_or(ptr::null(), |s| s.slot());
                    replies += 1;
                }
                Outcome::Delay(reply_len, ms) => {
                    let slot = service.shared.map_or(ptr::null(), |s| s.slot());
                    delay(l, hdr, &b.peers[i], &out[..reply_len], ms, slot);
                }
                Outcome::Nothing => {}
            }
        }
        let slots = &b.reply_slots;
        crate::udp_batch::send(l.fd, &mut b.out_msgs[..replies], |i| {
            if let Some(slot) = slots[i].as_ref() {
                slot.counters
                    .send_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        if n < BATCH {
            return;
        }
    }
}

/// A reply waiting out its shedding delay, with what is needed to send it
/// later on the worker's own duplicate of the listening socket (see
/// `replies`). Recycled through a free list, so the steady state allocates
/// nothing.
struct Delayed {
    event: ngx_event_t,
    socket: libc::c_int,
    slot: *const ServiceSlot,
    peer: libc::sockaddr_storage,
    peer_len: u32,
    control: Control,
    control_len: usize,
    len: usize,
    data: [u8; OUT_SIZE],
}

static mut FREE: Vec<Box<Delayed>> = Vec::new();

unsafe fn delay(
    l: &Listener,
    hdr: &libc::msghdr,
    peer: &libc::sockaddr_storage,
    reply: &[u8],
    ms: u32,
    slot: *const ServiceSlot,
) {
    let control_len = |control: &mut Control| if l.wildcard { source_control(hdr, control) } else { 0 };
    let Some(socket) = replies::socket_of(l.ls) else {
        // No descriptor to keep (out of descriptors): answer now rather
        // than never.
        let mut control = Control::default();
        let len = control_len(&mut control);
        replies::send(
            l.fd,
            reply,
            peer as *const _ as *const _,
            hdr.msg_namelen,
            &control.0[..len],
        );
        return;
    };
    let free = &mut *ptr::addr_of_mut!(FREE);
    let mut d = match free.pop() {
        Some(d) => d,
        None => Box::new(zeroed::<Delayed>()),
    };
    d.socket = socket;
    d.slot = slot;
    d.peer = *peer;
    d.peer_len = hdr.msg_namelen;
    d.control_len = control_len(&mut d.control);
    d.len = reply.len();
    d.data[..reply.len()].copy_from_slice(reply);
    let d = Box::into_raw(d);
    (*d).event = zeroed();
    (*d).event.handler = Some(delay_expired);
    (*d).event.data = d as *mut c_void;
    (*d).event.log = l.log;
    // Not cancelable: an exiting worker sends what it holds back first.
    ngx_add_timer(&mut (*d).event, ms as ngx_msec_t);
    serve::hold();
}

unsafe extern "C" fn delay_expired(ev: *mut ngx_event_t) {
    // Nothing here can panic but the send, which is guarded.
    let d = Box::from_raw((*ev).data as *mut Delayed);
    guard((), || {
        let peer = &d.peer as *const _ as *const libc::sockaddr;
        let control = &d.control.0[..d.control_len];
        if !replies::send(d.socket, &d.data[..d.len], peer, d.peer_len, control) {
            if let Some(slot) = d.slot.as_ref() {
                slot.counters
                    .send_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    serve::release();
    (*ptr::addr_of_mut!(FREE)).push(d);
}
