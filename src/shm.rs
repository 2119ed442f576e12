//! The shared memory zone holding the table of service states and counters.
//! The stream configuration creates it; the HTTP status handler attaches to
//! it by name. nginx keeps a zone of the same name and size across reloads,
//! which is what keeps counters and health state through `nginx -s reload`.

use crate::conf::{MainConf, SrvConf};
use crate::health::shared::{Source, Table, NOT_CONFIGURED};
use crate::health::state::State;
use crate::log::emerg;
use crate::module::ngx_stream_dns_service_module;
use crate::util::guard;
use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_shared_memory_add, ngx_shm_zone_t, ngx_slab_calloc, ngx_slab_pool_t, ngx_str_t,
    NGX_ERROR, NGX_OK,
};
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::Ordering::Relaxed;

pub const ZONE_NAME: &str = "dns_service";
/// Room for the table plus the slab allocator's own pages.
pub const ZONE_SIZE: usize = std::mem::size_of::<Table>() + 64 * 4096;

fn zone_name() -> ngx_str_t {
    ngx_str_t {
        len: ZONE_NAME.len(),
        data: ZONE_NAME.as_ptr() as *mut u8,
    }
}

pub fn tag() -> *mut c_void {
    ptr::addr_of!(ngx_stream_dns_service_module) as *mut c_void
}

/// Declares the zone for the stream configuration `main`.
pub unsafe fn add_zone(cf: *mut ngx_conf_t, main: &mut MainConf) -> Result<(), ()> {
    let mut name = zone_name();
    let zone = ngx_shared_memory_add(cf, &mut name, ZONE_SIZE, tag());
    if zone.is_null() {
        return Err(());
    }
    (*zone).init = Some(init_zone);
    (*zone).data = main as *mut MainConf as *mut c_void;
    main.shm_zone = zone;
    Ok(())
}

/// Attaches to the zone from another configuration context (the HTTP status
/// handler); the size is the one the stream configuration declares.
pub unsafe fn attach_zone(cf: *mut ngx_conf_t) -> *mut ngx_shm_zone_t {
    let mut name = zone_name();
    ngx_shared_memory_add(cf, &mut name, 0, tag())
}

/// The table of a zone, once nginx has initialized it.
pub unsafe fn table_of<'a>(zone: *mut ngx_shm_zone_t) -> Option<&'a Table> {
    if zone.is_null() || (*zone).data.is_null() {
        return None;
    }
    let main = &*((*zone).data as *const MainConf);
    main.table.as_ref()
}

/// Runs in the master for every configuration (re)load: reuse or create the
/// table, then give every service its slot.
unsafe extern "C" fn init_zone(zone: *mut ngx_shm_zone_t, old_data: *mut c_void) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        let main = &mut *((*zone).data as *mut MainConf);
        let shpool = (*zone).shm.addr as *mut ngx_slab_pool_t;
        let memory = if !old_data.is_null() && !(*(old_data as *const MainConf)).table.is_null() {
            (*(old_data as *const MainConf)).table as *mut u8
        } else {
            let p = ngx_slab_calloc(shpool, std::mem::size_of::<Table>()) as *mut u8;
            if p.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*shpool).data = p as *mut c_void;
            p
        };
        // Per start: the DNS cookie secret and the rate limiter's hash key.
        let (mut cookie_secret, mut rrl_key) = ([0u8; 16], [0u8; 16]);
        if !fill_random(&mut cookie_secret) || !fill_random(&mut rrl_key) {
            emerg!(
                (*zone).shm.log,
                "getrandom() failed for the DNS cookie secret or the rate limit key"
            );
            return NGX_ERROR as ngx_int_t;
        }
        let table = Table::init(memory, cookie_secret, rrl_key);
        main.table = table;

        let names: Vec<Vec<u8>> = main
            .services
            .iter()
            .map(|&conf| {
                (*conf)
                    .zone
                    .as_ref()
                    .map(|z| z.borrow().apex().to_string().into_bytes())
                    .unwrap_or_default()
            })
            .collect();
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        let Ok(slots) = table.assign(&refs) else {
            emerg!(
                (*zone).shm.log,
                "too many dns_service servers (at most {})",
                crate::health::shared::MAX_SERVICES
            );
            return NGX_ERROR as ngx_int_t;
        };
        for (&conf, &index) in main.services.iter().zip(&slots) {
            let conf: &mut SrvConf = &mut *conf;
            conf.load.slot = Some(index);
            if conf.cookies_on && conf.cookie_secrets.is_none() {
                conf.cookie_secrets = Some(crate::dns::cookie::CookieSecrets {
                    current: table.cookie_secret(),
                    previous: None,
                });
            }
            publish_initial(conf, &table.slots[index]);
            if let Some(dynamic) = &conf.dynamic {
                // What the state and address files say now, for every worker.
                dynamic.publish_initial(&table.addresses[index], ngx::ffi::ngx_time() as u64);
            }
        }
        NGX_OK as ngx_int_t
    })
}

fn fill_random(buf: &mut [u8; 16]) -> bool {
    // SAFETY: the buffer is valid for its length.
    unsafe { libc::getrandom(buf.as_mut_ptr() as *mut c_void, buf.len(), 0) == buf.len() as isize }
}

/// A slot seen for the first time (or whose sources changed) starts in the
/// state its configuration implies, so workers answer correctly before the
/// first evaluation: `starting` with a probe (no answers before the first
/// good probe), `ready` otherwise.
unsafe fn publish_initial(conf: &SrvConf, slot: &crate::health::shared::ServiceSlot) {
    let load = &conf.load;
    let configured = [
        load.upstream.is_some(),
        load.probe.is_some(),
        load.file.is_some(),
        load.host.is_some(),
    ];
    let fresh = slot.counters.queries_udp.load(Relaxed) == 0
        && slot.counters.queries_tcp.load(Relaxed) == 0
        && slot.next_tick_ms.load(Relaxed) == 0;
    let had_probe = slot.readings[Source::Probe as usize].load(Relaxed) != NOT_CONFIGURED;
    for (source, on) in Source::ALL.iter().zip(configured) {
        if !on {
            slot.readings[*source as usize].store(NOT_CONFIGURED, Relaxed);
        }
    }
    let was_starting = slot.state.load(Relaxed) == State::Starting as u32;
    if fresh || (load.probe.is_some() && !had_probe) || (load.probe.is_none() && was_starting) {
        let state = if load.probe.is_some() {
            State::Starting
        } else {
            State::Ready
        };
        slot.state.store(state as u32, Relaxed);
        let silent = state == State::Starting;
        slot.drop_ppm
            .store(if silent { crate::health::policy::PPM } else { 0 }, Relaxed);
        slot.delay_us.store(0, Relaxed);
        slot.refuse_ppm.store(0, Relaxed);
        if load.probe.is_some() {
            slot.readings[Source::Probe as usize].store(crate::health::state::Reading::Starting.to_i32(), Relaxed);
        }
    }
}
