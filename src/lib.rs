//! `ngx_stream_dns_service_module`: a minimal authoritative DNS responder for
//! one delegated service name, served from nginx's stream module.
//!
//! `dns` is the engine (plain Rust, no nginx symbols). The rest is the glue:
//! `module` registers the module, `conf` turns directives into a validated
//! zone, `handler` serves UDP datagrams and TCP connections, `variables`
//! exposes what was answered to `access_log`, and `util` keeps panics from
//! crossing into nginx.

pub mod dns;
pub mod health;

#[cfg(all(feature = "module", not(test)))]
mod conf;
#[cfg(all(feature = "module", not(test)))]
mod fastpath;
#[cfg(all(feature = "module", not(test)))]
mod handler;
#[cfg(all(feature = "module", not(test)))]
mod load;
#[cfg(all(feature = "module", not(test)))]
mod module;
#[cfg(all(feature = "module", not(test)))]
mod probe;
#[cfg(all(feature = "module", not(test)))]
mod shm;
#[cfg(all(feature = "module", not(test)))]
mod status;
#[cfg(all(feature = "module", not(test)))]
mod upstream;
#[cfg(all(feature = "module", not(test)))]
mod util;
#[cfg(all(feature = "module", not(test)))]
mod variables;

/// The module table `load_module` reads from the shared object (what nginx's
/// build system generates as `ngx_modules.c` for a dynamic module).
#[cfg(all(feature = "export-modules", not(test)))]
mod exports {
    use crate::module::*;
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
