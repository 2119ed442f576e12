//! Sending UDP replies after a shedding delay.
//!
//! A delayed reply must not outlive what it is sent on. nginx closes a
//! worker's listening sockets when the worker begins a graceful exit
//! (reload, quit) while the worker lives on for its other connections and
//! timers; a descriptor number kept in a timer may by then be closed, or
//! reused for something else (a new upstream connection). So delayed
//! replies are sent on the worker's own duplicate of each UDP listening
//! socket: taken when the first reply is delayed, closed only when the
//! worker exits, and the delay timers are not cancelable, so the worker
//! sends every reply it holds back before it exits (a delay lasts at most
//! 10 s; `worker_shutdown_timeout` still bounds the wait).

use ngx::ffi::ngx_listening_t;
use std::ffi::c_void;
use std::mem::{size_of, zeroed};
use std::net::IpAddr;
use std::ptr;

/// Room for one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
pub const CONTROL: usize = 64;

/// A control message buffer, aligned for `cmsghdr` (a plain byte array is
/// not, and `CMSG_FIRSTHDR` on it would be undefined behaviour).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct Control(pub [u8; CONTROL]);

const _: () = assert!(std::mem::align_of::<Control>() >= std::mem::align_of::<libc::cmsghdr>());

impl Default for Control {
    fn default() -> Self {
        Control([0; CONTROL])
    }
}

/// The worker's duplicates of listening sockets, by listening socket.
static mut DUPLICATES: Vec<(*const ngx_listening_t, libc::c_int)> = Vec::new();

/// The worker's own descriptor of `ls`'s socket, for delayed replies.
///
/// # Safety
/// `ls` must be a live listening socket whose descriptor is open (called
/// when a reply is delayed, while the query's socket is serving).
pub unsafe fn socket_of(ls: *const ngx_listening_t) -> Option<libc::c_int> {
    let duplicates = &mut *ptr::addr_of_mut!(DUPLICATES);
    if let Some((_, fd)) = duplicates.iter().find(|(l, _)| *l == ls) {
        return Some(*fd);
    }
    if (*ls).fd < 0 {
        return None;
    }
    let fd = libc::fcntl((*ls).fd, libc::F_DUPFD_CLOEXEC, 0);
    if fd < 0 {
        return None;
    }
    duplicates.push((ls, fd));
    Some(fd)
}

/// Closes the duplicates (the worker exits; no reply is held back then).
pub unsafe fn close_all() {
    for (_, fd) in std::mem::take(&mut *ptr::addr_of_mut!(DUPLICATES)) {
        libc::close(fd);
    }
}

/// Sends `data` to `peer` on `fd`, with `control` (a source address for a
/// wildcard socket) when not empty. Returns whether the kernel took it.
///
/// # Safety
/// `peer` must point to a socket address of `peer_len` bytes.
pub unsafe fn send(fd: libc::c_int, data: &[u8], peer: *const libc::sockaddr, peer_len: u32, control: &[u8]) -> bool {
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let mut msg: libc::msghdr = zeroed();
    msg.msg_name = peer as *mut c_void;
    msg.msg_namelen = peer_len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_ptr() as *mut c_void;
        msg.msg_controllen = control.len() as _;
    }
    libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT) == data.len() as isize
}

/// The control message that makes a reply leave from `source` (needed on a
/// wildcard socket); returns its length.
pub fn source_control(source: IpAddr, out: &mut Control) -> usize {
    // SAFETY: the packet info structures are plain data; all-zero is valid.
    unsafe {
        match source {
            IpAddr::V4(v4) => {
                let mut info: libc::in_pktinfo = zeroed();
                info.ipi_spec_dst.s_addr = u32::from(v4).to_be();
                write_control(out, libc::IPPROTO_IP, libc::IP_PKTINFO, &info)
            }
            IpAddr::V6(v6) => {
                let mut info: libc::in6_pktinfo = zeroed();
                info.ipi6_addr.s6_addr = v6.octets();
                write_control(out, libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &info)
            }
        }
    }
}

/// Writes one control message holding `value`; returns its length (0 if it
/// does not fit).
pub fn write_control<T>(out: &mut Control, level: i32, kind: i32, value: &T) -> usize {
    // SAFETY: `out` is aligned for cmsghdr and CONTROL bytes long; the
    // message is written only when CMSG_SPACE says it fits.
    unsafe {
        let space = libc::CMSG_SPACE(size_of::<T>() as u32) as usize;
        if space > CONTROL {
            return 0;
        }
        out.0[..space].fill(0);
        let mut hdr: libc::msghdr = zeroed();
        hdr.msg_control = out.0.as_mut_ptr() as *mut c_void;
        hdr.msg_controllen = space as _;
        let cmsg = libc::CMSG_FIRSTHDR(&hdr);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<T>() as u32) as _;
        ptr::copy_nonoverlapping(value as *const T as *const u8, libc::CMSG_DATA(cmsg), size_of::<T>());
        space
    }
}
