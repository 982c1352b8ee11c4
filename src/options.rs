//! Reading JS option objects: number checks shared by every call, the
//! `signal` property, and typed conversion of the rest.

use mlx_napi_core::Error as CoreError;
use napi::{
    bindgen_prelude::{FromNapiValue, JsObjectValue, Object, Unknown},
    Env, JsValue, ValueType,
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

// ------------------------------------------------------------ type checks

/// The JS type an option must have (`undefined` and `null` always mean "not
/// given", except where `NumberOrNull` gives null a meaning).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Number,
    String,
    Boolean,
    Function,
    /// A plain object (nested options, maps).
    Object,
    /// An `AbortSignal` (any object).
    Signal,
    /// `true` / `false` or a plain object of settings (`vad`).
    BooleanOrObject,
    /// A number or `null` (null has a meaning: "never").
    NumberOrNull,
    NumberOrNumbers,
    StringOrStrings,
    /// A string or a plain object (`grammar`, `toolChoice`).
    StringOrObject,
    /// An array of plain objects (`tools`).
    Objects,
    Numbers,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Number => "a number",
            Kind::String => "a string",
            Kind::Boolean => "a boolean",
            Kind::Function => "a function",
            Kind::Object => "an object",
            Kind::Signal => "an AbortSignal",
            Kind::BooleanOrObject => "a boolean or an object",
            Kind::NumberOrNull => "a number or null",
            Kind::NumberOrNumbers => "a number or an array of numbers",
            Kind::StringOrStrings => "a string or an array of strings",
            Kind::StringOrObject => "a string or an object",
            Kind::Objects => "an array of objects",
            Kind::Numbers => "an array of numbers",
        }
    }
}

/// What a value is, in the words of Node's own `ERR_INVALID_ARG_TYPE` messages.
pub fn received(value: &Unknown) -> String {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined".into(),
        Ok(ValueType::Null) => "null".into(),
        Ok(ValueType::Boolean) => "type boolean".into(),
        Ok(ValueType::Number) => "type number".into(),
        Ok(ValueType::String) => "type string".into(),
        Ok(ValueType::Function) => "type function".into(),
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array".into(),
        Ok(ValueType::Object) => "an object".into(),
        Ok(ValueType::BigInt) => "type bigint".into(),
        Ok(ValueType::Symbol) => "type symbol".into(),
        _ => "a value of another type".into(),
    }
}

/// `ERR_INVALID_ARG_TYPE` (a `TypeError`) naming the argument or option.
pub fn type_error(name: &str, expected: &str, value: &Unknown) -> CoreError {
    CoreError::InvalidArgType(format!(
        "The \"{name}\" argument must be {expected}. Received {}",
        received(value)
    ))
}

fn is_absent(value: &Unknown) -> bool {
    matches!(
        value.get_type(),
        Ok(ValueType::Undefined) | Ok(ValueType::Null)
    )
}

fn has_type(value: &Unknown, kind: Kind) -> napi::Result<bool> {
    let ty = value.get_type()?;
    let array_of = |want: ValueType| -> napi::Result<bool> {
        if !value.is_array()? {
            return Ok(false);
        }
        let array = unsafe { Object::from_napi_value(value.value().env, value.raw())? };
        for i in 0..array.get_array_length()? {
            let item: Unknown = array.get_element(i)?;
            if item.get_type()? != want {
                return Ok(false);
            }
        }
        Ok(true)
    };
    Ok(match kind {
        Kind::Number => ty == ValueType::Number,
        Kind::String => ty == ValueType::String,
        Kind::Boolean => ty == ValueType::Boolean,
        Kind::Function => ty == ValueType::Function,
        Kind::Object | Kind::Signal => ty == ValueType::Object && !value.is_array()?,
        Kind::BooleanOrObject => {
            ty == ValueType::Boolean || (ty == ValueType::Object && !value.is_array()?)
        }
        Kind::NumberOrNull => ty == ValueType::Number,
        Kind::NumberOrNumbers => ty == ValueType::Number || array_of(ValueType::Number)?,
        Kind::StringOrStrings => ty == ValueType::String || array_of(ValueType::String)?,
        Kind::StringOrObject => {
            ty == ValueType::String || (ty == ValueType::Object && !value.is_array()?)
        }
        Kind::Objects => array_of(ValueType::Object)?,
        Kind::Numbers => array_of(ValueType::Number)?,
    })
}

/// Checks an options argument against its known fields: not an object →
/// `ERR_INVALID_ARG_TYPE`; a field of the wrong type → `ERR_INVALID_ARG_TYPE`
/// naming it (`options.maxTokens`); an unknown field → `ERR_INVALID_ARG`
/// (a misspelt option never passes silently). `undefined` / `null` → `None`.
pub fn check_options<'env>(
    name: &str,
    value: Option<Unknown<'env>>,
    fields: &[(&str, Kind)],
) -> Result<Option<Object<'env>>, CoreError> {
    let Some(value) = value.filter(|v| !is_absent(v)) else {
        return Ok(None);
    };
    let internal = |e: napi::Error| CoreError::invalid(format!("{name}: {}", e.reason));
    if !has_type(&value, Kind::Object).map_err(internal)? {
        return Err(type_error(name, "an object", &value));
    }
    let object =
        unsafe { Object::from_napi_value(value.value().env, value.raw()) }.map_err(internal)?;
    let keys = object.get_property_names().map_err(internal)?;
    for i in 0..keys.get_array_length().map_err(internal)? {
        let key: String = keys.get_element(i).map_err(internal)?;
        let Some(&(_, kind)) = fields.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
            return Err(CoreError::invalid(format!(
                "unknown option {name}.{key} (known: {})",
                known.join(", ")
            )));
        };
        let field: Unknown = object.get_named_property(&key).map_err(internal)?;
        if is_absent(&field) {
            continue;
        }
        if !has_type(&field, kind).map_err(internal)? {
            return Err(type_error(
                &format!("{name}.{key}"),
                kind.describe(),
                &field,
            ));
        }
    }
    Ok(Some(object))
}

/// A required string argument (`source`, a path).
pub fn string_arg(name: &str, value: &Unknown) -> Result<String, CoreError> {
    if value.get_type().ok() != Some(ValueType::String) {
        return Err(type_error(name, "of type string", value));
    }
    unsafe { String::from_napi_value(value.value().env, value.raw()) }
        .map_err(|e| CoreError::invalid(format!("{name}: {}", e.reason)))
}
