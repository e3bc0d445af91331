//! The D-Bus side of a scope: one lazily opened connection, calls to systemd's manager object,
//! and polling a unit's `ActiveState`.

use std::time::{Duration, Instant};

use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use super::SystemdManager;
use crate::error::SystemdError;

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";

impl SystemdManager {
    /// The bus connection, opened on first use.
    pub(super) fn connection(&self) -> Result<Connection, SystemdError> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(conn) = guard.as_ref() {
            return Ok(conn.clone());
        }
        let address = self
            .opts
            .bus_address
            .clone()
            .unwrap_or_else(|| "system".to_string());
        let conn = match &self.opts.bus_address {
            None => Connection::system(),
            Some(addr) => {
                zbus::blocking::connection::Builder::address(addr.as_str()).and_then(|b| b.build())
            }
        }
        .map_err(|source| SystemdError::Connect {
            address,
            source: Box::new(source),
        })?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Calls a method of systemd's manager object and decodes its reply.
    pub(super) fn call<B, R>(&self, call: &'static str, body: &B) -> Result<R, SystemdError>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
        R: for<'d> zbus::zvariant::DynamicDeserialize<'d>,
    {
        let conn = self.connection()?;
        let wrap = |source| SystemdError::Call {
            call,
            unit: self.opts.unit.clone(),
            source: Box::new(source),
        };
        let msg = conn
            .call_method(Some(DEST), PATH, Some(MANAGER), call, body)
            .map_err(wrap)?;
        msg.body().deserialize::<R>().map_err(wrap)
    }

    /// The unit's `ActiveState`, or `None` when systemd does not know the unit.
    pub(super) fn active_state(&self) -> Result<Option<String>, SystemdError> {
        let path: OwnedObjectPath = match self.call("GetUnit", &(self.opts.unit.as_str(),)) {
            Ok(p) => p,
            Err(SystemdError::Call { source, .. }) if is_no_such_unit(&source) => return Ok(None),
            Err(e) => return Err(e),
        };
        let conn = self.connection()?;
        let wrap = |source| SystemdError::Call {
            call: "Get(ActiveState)",
            unit: self.opts.unit.clone(),
            source: Box::new(source),
        };
        let msg = conn
            .call_method(
                Some(DEST),
                path.as_str(),
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &("org.freedesktop.systemd1.Unit", "ActiveState"),
            )
            .map_err(wrap)?;
        let value: OwnedValue = msg.body().deserialize().map_err(wrap)?;
        let state = String::try_from(value).map_err(|e| wrap(zbus::Error::Variant(e)))?;
        Ok(Some(state))
    }

    /// Polls the unit's state until `done` holds, backing off up to 10 ms, or the timeout.
    pub(super) fn wait_for(
        &self,
        call: &'static str,
        want: &'static str,
        done: impl Fn(Option<&str>) -> bool,
    ) -> Result<Option<String>, SystemdError> {
        let start = Instant::now();
        let mut delay = Duration::from_micros(200);
        loop {
            let state = self.active_state()?;
            if done(state.as_deref()) {
                return Ok(state);
            }
            if start.elapsed() > self.opts.timeout {
                return Err(SystemdError::Timeout {
                    call,
                    unit: self.opts.unit.clone(),
                    want,
                    last: state.unwrap_or_else(|| "(no unit)".into()),
                    timeout_ms: u64::try_from(self.opts.timeout.as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(10));
        }
    }
}

/// Whether a call failed because systemd does not know the unit.
pub(super) fn is_no_such_unit(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::MethodError(name, _, _) if name.as_str() == NO_SUCH_UNIT)
}
