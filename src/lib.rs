//! `ngx_stream_dns_service_module`: a minimal authoritative DNS responder for
//! one delegated service name, served from nginx's stream module, whose
//! answers follow the application's load and health.
//!
//! Plain Rust, no nginx symbols (built and tested without nginx):
//! - `dns`: the DNS engine: query parsing, answer templates built once from
//!   the configuration, copy-and-patch answers, EDNS, cookies, TCP framing;
//! - `health`: load and health sources, the state machine, the shedding
//!   policy, response rate limiting, the table all workers share (with
//!   each service's history), and the status report (Prometheus text,
//!   JSON, the HTML page);
//! - `serve`: the decision every query goes through (answer, rate limit,
//!   policy, delay queue, counters);
//! - `dynamic`: addresses that change while nginx runs (address file,
//!   RFC 2136 UPDATE with TSIG), and UPDATE handling on the query path;
//! - `udp_batch`: `sendmmsg` batches where one refused datagram costs no
//!   other.
//!
//! The nginx glue (feature `module`), each file depending only on the ones
//! listed before it (and on `module` for its `ctx_index`):
//! - `util`, `log`: panic containment, nginx strings and addresses, logging;
//! - `conf`: configuration types, create/merge, the `ctx_index` accessors;
//! - `directives`: the directive handlers;
//! - `listen`: the stream listening sockets and the servers behind them;
//! - `signing`: DNSSEC keys and signatures at configuration time, address
//!   signatures on demand, and the re-signing each worker does;
//! - `shm`: the shared zone holding the table;
//! - `replies`: the worker's own descriptors for delayed UDP replies;
//! - `upstream`, `probe`: load sources;
//! - `parent`, `addresses`: addresses that change while running (address
//!   file, UPDATE): directives, per-worker template rebuilds, pushing the
//!   glue to the parent zone;
//! - `tick`: the per-worker tick that evaluates the load sources and runs
//!   the address steps (a query path runs it at once after an accepted
//!   UPDATE);
//! - `tcp`, `session`: TCP framing and pipelining; the stream content
//!   handler and the UDP session path;
//! - `fastpath`: the UDP listener takeover (batched `recvmmsg`/`sendmmsg`),
//!   the path most queries take;
//! - `status`, `variables`: the HTTP status handler (it picks the format;
//!   `health` renders it), `$dns_*` variables;
//! - `module`: the composition root (module tables, `init_process`), with
//!   the pipeline drawn in its documentation.

pub mod dns;
pub mod dynamic;
pub mod health;
pub mod serve;
pub mod udp_batch;

#[cfg(all(feature = "module", not(test)))]
mod addresses;
#[cfg(all(feature = "module", not(test)))]
mod conf;
#[cfg(all(feature = "module", not(test)))]
mod directives;
#[cfg(all(feature = "module", not(test)))]
mod fastpath;
#[cfg(all(feature = "module", not(test)))]
mod listen;
#[cfg(all(feature = "module", not(test)))]
mod log;
#[cfg(all(feature = "module", not(test)))]
mod module;
#[cfg(all(feature = "module", not(test)))]
mod parent;
#[cfg(all(feature = "module", not(test)))]
mod probe;
#[cfg(all(feature = "module", not(test)))]
mod replies;
#[cfg(all(feature = "module", not(test)))]
mod session;
#[cfg(all(feature = "module", not(test)))]
mod shm;
#[cfg(all(feature = "module", not(test)))]
mod signing;
#[cfg(all(feature = "module", not(test)))]
mod status;
#[cfg(all(feature = "module", not(test)))]
mod tcp;
#[cfg(all(feature = "module", not(test)))]
mod tick;
#[cfg(all(feature = "module", not(test)))]
mod upstream;
#[cfg(all(feature = "module", not(test)))]
mod util;
#[cfg(all(feature = "module", not(test)))]
mod variables;

/// The module table `load_module` reads from the shared object (what nginx's
/// build system generates as `ngx_modules.c` for a dynamic module). Written
/// out because `ngx::ngx_modules!` of ngx 0.5.1 cannot count more than one
/// module (its `count!` helper rejects the trailing comma it is given).
#[cfg(all(feature = "export-modules", not(test)))]
mod exports {
    use crate::module::{ngx_dns_service_module, ngx_http_dns_service_status_module, ngx_stream_dns_service_module};
    use ngx::ffi::ngx_module_t;
    use std::ffi::c_char;
    use std::ptr::{addr_of, null};

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_modules: [*const ngx_module_t; 4] = [
        addr_of!(ngx_dns_service_module),
        addr_of!(ngx_stream_dns_service_module),
        addr_of!(ngx_http_dns_service_status_module),
        null(),
    ];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_names: [*const c_char; 4] = [
        c"ngx_dns_service_module".as_ptr(),
        c"ngx_stream_dns_service_module".as_ptr(),
        c"ngx_http_dns_service_status_module".as_ptr(),
        null(),
    ];

    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut ngx_module_order: [*const c_char; 1] = [null()];
}

#[cfg(all(feature = "module", not(test)))]
pub use module::{ngx_dns_service_module, ngx_http_dns_service_status_module, ngx_stream_dns_service_module};
