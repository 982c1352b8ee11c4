//! Promises settled from any thread.
//!
//! `Settler::settle` may be called on a model's worker thread; the conversion to
//! JS values (and of a core error into a coded JS error) then runs on the JS thread.

use mlx_napi_core::Error as CoreError;
use napi::{
    bindgen_prelude::{Object, ToNapiValue},
    Env, JsDeferred,
};

use crate::errors::to_js_error;

type Resolver<V> = Box<dyn FnOnce(Env) -> napi::Result<V>>;
type Cleanup = Box<dyn FnOnce(&Env)>;
type ToJs<T, V> = Box<dyn FnOnce(Env, T) -> napi::Result<V> + Send>;

pub struct Settler<T, V: ToNapiValue + 'static> {
    deferred: JsDeferred<V, Resolver<V>>,
    to_js: ToJs<T, V>,
    /// Runs on the JS thread right before the promise settles (e.g. to detach
    /// an AbortSignal listener).
    cleanup: Option<JsThreadOnly<Cleanup>>,
}

/// A value created on the JS thread that must only be used there again. The
/// settle path guarantees that: the resolver closure runs on the JS thread.
pub struct JsThreadOnly<T>(pub T);

// SAFETY: see the type's docs — the value moves through a worker thread untouched
// and is only used (and dropped) inside the resolver, on the JS thread.
unsafe impl<T> Send for JsThreadOnly<T> {}

impl<T: Send + 'static, V: ToNapiValue + 'static> Settler<T, V> {
    pub fn new<'env>(
        env: &'env Env,
        to_js: impl FnOnce(Env, T) -> napi::Result<V> + Send + 'static,
    ) -> napi::Result<(Self, Object<'env>)> {
        let (deferred, promise) = env.create_deferred::<V, Resolver<V>>()?;
        let to_js: ToJs<T, V> = Box::new(to_js);
        Ok((
            Settler {
                deferred,
                to_js,
                cleanup: None,
            },
            promise,
        ))
    }

    pub fn on_settle(&mut self, cleanup: impl FnOnce(&Env) + 'static) {
        self.cleanup = Some(JsThreadOnly(Box::new(cleanup)));
    }

    /// The value of `result`, with the settler back for later; or, on an error,
    /// settles the promise with it and gives `None` (the caller returns the
    /// promise as it is).
    pub fn ok_or_settle<O>(self, result: Result<O, CoreError>) -> Option<(O, Self)> {
        match result {
            Ok(value) => Some((value, self)),
            Err(err) => {
                self.settle(Err(err));
                None
            }
        }
    }

    pub fn settle(self, result: Result<T, CoreError>) {
        let Settler {
            deferred,
            to_js,
            cleanup,
        } = self;
        deferred.resolve(Box::new(move |env: Env| {
            if let Some(JsThreadOnly(cleanup)) = cleanup {
                cleanup(&env);
            }
            match result {
                Ok(value) => to_js(env, value),
                Err(err) => Err(to_js_error(&env, &err)),
            }
        }));
    }
}

// SAFETY: JsDeferred is Send; `to_js` is Send; `cleanup` is
// JsThreadOnly (see above); `T` values are Send by the bound on `settle`'s users.
unsafe impl<T: Send, V: ToNapiValue> Send for Settler<T, V> {}
