//! nginx upstreams as a load source: finding the upstream named by
//! `dns_load_upstream` once the whole configuration is read, and reading its
//! peers' shared state (active connections, `max_conns`, down and failed
//! peers) under the zone's read lock.

use crate::conf::{self, MainConf, PeersRef, SrvConf, UpstreamKind};
use crate::health::sources::{upstream_reading, PeerState};
use crate::health::state::Reading;
use crate::util::str_bytes;
use ngx::ffi::{
    ngx_cycle_t, ngx_http_upstream_rr_peers_t, ngx_http_upstream_srv_conf_t, ngx_rwlock_rlock, ngx_rwlock_unlock,
    ngx_stream_upstream_rr_peers_t, ngx_stream_upstream_srv_conf_t, ngx_time,
};

unsafe fn array<'a, T>(a: &ngx::ffi::ngx_array_t) -> &'a [T] {
    if a.nelts == 0 || a.elts.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(a.elts as *const T, a.nelts)
    }
}

unsafe fn find_http(cycle: *mut ngx_cycle_t, name: &str) -> Option<*mut ngx_http_upstream_srv_conf_t> {
    let umcf = conf::http_upstream_main_conf(cycle)?;
    array::<*mut ngx_http_upstream_srv_conf_t>(&umcf.upstreams)
        .iter()
        .copied()
        .find(|&u| !u.is_null() && str_bytes(&(*u).host) == name.as_bytes() && !(*u).srv_conf.is_null())
}

unsafe fn find_stream(cycle: *mut ngx_cycle_t, name: &str) -> Option<*mut ngx_stream_upstream_srv_conf_t> {
    let umcf = conf::stream_upstream_main_conf(cycle)?;
    array::<*mut ngx_stream_upstream_srv_conf_t>(&umcf.upstreams)
        .iter()
        .copied()
        .find(|&u| !u.is_null() && str_bytes(&(*u).host) == name.as_bytes() && !(*u).srv_conf.is_null())
}

/// Resolves every service's `dns_load_upstream` in `cycle`. Returns an error
/// message naming the directive, file and line for an upstream that does not
/// exist, is ambiguous, or has no `zone` (without one, workers do not share
/// its peer state).
pub unsafe fn resolve(cycle: *mut ngx_cycle_t, main: &MainConf) -> Result<(), String> {
    for &conf in &main.services {
        let conf: &mut SrvConf = &mut *conf;
        let Some(up) = conf.load.upstream.clone() else { continue };
        let at = format!("in {}:{}", up.place.file, up.place.line);
        let http = if up.kind != Some(UpstreamKind::Stream) {
            find_http(cycle, &up.name)
        } else {
            None
        };
        let stream = if up.kind != Some(UpstreamKind::Http) {
            find_stream(cycle, &up.name)
        } else {
            None
        };
        conf.load.upstream_peers = match (http, stream) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "\"dns_load_upstream\" {0}: both an http and a stream upstream are named so; write http:{0} or stream:{0} {at}",
                    up.name
                ))
            }
            (Some(u), None) if (*u).shm_zone.is_null() => {
                return Err(format!("\"dns_load_upstream\" {}: the upstream has no \"zone\" {at}", up.name))
            }
            (None, Some(u)) if (*u).shm_zone.is_null() => {
                return Err(format!("\"dns_load_upstream\" {}: the upstream has no \"zone\" {at}", up.name))
            }
            (Some(u), None) => PeersRef::Http(u),
            (None, Some(u)) => PeersRef::Stream(u),
            (None, None) => return Err(format!("\"dns_load_upstream\" {}: no such upstream {at}", up.name)),
        };
    }
    Ok(())
}

/// Reads the upstream's peers now. Peer state lives in the upstream's shared
/// zone, so every worker sees the same figure.
pub unsafe fn read(peers: PeersRef, capacity: Option<u64>) -> Option<Reading> {
    let now = ngx_time();
    let mut states: Vec<PeerState> = Vec::with_capacity(8);
    // The http and stream round-robin peer lists have the same shape: the
    // primary peers, and in `next` the backup peers.
    macro_rules! collect {
        ($upstream:expr, $peers_type:ty) => {{
            let peers = (*$upstream).peer.data as *mut $peers_type;
            if peers.is_null() {
                return None;
            }
            let locked = !(*peers).shpool.is_null();
            if locked {
                ngx_rwlock_rlock(&mut (*peers).rwlock);
            }
            for (list, backup) in [(peers, false), ((*peers).next, true)] {
                if list.is_null() {
                    continue;
                }
                let mut p = (*list).peer;
                while !p.is_null() {
                    let failed =
                        (*p).max_fails != 0 && (*p).fails >= (*p).max_fails && now - (*p).checked <= (*p).fail_timeout;
                    states.push(PeerState {
                        conns: (*p).conns as u64,
                        max_conns: (*p).max_conns as u64,
                        down: (*p).down != 0,
                        failed,
                        backup,
                    });
                    p = (*p).next;
                }
            }
            if locked {
                ngx_rwlock_unlock(&mut (*peers).rwlock);
            }
        }};
    }
    match peers {
        PeersRef::None => return None,
        PeersRef::Http(u) => collect!(u, ngx_http_upstream_rr_peers_t),
        PeersRef::Stream(u) => collect!(u, ngx_stream_upstream_rr_peers_t),
    }
    Some(upstream_reading(&states, capacity))
}
