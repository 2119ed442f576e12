//! `dns_service_status`: an HTTP location handler reporting every service's
//! state, load, source readings and counters (shared by all workers) in
//! Prometheus text format, JSON or an HTML page. Which one is chosen by
//! `health::status::Format` from `?format=` and the `Accept` header; the
//! rendering is all in `health`.

use crate::health::html;
use crate::health::shared::ServiceSlot;
use crate::health::status::{self, Format};
use crate::util::guard;
use ngx::core::NGX_CONF_ERROR;
use ngx::ffi::{
    ngx_chain_t, ngx_command_t, ngx_conf_t, ngx_create_temp_buf, ngx_http_arg, ngx_http_discard_request_body,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_pcalloc, ngx_shm_zone_t,
    ngx_str_t, NGX_HTTP_GET, NGX_HTTP_HEAD, NGX_HTTP_INTERNAL_SERVER_ERROR, NGX_HTTP_NOT_ALLOWED, NGX_OK,
};
use ngx::http::Request;
use std::ffi::{c_char, c_void};
use std::ptr;

/// Location configuration: the zone to report from (`null` when the
/// location does not report).
#[repr(C)]
pub struct LocConf {
    zone: *mut ngx_shm_zone_t,
}

pub unsafe extern "C" fn create_loc_conf(cf: *mut ngx_conf_t) -> *mut c_void {
    ngx_pcalloc((*cf).pool, std::mem::size_of::<LocConf>())
}

pub unsafe extern "C" fn set_status(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    guard(NGX_CONF_ERROR, || {
        let lcf = &mut *(conf as *mut LocConf);
        if !lcf.zone.is_null() {
            return c"is duplicate".as_ptr() as *mut c_char;
        }
        lcf.zone = crate::shm::attach_zone(cf);
        if lcf.zone.is_null() {
            return NGX_CONF_ERROR;
        }
        (*crate::conf::http_core_loc_conf_of_conf(cf)).handler = Some(handler);
        ptr::null_mut()
    })
}

unsafe fn loc_conf<'a>(r: *mut ngx_http_request_t) -> &'a LocConf {
    &*crate::conf::status_loc_conf::<LocConf>(r)
}

/// The format the request asks for, by `?format=` or its `Accept` headers.
unsafe fn format_of(r: *mut ngx_http_request_t) -> Format {
    let mut value = ngx_str_t {
        len: 0,
        data: ptr::null_mut(),
    };
    let arg = (ngx_http_arg(r, c"format".as_ptr() as *mut u8, 6, &mut value) == NGX_OK as isize)
        .then(|| crate::util::str_bytes(&value));
    // Several Accept headers are one list (RFC 9110 §5.3).
    let mut accept: Vec<u8> = Vec::new();
    for (name, value) in Request::from_ngx_http_request(r).headers_in_iterator() {
        if name.as_bytes().eq_ignore_ascii_case(b"accept") {
            if !accept.is_empty() {
                accept.push(b',');
            }
            accept.extend_from_slice(value.as_bytes());
        }
    }
    Format::choose(arg, (!accept.is_empty()).then_some(accept.as_slice()))
}

unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    guard(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t, || respond(r))
}

unsafe fn respond(r: *mut ngx_http_request_t) -> ngx_int_t {
    if (*r).method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as usize == 0 {
        return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
    }
    let rc = ngx_http_discard_request_body(r);
    if rc != NGX_OK as isize {
        return rc;
    }
    let zone = loc_conf(r).zone;
    let mut services: Vec<status::Report> = Vec::new();
    if let (Some(table), false) = (crate::shm::table_of(zone), zone.is_null()) {
        let main = &*((*zone).data as *const crate::conf::MainConf);
        for &conf in &main.services {
            let load = &(*conf).load;
            if let Some(i) = load.slot {
                services.push(status::Report {
                    slot: &table.slots[i],
                    policy: &load.policy,
                    smoothing_ms: load.smoothing_ms,
                    addresses: crate::addresses::status_json(&*conf, table),
                });
            }
        }
    }
    let format = format_of(r);
    let body = match format {
        Format::Json => status::json(&services),
        Format::Html => html::html(&services, crate::util::unix_ms()),
        Format::Prometheus => {
            let slots: Vec<&ServiceSlot> = services.iter().map(|s| s.slot).collect();
            let mut text = status::prometheus(&slots);
            if let (Some(table), false) = (crate::shm::table_of(zone), zone.is_null()) {
                text.push_str(&crate::addresses::status_prometheus(
                    &*((*zone).data as *const crate::conf::MainConf),
                    table,
                ));
            }
            text
        }
    };
    let content_type = format.content_type().as_bytes();

    // The same URL answers differently by Accept; and it is always live.
    let request = Request::from_ngx_http_request(r);
    if request.add_header_out("Vary", "Accept").is_none()
        || request.add_header_out("Cache-Control", "no-store").is_none()
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    let headers = &mut (*r).headers_out;
    headers.status = 200;
    headers.content_length_n = body.len() as i64;
    headers.content_type.len = content_type.len();
    headers.content_type.data = content_type.as_ptr() as *mut u8;
    headers.content_type_len = content_type.len();
    let rc = ngx_http_send_header(r);
    if rc == ngx::ffi::NGX_ERROR as isize || rc > NGX_OK as isize || (*r).header_only() != 0 {
        return rc;
    }
    let buf = ngx_create_temp_buf((*r).pool, body.len().max(1));
    if buf.is_null() {
        return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
    }
    ptr::copy_nonoverlapping(body.as_ptr(), (*buf).last, body.len());
    (*buf).last = (*buf).last.add(body.len());
    (*buf).set_last_buf(1);
    (*buf).set_last_in_chain(1);
    let mut out = ngx_chain_t {
        buf,
        next: ptr::null_mut(),
    };
    ngx_http_output_filter(r, &mut out)
}
