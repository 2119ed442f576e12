//! Response rate limiting, in the manner of BIND's `rate-limit` and Knot's
//! `rrl`: responses to one client network (an IPv4 /24 or IPv6 /56) are
//! counted per second in a table all workers share; past the rate, most are
//! dropped and every `slip`-th becomes a truncated (TC=1) reply, so a real
//! client retries over TCP while a spoofed victim gets no amplification.
//! The table is fixed-size: networks that hash to the same bucket share a
//! count, which can only limit sooner, never let more through.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub const BUCKETS: usize = 16384;

/// What to do with a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    Pass,
    /// Over the rate: send a truncated reply instead.
    Slip,
    /// Over the rate: send nothing.
    Drop,
}

/// The network a client address is counted in: IPv4 /24, IPv6 /56.
pub fn network(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(u32::from(v4) >> 8),
            None => (u128::from(v6) >> 72) as u64 | 1 << 63,
        },
    }
}

fn bucket_of(network: u64, service: usize) -> usize {
    // A multiplicative hash spreads neighbouring networks over the table.
    let h = (network ^ (service as u64).rotate_left(32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 50) as usize % BUCKETS
}

/// Counts one response to `ip` at second `now` against `rate` per second.
/// Each bucket packs the second (high 32 bits) and the count (low 32).
pub fn check(buckets: &[AtomicU64; BUCKETS], service: usize, ip: IpAddr, now: u32, rate: u32, slip: u32) -> Limit {
    let bucket = &buckets[bucket_of(network(ip), service)];
    let mut current = bucket.load(Relaxed);
    let count = loop {
        let (second, count) = ((current >> 32) as u32, current as u32);
        let count = if second == now { count.saturating_add(1) } else { 1 };
        let next = (u64::from(now) << 32) | u64::from(count);
        match bucket.compare_exchange_weak(current, next, Relaxed, Relaxed) {
            Ok(_) => break count,
            Err(seen) => current = seen,
        }
    };
    if count <= rate {
        Limit::Pass
    } else if slip > 0 && (count - rate) % slip == 0 {
        Limit::Slip
    } else {
        Limit::Drop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Box<[AtomicU64; BUCKETS]> {
        Box::new(std::array::from_fn(|_| AtomicU64::new(0)))
    }

    #[test]
    fn limits_per_network_and_second() {
        let t = table();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let results: Vec<Limit> = (0..10)
            .map(|i| check(&t, 0, if i % 2 == 0 { a } else { same_net }, 100, 4, 2))
            .collect();
        assert_eq!(&results[..4], &[Limit::Pass; 4]);
        assert_eq!(
            &results[4..],
            &[
                Limit::Drop,
                Limit::Slip,
                Limit::Drop,
                Limit::Slip,
                Limit::Drop,
                Limit::Slip
            ]
        );
        assert_eq!(
            check(&t, 0, other, 100, 4, 2),
            Limit::Pass,
            "another network has its own count"
        );
        assert_eq!(
            check(&t, 1, a, 100, 4, 2),
            Limit::Pass,
            "another service has its own count"
        );
        assert_eq!(check(&t, 0, a, 101, 4, 2), Limit::Pass, "a new second starts over");
        assert_eq!(
            check(&t, 0, a, 102, 0, 0),
            Limit::Drop,
            "slip 0: never a truncated reply"
        );
    }

    #[test]
    fn ipv6_networks_are_slash_56() {
        let a: IpAddr = "2001:db8:0:ff::1".parse().unwrap();
        let b: IpAddr = "2001:db8:0:aa::2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1ff::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(c));
        assert_eq!(
            network("::ffff:192.0.2.9".parse().unwrap()),
            network("192.0.2.1".parse().unwrap())
        );
    }
}
