//! Core errors → JS `Error` objects carrying a stable `code`.
//!
//! napi-rs's own `Error` only knows its `Status` enum, so a core error is kept
//! aside while the work runs off-thread and turned into a real JS error object
//! (with `code`, and the right class) once we are back on the JS thread.

use std::ffi::CString;

use mlx_napi_core::{Error as CoreError, ErrorCode};
use napi::{bindgen_prelude::Unknown, sys, Env};

/// Which JS class a code is thrown as: option validation is a `RangeError` or
/// `TypeError` as users expect from Node APIs; cancellation is an `AbortError`.
fn js_class(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidArgument => "RangeError",
        ErrorCode::InvalidArgType => "TypeError",
        ErrorCode::Aborted => "AbortError",
        _ => "Error",
    }
}

/// Builds the JS error object for a core error and wraps it so that returning
/// it from a napi function throws (or rejects with) exactly that object.
pub fn to_js_error(env: &Env, err: &CoreError) -> napi::Error {
    match create(env, err.code(), &err.to_string()) {
        Ok(value) => napi::Error::from(value),
        // Creating the object only fails when the VM is already throwing; fall
        // back to a plain error so the message is not lost.
        Err(_) => napi::Error::from_reason(format!("{}: {err}", err.code())),
    }
}

fn create<'env>(env: &'env Env, code: ErrorCode, message: &str) -> napi::Result<Unknown<'env>> {
    let raw_env = env.raw();
    let code_str = code.as_str();
    let to_js = |s: &str| -> napi::Result<sys::napi_value> {
        let c = CString::new(s.replace('\0', " "))?;
        let mut value = std::ptr::null_mut();
        napi::check_status!(unsafe {
            sys::napi_create_string_utf8(raw_env, c.as_ptr(), s.len() as isize, &mut value)
        })?;
        Ok(value)
    };
    let (js_code, js_message) = (to_js(code_str)?, to_js(message)?);
    let mut error = std::ptr::null_mut();
    napi::check_status!(unsafe {
        match js_class(code) {
            "RangeError" => sys::napi_create_range_error(raw_env, js_code, js_message, &mut error),
            "TypeError" => sys::napi_create_type_error(raw_env, js_code, js_message, &mut error),
            _ => sys::napi_create_error(raw_env, js_code, js_message, &mut error),
        }
    })?;
    if js_class(code) == "AbortError" {
        let name = CString::new("name")?;
        let value = to_js("AbortError")?;
        napi::check_status!(unsafe {
            sys::napi_set_named_property(raw_env, error, name.as_ptr(), value)
        })?;
    }
    Ok(unsafe { Unknown::from_raw_unchecked(raw_env, error) })
}

/// A synchronous export's error, thrown on the JS thread right away.
pub fn throw(env: &Env, err: CoreError) -> napi::Error {
    to_js_error(env, &err)
}
