//! `$dns_qname`, `$dns_qtype`, `$dns_rcode`, `$dns_action`, `$dns_load` and
//! `$dns_state` for `access_log`.

use crate::conf::last_query;
use crate::dns::{name, wire};
use crate::health::state::State;
use crate::serve::{ActionTaken, LastQuery};
use crate::util::guard;
use ngx::ffi::{
    ngx_conf_t, ngx_int_t, ngx_pnalloc, ngx_str_t, ngx_stream_add_variable, ngx_stream_session_t,
    ngx_stream_variable_value_t, NGX_ERROR, NGX_OK, NGX_STREAM_VAR_NOCACHEABLE,
};
use std::borrow::Cow;

type Getter = unsafe extern "C" fn(*mut ngx_stream_session_t, *mut ngx_stream_variable_value_t, usize) -> ngx_int_t;

const VARIABLES: [(&str, Getter); 6] = [
    ("dns_qname", get_qname),
    ("dns_qtype", get_qtype),
    ("dns_rcode", get_rcode),
    ("dns_action", get_action),
    ("dns_load", get_load),
    ("dns_state", get_state),
];

pub unsafe extern "C" fn add_variables(cf: *mut ngx_conf_t) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || {
        for (name, getter) in VARIABLES {
            let mut name = ngx_str_t {
                len: name.len(),
                data: name.as_ptr() as *mut u8,
            };
            let var = ngx_stream_add_variable(cf, &mut name, NGX_STREAM_VAR_NOCACHEABLE as _);
            if var.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            (*var).get_handler = Some(getter);
            (*var).data = 0;
        }
        NGX_OK as ngx_int_t
    })
}

/// Stores `text` as the variable's value (copied into the session's pool).
unsafe fn set_value(s: *mut ngx_stream_session_t, v: *mut ngx_stream_variable_value_t, text: &[u8]) -> ngx_int_t {
    let data = ngx_pnalloc((*(*s).connection).pool, text.len().max(1)) as *mut u8;
    if data.is_null() {
        return NGX_ERROR as ngx_int_t;
    }
    std::ptr::copy_nonoverlapping(text.as_ptr(), data, text.len());
    let v = &mut *v;
    v.data = data;
    v.set_len(text.len() as _);
    v.set_valid(1);
    v.set_no_cacheable(0);
    v.set_not_found(0);
    NGX_OK as ngx_int_t
}

unsafe fn not_found(v: *mut ngx_stream_variable_value_t) -> ngx_int_t {
    (*v).set_not_found(1);
    NGX_OK as ngx_int_t
}

/// Evaluates a variable from the session's last query: `text` gives its
/// value, or `None` for "not found" (logged as `-`).
unsafe fn evaluate(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    text: impl FnOnce(&LastQuery) -> Option<Cow<'static, str>>,
) -> ngx_int_t {
    guard(NGX_ERROR as ngx_int_t, || match last_query(s).and_then(text) {
        Some(value) => set_value(s, v, value.as_bytes()),
        None => not_found(v),
    })
}

unsafe extern "C" fn get_qname(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| {
        (q.qname_len > 0).then(|| name::presentation(&q.qname[..q.qname_len]).into())
    })
}

unsafe extern "C" fn get_qtype(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| q.qtype.map(wire::rtype_name))
}

unsafe extern "C" fn get_rcode(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| q.rcode.map(wire::rcode_name))
}

unsafe extern "C" fn get_action(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| q.action.name().map(Cow::Borrowed))
}

unsafe extern "C" fn get_load(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| {
        (q.action != ActionTaken::None).then(|| format!("{:.3}", f64::from(q.load_milli) / 1000.0).into())
    })
}

unsafe extern "C" fn get_state(
    s: *mut ngx_stream_session_t,
    v: *mut ngx_stream_variable_value_t,
    _: usize,
) -> ngx_int_t {
    evaluate(s, v, |q| {
        (q.action != ActionTaken::None).then(|| State::from_u32(q.state).name().into())
    })
}
