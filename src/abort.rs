//! `AbortSignal` → a flag the core checks between decoding steps.
//!
//! The listener is attached on the JS thread when a call starts and removed when
//! it settles, so a long-lived signal shared by many calls does not accumulate
//! listeners.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use napi::{
    bindgen_prelude::{FnArgs, Function, FunctionRef, JsObjectValue, Object, ObjectRef, Unknown},
    Env,
};

type Listener = FunctionRef<(), ()>;

type Hook = Box<dyn FnOnce() + Send>;

/// Work to do on the JS thread when the signal fires, besides raising the flag
/// (e.g. rejecting a call that is still queued behind another one).
#[derive(Clone, Default)]
pub struct AbortHooks(Arc<Mutex<Vec<Hook>>>);

impl AbortHooks {
    pub fn add(&self, hook: Hook) {
        self.0.lock().unwrap().push(hook);
    }

    fn run(&self) {
        // Taken out first: a hook may settle a promise whose cleanup touches us.
        let hooks = std::mem::take(&mut *self.0.lock().unwrap());
        for hook in hooks {
            hook();
        }
    }

    fn clear(&self) {
        drop(std::mem::take(&mut *self.0.lock().unwrap()));
    }
}
/// `addEventListener` / `removeEventListener` as called with (type, listener).
type ListenerMethod<'env> =
    Function<'env, FnArgs<(&'static str, Function<'env, (), ()>)>, Unknown<'env>>;

pub struct AbortWatch {
    flag: Arc<AtomicBool>,
    hooks: AbortHooks,
    attached: Option<(ObjectRef<false>, Listener)>,
}

impl AbortWatch {
    /// Watches `signal` (any object with `aborted` and `addEventListener`, i.e. an
    /// `AbortSignal`). An already-aborted signal gives a watch that is
    /// [`aborted`](Self::aborted) from the start.
    pub fn new(env: &Env, signal: Option<Object>) -> napi::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let Some(signal) = signal else {
            return Ok(AbortWatch {
                flag,
                hooks: AbortHooks::default(),
                attached: None,
            });
        };
        if signal
            .get_named_property::<Option<bool>>("aborted")?
            .unwrap_or(false)
        {
            flag.store(true, Ordering::SeqCst);
            return Ok(AbortWatch {
                flag,
                hooks: AbortHooks::default(),
                attached: None,
            });
        }
        let raised = flag.clone();
        let hooks = AbortHooks::default();
        let to_run = hooks.clone();
        let listener = env.create_function_from_closure::<(), (), _>("onabort", move |_| {
            raised.store(true, Ordering::SeqCst);
            to_run.run();
            Ok(())
        })?;
        let add: ListenerMethod = signal.get_named_property("addEventListener")?;
        add.apply(signal, FnArgs::from(("abort", listener)))?;
        Ok(AbortWatch {
            flag,
            hooks,
            attached: Some((signal.create_ref()?, listener.create_ref()?)),
        })
    }

    /// Whether the signal has fired (callers reject work that has not started).
    pub fn aborted(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The flag to hand to the core.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Hooks run (on the JS thread) when the signal fires.
    pub fn hooks(&self) -> AbortHooks {
        self.hooks.clone()
    }

    /// Detaches the listener; call on the JS thread once the work has settled.
    pub fn release(&mut self, env: &Env) {
        self.hooks.clear();
        let Some((signal, listener)) = self.attached.take() else {
            return;
        };
        let detach = || -> napi::Result<()> {
            let target = signal.get_value(env)?;
            let callback = listener.borrow_back(env)?;
            let remove: ListenerMethod = target.get_named_property("removeEventListener")?;
            remove.apply(target, FnArgs::from(("abort", callback)))?;
            Ok(())
        };
        // Failing to detach only leaves a listener that flips an unused flag.
        let _ = detach();
        let _ = signal.unref(env);
        drop(listener);
    }
}
