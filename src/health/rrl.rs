//! Response rate limiting, in the manner of BIND's `rate-limit` and Knot's
//! `rrl`: responses to one client network (an IPv4 /24 or IPv6 /56) are
//! counted per second in a table all workers share; past the rate, most are
//! dropped and every `slip`-th becomes a truncated (TC=1) reply, so a real
//! client retries over TCP while a spoofed victim gets no amplification.
//!
//! The table is fixed-size. Each network has two candidate buckets, chosen
//! by SipHash under a secret made when the shared table is created, so
//! nobody can pick networks that land on another network's buckets. A
//! bucket keeps a tag of the network it counts: a network counts in the
//! bucket that carries its tag, else claims a candidate that counts nothing
//! this second. Only when both candidates count other networks in the same
//! second does it share one, which can only limit sooner, never let more
//! through.

use super::shared::SharedSecret;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const BUCKET_BITS: u32 = 14;
pub const BUCKETS: usize = 1 << BUCKET_BITS;

/// Counts past this stay at it (a bucket holds 24 bits of count).
const MAX_COUNT: u32 = (1 << 24) - 1;

/// The shared counts, and the key that places networks in them.
#[repr(C)]
pub struct RateTable {
    /// SipHash key, made with the shared table (see `Table::init`).
    pub(super) key: SharedSecret,
    buckets: [AtomicU64; BUCKETS],
}

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

/// One bucket, packed into an atomic word: the tag of the network it counts
/// (24 bits), the second it counts (the low 16 bits of the time) and the
/// count (24 bits). All zero is an empty bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    tag: u32,
    second: u16,
    count: u32,
}

impl Bucket {
    fn unpack(word: u64) -> Bucket {
        Bucket {
            tag: (word >> 40) as u32,
            second: (word >> 24) as u16,
            count: word as u32 & MAX_COUNT,
        }
    }

    fn pack(self) -> u64 {
        u64::from(self.tag) << 40 | u64::from(self.second) << 24 | u64::from(self.count)
    }

    /// Whether it holds a count for `second`.
    fn counts(&self, second: u16) -> bool {
        self.count > 0 && self.second == second
    }

    /// Seconds since it last counted (empty buckets count as idle longest).
    fn idle(&self, second: u16) -> u32 {
        if self.count == 0 {
            u32::MAX
        } else {
            u32::from(second.wrapping_sub(self.second))
        }
    }
}

impl RateTable {
    /// The two candidate buckets (always distinct) and the tag of a network.
    fn locate(&self, network: u64, service: usize) -> ([usize; 2], u32) {
        let mut hasher = SipHasher13::new_with_key(&self.key.load());
        hasher.write_u64(network);
        hasher.write_u64(service as u64);
        let hash = hasher.finish();
        let first = hash as usize & (BUCKETS - 1);
        let offset = ((hash >> BUCKET_BITS) as usize & (BUCKETS - 1)).max(1);
        ([first, first ^ offset], (hash >> 40) as u32)
    }
}

/// Which of the two candidates a network with `tag` counts in at `second`.
fn choose(candidates: [Bucket; 2], tag: u32, second: u16) -> usize {
    if let Some(own) = candidates.iter().position(|b| b.tag == tag) {
        return own;
    }
    match (candidates[0].counts(second), candidates[1].counts(second)) {
        // Claim the one idle longest.
        (false, false) => usize::from(candidates[1].idle(second) > candidates[0].idle(second)),
        (false, true) => 0,
        (true, false) => 1,
        // Both count other networks this second: share the less used one.
        (true, true) => usize::from(candidates[1].count < candidates[0].count),
    }
}

/// Counts one response to `ip` at second `now` against `rate` per second.
pub fn check(table: &RateTable, service: usize, ip: IpAddr, now: u32, rate: u32, slip: u32) -> Limit {
    let (indexes, tag) = table.locate(network(ip), service);
    let second = now as u16;
    let count = loop {
        let words = indexes.map(|i| table.buckets[i].load(Relaxed));
        let which = choose(words.map(Bucket::unpack), tag, second);
        let bucket = Bucket::unpack(words[which]);
        let counted = if bucket.counts(second) {
            Bucket {
                count: (bucket.count + 1).min(MAX_COUNT),
                ..bucket
            }
        } else {
            Bucket { tag, second, count: 1 }
        };
        let slot = &table.buckets[indexes[which]];
        if slot
            .compare_exchange_weak(words[which], counted.pack(), Relaxed, Relaxed)
            .is_ok()
        {
            break counted.count;
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
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn table(key: [u8; 16]) -> Box<RateTable> {
        let table = Box::new(RateTable {
            key: SharedSecret::default(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        });
        table.key.store(key);
        table
    }

    /// An address in the IPv4 /24 numbered `n`.
    fn in_network(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(n << 8 | 1))
    }

    #[test]
    fn limits_per_network_and_second() {
        let t = table([3; 16]);
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
    fn networks_on_the_same_buckets_keep_independent_budgets() {
        let t = table([5; 16]);
        // Two networks whose candidate buckets are the same pair: the worst
        // case a hash can give, where one shared count would let either
        // network use up the other's budget.
        let mut seen = HashMap::new();
        let (attacker, victim) = (0u32..)
            .find_map(|n| {
                let ([a, b], _) = t.locate(network(in_network(n)), 0);
                seen.insert([a.min(b), a.max(b)], n).map(|earlier| (earlier, n))
            })
            .unwrap();
        for _ in 0..4 {
            assert_eq!(check(&t, 0, in_network(attacker), 100, 4, 0), Limit::Pass);
        }
        for _ in 0..10 {
            assert_eq!(check(&t, 0, in_network(attacker), 100, 4, 0), Limit::Drop);
        }
        for _ in 0..4 {
            assert_eq!(check(&t, 0, in_network(victim), 100, 4, 0), Limit::Pass);
        }
        assert_eq!(check(&t, 0, in_network(victim), 100, 4, 0), Limit::Drop);
        assert_eq!(check(&t, 0, in_network(attacker), 100, 4, 0), Limit::Drop);
    }

    #[test]
    fn the_secret_places_the_networks() {
        let (one, other) = (table([1; 16]), table([2; 16]));
        assert!((0..64).all(|n| {
            let net = network(in_network(n));
            one.locate(net, 0) != other.locate(net, 0)
        }));
    }

    #[test]
    fn a_network_shares_a_bucket_only_when_both_count_others_this_second() {
        let t = table([9; 16]);
        let ip = in_network(7);
        let ([first, second], tag) = t.locate(network(ip), 0);
        let store = |index: usize, tag: u32, second: u16, count: u32| {
            t.buckets[index].store(Bucket { tag, second, count }.pack(), Relaxed)
        };
        // The first counted another network last second: claimed, counting afresh.
        store(first, tag ^ 1, 99, 9);
        store(second, tag ^ 2, 100, 9);
        assert_eq!(check(&t, 0, ip, 100, 4, 0), Limit::Pass);
        assert_eq!(
            Bucket::unpack(t.buckets[first].load(Relaxed)),
            Bucket {
                tag,
                second: 100,
                count: 1
            }
        );
        // Both count other networks this second: the less used one is shared.
        store(first, tag ^ 1, 100, 9);
        store(second, tag ^ 2, 100, 3);
        assert_eq!(check(&t, 0, ip, 100, 4, 0), Limit::Pass);
        assert_eq!(Bucket::unpack(t.buckets[second].load(Relaxed)).count, 4);
        assert_eq!(check(&t, 0, ip, 100, 4, 0), Limit::Drop);
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
