//! Logging through nginx's error log, one macro per level, in the manner of
//! nginx's `ngx_log_error(NGX_LOG_WARN, log, 0, ...)`.
//!
//! `debug!` writes when the log's level is `debug` (`error_log ... debug`),
//! in any nginx build: the module's debug lines say why a query was
//! delayed, dropped or refused, which an operator needs without rebuilding
//! nginx `--with-debug`. The level check comes first, so a line that is
//! not written costs one comparison and no formatting.

/// Writes at `level` to `log` (a `*mut ngx_log_t`).
macro_rules! log_at {
    ($level:expr, $log:expr, $($arg:tt)+) => {{
        let log: *mut ::ngx::ffi::ngx_log_t = $log;
        if !log.is_null() {
            ::ngx::ngx_log_error!($level, log, $($arg)+);
        }
    }};
}

macro_rules! emerg {
    ($log:expr, $($arg:tt)+) => { $crate::log::log_at!(::ngx::ffi::NGX_LOG_EMERG, $log, $($arg)+) };
}

macro_rules! warning {
    ($log:expr, $($arg:tt)+) => { $crate::log::log_at!(::ngx::ffi::NGX_LOG_WARN, $log, $($arg)+) };
}

macro_rules! notice {
    ($log:expr, $($arg:tt)+) => { $crate::log::log_at!(::ngx::ffi::NGX_LOG_NOTICE, $log, $($arg)+) };
}

macro_rules! info {
    ($log:expr, $($arg:tt)+) => { $crate::log::log_at!(::ngx::ffi::NGX_LOG_INFO, $log, $($arg)+) };
}

macro_rules! debug {
    ($log:expr, $($arg:tt)+) => {{
        let log: *mut ::ngx::ffi::ngx_log_t = $log;
        if $crate::log::debug_enabled(log) {
            ::ngx::ngx_log_error!(::ngx::ffi::NGX_LOG_DEBUG, log, $($arg)+);
        }
    }};
}

pub(crate) use {debug, emerg, info, log_at, notice, warning};

/// Whether `log` takes debug lines. nginx turns `error_log ... debug` into
/// every debug mask bit, so the stream bit is set exactly then.
#[inline]
pub fn debug_enabled(log: *const ngx::ffi::ngx_log_t) -> bool {
    // SAFETY: a non-null log pointer from nginx points to a live log.
    !log.is_null() && unsafe { (*log).log_level } & ngx::ffi::NGX_LOG_DEBUG_STREAM as usize != 0
}
