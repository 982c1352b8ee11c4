//! Reading JS option objects: number checks shared by every call, the
//! `signal` property, and typed conversion of the rest.

use mlx_napi_core::Error as CoreError;
use napi::{
    bindgen_prelude::{FromNapiValue, JsObjectValue, Object},
    Env, JsValue,
};

use crate::abort::AbortWatch;

/// A JS number that must be a whole number within `min..=max`.
pub fn whole(name: &str, value: Option<f64>, min: f64, max: f64) -> Result<Option<u64>, CoreError> {
    match value {
        None => Ok(None),
        Some(v) if v.fract() == 0.0 && (min..=max).contains(&v) => Ok(Some(v as u64)),
        Some(v) => Err(CoreError::invalid(format!(
            "{name} must be a whole number in {min}..={max}, got {v}"
        ))),
    }
}

pub fn finite(name: &str, value: Option<f64>) -> Result<Option<f32>, CoreError> {
    match value {
        Some(v) if !v.is_finite() => Err(CoreError::invalid(format!(
            "{name} must be finite, got {v}"
        ))),
        other => Ok(other.map(|v| v as f32)),
    }
}

/// Watches `options.signal` (a typed options struct cannot hold a live JS object).
pub fn abort_watch(env: &Env, options: &Option<Object>) -> napi::Result<AbortWatch> {
    let signal = match options {
        Some(o) => o.get_named_property::<Option<Object>>("signal")?,
        None => None,
    };
    AbortWatch::new(env, signal)
}

/// Converts the raw options object to its typed struct.
pub fn typed<T: FromNapiValue>(env: &Env, options: &Option<Object>) -> napi::Result<Option<T>> {
    options
        .as_ref()
        .map(|o| unsafe { T::from_napi_value(env.raw(), o.raw()) })
        .transpose()
}
