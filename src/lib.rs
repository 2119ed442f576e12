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

#[cfg(not(test))]
mod conf;
#[cfg(not(test))]
mod handler;
#[cfg(not(test))]
mod module;
#[cfg(not(test))]
mod util;
#[cfg(not(test))]
mod variables;

#[cfg(all(feature = "export-modules", not(test)))]
ngx::ngx_modules!(ngx_stream_dns_service_module);

#[cfg(not(test))]
pub use module::ngx_stream_dns_service_module;
