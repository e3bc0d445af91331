use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, UnwindSafe};

use napi::Error;

/// Stable error code carried to JS as `error.code`; `ts/native.ts` maps each to a typed `Err`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

impl From<napi::Status> for Code {
    /// napi's own failures (an argument of the wrong type and the like) share one code.
    fn from(_: napi::Status) -> Self {
        Code("NAPI_ERROR")
    }
}

/// Result of a binding call whose error carries a stable code. Named `Result` because
/// napi-derive recognises fallible exports by that name.
pub type Result<T> = napi::Result<T, Code>;

/// Builds a coded JS error.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error<Code> {
    Error::new(Code(code), message.into())
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".to_string());
    format!("native panic: {text}")
}

/// Runs a synchronous export body; a panic becomes an error with code `PANIC`.
pub fn guard<T>(body: impl FnOnce() -> Result<T> + UnwindSafe) -> Result<T> {
    catch_unwind(body).unwrap_or_else(|payload| Err(coded("PANIC", panic_message(&*payload))))
}

/// napi-rs async exports reject with `napi::Error<Status>`, which cannot hold a custom code, so
/// an async rejection carries its code as the message prefix `CODE: ` (parsed by `ts/native.ts`).
fn to_async_error(err: Error<Code>) -> napi::Error {
    napi::Error::from_reason(format!("{}: {}", err.status.0, err.reason))
}

/// Runs an async export body as its own task; a panic rejects with code `PANIC`.
pub async fn guard_async<T, F>(body: F) -> napi::Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    let result = match tokio::spawn(body).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(coded("PANIC", panic_message(&*e.into_panic()))),
        Err(e) => Err(coded("CANCELLED", format!("native task cancelled: {e}"))),
    };
    result.map_err(to_async_error)
}
