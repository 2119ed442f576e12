//! The directive handlers: each parses and checks its own value at once and
//! stages it in the server's `Staged` settings, so that `nginx -t` names the
//! directive, file and line of a bad value. Errors meet nginx in one place,
//! `directive`, which also contains panics.

use crate::conf::{Place, SoaTimers, SrvConf, UpstreamKind, UpstreamSettings};
use crate::dns::config::{self, ConfigError, NsidSetting};
use crate::dns::cookie;
use crate::dns::SigningSettings;
use crate::health::policy::Silence;
use crate::health::settings::{self, SettingError};
use crate::serve::RateLimit;
use crate::util::{guard, read_regular_file, str_bytes};
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::{ngx_command_t, ngx_conf_t, ngx_msec_t, ngx_str_t, NGX_LOG_EMERG};
use ngx::ngx_conf_log_error;
use std::ffi::{c_char, c_void};

const DUPLICATE: *mut c_char = c"is duplicate".as_ptr() as *mut c_char;

pub(crate) unsafe fn place(cf: *mut ngx_conf_t) -> Place {
    let file = &*(*cf).conf_file;
    Place {
        file: String::from_utf8_lossy(str_bytes(&file.file.name)).into_owned(),
        line: file.line,
    }
}

/// The directive's arguments (without its name) as strings.
unsafe fn args<'a>(cf: *mut ngx_conf_t) -> Vec<&'a str> {
    let array = &*(*cf).args;
    let values: &[ngx_str_t] = std::slice::from_raw_parts(array.elts as *const ngx_str_t, array.nelts);
    values[1..]
        .iter()
        .map(|v| std::str::from_utf8(str_bytes(v)).unwrap_or("\u{fffd}"))
        .collect()
}

unsafe fn directive_name<'a>(cmd: *mut ngx_command_t) -> &'a str {
    std::str::from_utf8(str_bytes(&(*cmd).name)).unwrap_or("dns")
}

/// Runs a directive handler with panic containment and uniform errors:
/// `invalid value "X" in "dns_foo" directive: reason` at the directive's line.
pub(crate) unsafe fn directive(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
    set: impl FnOnce(&mut SrvConf, &[&str], &'static str) -> Result<(), DirectiveError>,
) -> *mut c_char {
    guard(NGX_CONF_ERROR, || {
        let conf = &mut *(conf as *mut SrvConf);
        let name: &'static str = std::mem::transmute::<&str, &'static str>(directive_name(cmd));
        let args = args(cf);
        match set(conf, &args, name) {
            Ok(()) => {
                if name != "dns_service" && conf.staged.first_setting.is_none() {
                    conf.staged.first_setting = Some((name, place(cf)));
                }
                NGX_CONF_OK
            }
            Err(DirectiveError::Duplicate) => DUPLICATE,
            Err(DirectiveError::Invalid { value, reason }) => {
                ngx_conf_log_error!(
                    NGX_LOG_EMERG,
                    cf,
                    "invalid value \"{value}\" in \"{name}\" directive: {reason}"
                );
                NGX_CONF_ERROR
            }
        }
    })
}

/// Why a directive was rejected.
pub(crate) enum DirectiveError {
    Duplicate,
    Invalid { value: String, reason: String },
}

/// A rejection of `value` for a DNS configuration error.
fn invalid(value: &str) -> impl FnOnce(ConfigError) -> DirectiveError + '_ {
    move |error| DirectiveError::Invalid {
        value: value.to_string(),
        reason: error.to_string(),
    }
}

/// A rejection of `value` for a load/health setting error.
fn invalid_setting(value: &str) -> impl FnOnce(SettingError) -> DirectiveError + '_ {
    move |error| DirectiveError::Invalid {
        value: value.to_string(),
        reason: error.to_string(),
    }
}

/// An `on | off` directive value.
fn on_off(arg: &str) -> Result<bool, DirectiveError> {
    match arg {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(invalid(other)(ConfigError::Parameter(other.into()))),
    }
}

pub(crate) fn once<T>(slot: &Option<T>) -> Result<(), DirectiveError> {
    if slot.is_some() {
        Err(DirectiveError::Duplicate)
    } else {
        Ok(())
    }
}

/// `dns_service`. The module installs the content handler once this
/// succeeds (see `module::set_service`).
pub unsafe extern "C" fn set_service(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.service)?;
        let name = config::parse_host(args[0]).map_err(invalid(args[0]))?;
        conf.staged.service = Some((name, at));
        Ok(())
    })
}

pub unsafe extern "C" fn set_nameservers(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.nameservers)?;
        let names = args
            .iter()
            .map(|a| config::parse_host(a).map_err(invalid(a)))
            .collect::<Result<_, _>>()?;
        conf.staged.nameservers = Some((names, at));
        Ok(())
    })
}

pub unsafe extern "C" fn set_address(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.addresses)?;
        let joined = args.join(" ");
        conf.staged.addresses = Some(config::parse_addresses(args.iter().copied()).map_err(|e| {
            let value = match &e {
                ConfigError::Address(a) => a.clone(),
                _ => joined,
            };
            invalid(&value)(e)
        })?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_ttl(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.ttl)?;
        let ttl = config::parse_ttl(args[0]).map_err(invalid(args[0]))?;
        let mut jitter = 0;
        if let Some(arg) = args.get(1) {
            let (_, value) = config::split_parameter(arg, &["jitter"]).map_err(invalid(arg))?;
            jitter = config::parse_timer(value).map_err(invalid(arg))?;
            if jitter >= ttl {
                return Err(invalid(arg)(ConfigError::Jitter { ttl, jitter }));
            }
        }
        conf.staged.ttl = Some((ttl, jitter));
        Ok(())
    })
}

pub unsafe extern "C" fn set_soa(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.soa_timers)?;
        let mut timers = SoaTimers::default();
        for arg in args {
            let keys = ["contact", "refresh", "retry", "expire", "minimum"];
            let (key, value) = config::split_parameter(arg, &keys).map_err(invalid(arg))?;
            if key == "contact" {
                conf.staged.soa_contact = Some(config::parse_mailbox(value).map_err(invalid(arg))?);
                continue;
            }
            let secs = config::parse_timer(value).map_err(invalid(arg))?;
            match key {
                "refresh" => timers.refresh = Some(secs),
                "retry" => timers.retry = Some(secs),
                "expire" => timers.expire = Some(secs),
                _ => timers.minimum = Some(secs),
            }
        }
        conf.staged.soa_timers = Some(timers);
        Ok(())
    })
}

pub unsafe extern "C" fn set_edns_payload(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.edns_payload)?;
        conf.staged.edns_payload = Some(config::parse_edns_payload(args[0]).map_err(invalid(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_nsid(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.nsid)?;
        conf.staged.nsid = Some(match config::parse_nsid(args[0]).map_err(invalid(args[0]))? {
            NsidSetting::Off => None,
            NsidSetting::Value(v) => Some(v),
            NsidSetting::Hostname => {
                Some(hostname().ok_or_else(|| invalid(args[0])(ConfigError::Nsid(args[0].into())))?)
            }
        });
        Ok(())
    })
}

fn hostname() -> Option<Vec<u8>> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // within it on success (truncation is handled by the length search).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut c_char, buf.len() - 1) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0)?;
    let name = buf[..len.min(config::MAX_NSID_LEN)].to_vec();
    (!name.is_empty()).then_some(name)
}

pub unsafe extern "C" fn set_tcp_timeout(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.tcp_timeout)?;
        let secs = config::parse_seconds(args[0]).map_err(invalid(args[0]))?;
        if secs == 0 || secs > 3600 {
            return Err(invalid(args[0])(ConfigError::Time(args[0].into())));
        }
        conf.staged.tcp_timeout = Some(secs as ngx_msec_t * 1000);
        Ok(())
    })
}

pub unsafe extern "C" fn set_tcp_max_connections(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.tcp_max_connections)?;
        let n = args[0]
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(|| invalid(args[0])(ConfigError::Parameter(args[0].into())))?;
        conf.staged.tcp_max_connections = Some(n);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_upstream(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.upstream)?;
        let (kind, name) = match args[0].split_once(':') {
            Some(("http", name)) => (Some(UpstreamKind::Http), name),
            Some(("stream", name)) => (Some(UpstreamKind::Stream), name),
            Some(_) => return Err(invalid(args[0])(ConfigError::Parameter(args[0].into()))),
            None => (None, args[0]),
        };
        if name.is_empty() {
            return Err(invalid(args[0])(ConfigError::Parameter(args[0].into())));
        }
        let mut capacity = None;
        for arg in &args[1..] {
            let (_, value) = config::split_parameter(arg, &["capacity"]).map_err(invalid(arg))?;
            capacity = Some(settings::parse_count(arg, value, 1, 100_000_000).map_err(invalid_setting(arg))?);
        }
        conf.staged.upstream = Some(UpstreamSettings {
            name: name.to_string(),
            kind,
            capacity,
            place: at,
        });
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_probe(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.probe)?;
        conf.staged.probe = Some(settings::parse_probe(args).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_file(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.file)?;
        conf.staged.file = Some(settings::parse_file(args).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_host(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.host)?;
        conf.staged.host = Some(settings::parse_host_source(args[0]).map_err(invalid_setting(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_load_smoothing(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.smoothing_ms)?;
        let ms = settings::parse_ms_value(args[0])
            .filter(|ms| *ms <= 600_000)
            .ok_or_else(|| invalid_setting(args[0])(SettingError::Range(args[0].into(), 0, 600)))?;
        conf.staged.smoothing_ms = Some(ms);
        Ok(())
    })
}

pub unsafe extern "C" fn set_shed(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.policy)?;
        conf.staged.policy = Some(settings::parse_shed(args, Silence::Drop).map_err(invalid_setting(&args.join(" ")))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_silence(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.silence)?;
        conf.staged.silence = Some(settings::parse_silence(args[0]).map_err(invalid_setting(args[0]))?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_delay_queue(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.delay_queue)?;
        let n = settings::parse_count(args[0], args[0], 0, 1_000_000).map_err(invalid_setting(args[0]))?;
        conf.staged.delay_queue = Some(n as usize);
        Ok(())
    })
}

pub unsafe extern "C" fn set_wildcard(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.wildcard)?;
        conf.staged.wildcard = Some(on_off(args[0])?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_cookies(cf: *mut ngx_conf_t, cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.cookies)?;
        conf.staged.cookies = Some(on_off(args[0])?);
        Ok(())
    })
}

pub unsafe extern "C" fn set_cookie_secret(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.cookie_file)?;
        let path = args[0];
        // Bounded, and never waiting on a FIFO: a reload must not hang.
        let bytes = read_regular_file(path, 4096)
            .map_err(|e| invalid(path)(ConfigError::Parameter(format!("cannot read the secret file: {e}"))))?;
        let text = String::from_utf8_lossy(&bytes);
        let secrets = cookie::parse_secrets(&text).ok_or_else(|| {
            invalid(path)(ConfigError::Parameter(
                "the secret file must hold 32 hex digits (the current secret), optionally a second line with the previous one".into(),
            ))
        })?;
        conf.staged.cookie_file = Some((path.to_string(), secrets));
        Ok(())
    })
}

pub unsafe extern "C" fn set_rate_limit(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.rate_limit)?;
        if args[0] == "off" && args.len() == 1 {
            conf.staged.rate_limit = Some(None);
            return Ok(());
        }
        let rate = settings::parse_count(args[0], args[0], 1, 1_000_000).map_err(invalid_setting(args[0]))? as u32;
        let mut slip = 2;
        for arg in &args[1..] {
            let (_, value) = config::split_parameter(arg, &["slip"]).map_err(invalid(arg))?;
            slip = settings::parse_count(arg, value, 0, 100).map_err(invalid_setting(arg))? as u32;
        }
        conf.staged.rate_limit = Some(Some(RateLimit { rate, slip }));
        Ok(())
    })
}

pub unsafe extern "C" fn set_udp_fast_path(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.udp_fast_path)?;
        conf.staged.udp_fast_path = Some(on_off(args[0])?);
        Ok(())
    })
}

/// A file name as given, or relative to the directory of the main
/// configuration file (nginx's configuration prefix), as `ssl_certificate`
/// and `include` take it.
unsafe fn full_path(cf: *mut ngx_conf_t, name: &str) -> String {
    if name.starts_with('/') {
        return name.to_string();
    }
    let prefix = String::from_utf8_lossy(str_bytes(&(*(*cf).cycle).conf_prefix));
    format!("{prefix}{name}")
}

/// `dns_dnssec_key`: one more signing key. The files are read when the
/// server's configuration is merged, once `dns_service` names the zone.
pub unsafe extern "C" fn set_dnssec_key(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        let path = full_path(cf, args[0]);
        if conf.staged.dnssec_keys.iter().any(|(p, _)| *p == path) {
            return Err(DirectiveError::Duplicate);
        }
        conf.staged.dnssec_keys.push((path, at));
        Ok(())
    })
}

/// `dns_dnssec_public_keys`: public keys of the other signers (RFC 8901
/// model 2), published in the DNSKEY RRset; repeatable.
pub unsafe extern "C" fn set_dnssec_public_keys(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        for arg in args {
            conf.staged.dnssec_published.push((full_path(cf, arg), at.clone()));
        }
        Ok(())
    })
}

pub unsafe extern "C" fn set_dnssec_signing(
    cf: *mut ngx_conf_t,
    cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    let at = place(cf);
    directive(cf, cmd, conf, |conf, args, _| {
        once(&conf.staged.dnssec_signing)?;
        let settings = SigningSettings::parse(args.iter().copied()).map_err(|e| {
            // Name the value whose removal alone makes the rest valid; a
            // conflict between values (refresh not below the validity)
            // names them all.
            let without = |i: usize| args.iter().enumerate().filter(move |(j, _)| *j != i).map(|(_, a)| *a);
            let culprits: Vec<&str> = (0..args.len())
                .filter(|&i| SigningSettings::parse(without(i)).is_ok())
                .map(|i| args[i])
                .collect();
            match culprits.as_slice() {
                [one] => invalid(one)(e),
                _ => invalid(&args.join(" "))(e),
            }
        })?;
        conf.staged.dnssec_signing = Some((settings, at));
        Ok(())
    })
}
