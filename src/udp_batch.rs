//! Sending a batch of UDP datagrams with `sendmmsg`, so that one refused
//! datagram costs no other. Plain `libc`, no nginx symbols (tested with
//! real sockets below).

/// Sends `msgs` on `fd`. A datagram the kernel refuses for its destination
/// (an unreachable or firewalled client: `EPERM`, `EACCES`, `ENETUNREACH`,
/// ...) is skipped and reported to `failed` with its index; a full socket
/// buffer (`EAGAIN`, `ENOBUFS`) loses the rest of the batch, as a datagram
/// may be lost, and reports each. Returns how many were sent.
///
/// # Safety
/// Every message header must point to valid buffers and addresses.
pub unsafe fn send(fd: libc::c_int, msgs: &mut [libc::mmsghdr], mut failed: impl FnMut(usize)) -> usize {
    let (mut next, mut sent) = (0, 0);
    while next < msgs.len() {
        let r = libc::sendmmsg(fd, msgs.as_mut_ptr().add(next), (msgs.len() - next) as u32, 0);
        if r > 0 {
            next += r as usize;
            sent += r as usize;
            continue;
        }
        let errno = *libc::__errno_location();
        let lost = if errno == libc::EAGAIN || errno == libc::ENOBUFS {
            msgs.len() - next
        } else {
            1
        };
        (next..next + lost).for_each(&mut failed);
        next += lost;
    }
    sent
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    fn sockaddr(addr: std::net::SocketAddrV4) -> libc::sockaddr_in {
        // SAFETY: all-zero is a valid sockaddr_in.
        let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sin.sin_family = libc::AF_INET as _;
        sin.sin_port = addr.port().to_be();
        sin.sin_addr.s_addr = u32::from(*addr.ip()).to_be();
        sin
    }

    #[test]
    fn a_refused_destination_costs_no_other_datagram() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let std::net::SocketAddr::V4(to) = receiver.local_addr().unwrap() else {
            unreachable!()
        };
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Broadcast without SO_BROADCAST: the kernel refuses it (EACCES).
        let refused = std::net::SocketAddrV4::new(std::net::Ipv4Addr::BROADCAST, to.port());
        let mut addrs = [sockaddr(to), sockaddr(refused), sockaddr(to)];
        let mut payloads = [*b"first", *b"never", *b"third"];
        let mut iov: Vec<libc::iovec> = payloads
            .iter_mut()
            .map(|p| libc::iovec {
                iov_base: p.as_mut_ptr() as *mut _,
                iov_len: p.len(),
            })
            .collect();
        // SAFETY: all-zero is a valid mmsghdr; pointers are set below.
        let mut msgs: Vec<libc::mmsghdr> = (0..3).map(|_| unsafe { std::mem::zeroed() }).collect();
        for i in 0..3 {
            msgs[i].msg_hdr.msg_name = &mut addrs[i] as *mut _ as *mut _;
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut failures = Vec::new();
        // SAFETY: the headers point into the live vectors above.
        let sent = unsafe { send(sender.as_raw_fd(), &mut msgs, |i| failures.push(i)) };
        assert_eq!((sent, failures), (2, vec![1]));
        let mut buf = [0u8; 16];
        let got: Vec<Vec<u8>> = (0..2)
            .map(|_| {
                let n = receiver.recv(&mut buf).unwrap();
                buf[..n].to_vec()
            })
            .collect();
        assert_eq!(got, [b"first".to_vec(), b"third".to_vec()]);
    }
}
