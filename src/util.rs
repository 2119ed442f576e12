//! Small helpers shared by the glue: panic containment, nginx strings,
//! socket addresses.

use ngx::ffi::{ngx_str_t, sockaddr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a panic into `on_panic` so that no unwind crosses an
/// `extern "C"` boundary into nginx.
pub fn guard<T>(on_panic: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(on_panic)
}

/// Wall-clock time in milliseconds since the Unix epoch (for times people
/// read; intervals use nginx's monotonic `ngx_current_msec`).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The bytes of an nginx string.
///
/// # Safety
/// `s` must be a valid nginx string (or have `len == 0`).
pub unsafe fn str_bytes<'a>(s: &ngx_str_t) -> &'a [u8] {
    if s.len == 0 || s.data.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(s.data, s.len)
    }
}

/// The IP address of a socket address, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` must be null or point to a socket address of its family's size.
pub unsafe fn ip_of(sa: *const sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Ends a stream session with `rc` (an `NGX_STREAM_*` status).
///
/// # Safety
/// `s` must be a live stream session; it is freed when this returns.
pub unsafe fn finalize(s: *mut ngx::ffi::ngx_stream_session_t, rc: u32) {
    ngx::ffi::ngx_stream_finalize_session(s, rc as _);
}

/// Per-worker pseudo-random numbers for TTL jitter and shedding draws
/// (xorshift64*; the quality needed is "not synchronized between caches
/// or workers", nothing more).
pub fn next_random() -> u32 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Relaxed);
    if x == 0 {
        // SAFETY: getpid has no preconditions; ngx_current_msec is the
        // worker's cached clock.
        x = (u64::from(unsafe { libc::getpid() } as u32) << 32)
            ^ unsafe { ngx::ffi::ngx_current_msec } as u64
            ^ 0x9e37_79b9_7f4a_7c15;
    }
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Relaxed);
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

/// The local address a connection was accepted on (or a datagram arrived on).
///
/// # Safety
/// `c` must be a live connection.
pub unsafe fn local_addr(c: *mut ngx::ffi::ngx_connection_t) -> Option<IpAddr> {
    if ngx::ffi::ngx_connection_local_sockaddr(c, std::ptr::null_mut(), 0) != ngx::ffi::NGX_OK as isize {
        return None;
    }
    ip_of((*c).local_sockaddr)
}

/// Reads at most `limit + 1` bytes of the regular file at `path` without
/// blocking the event loop on what is not a regular file: the open is
/// non-blocking (a FIFO does not wait for a writer), and a FIFO, device or
/// directory is refused (`InvalidInput`) before anything is read. A caller
/// that gets more than `limit` bytes knows the file is too long.
pub fn read_regular_file(path: &str, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() || kind.is_fifo() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut buf = Vec::with_capacity(limit.min(4096) + 1);
    file.take(limit as u64 + 1).read_to_end(&mut buf)?;
    Ok(buf)
}
