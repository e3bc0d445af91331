//! kata-ts-serial-relay: joins the guest's `agent.channel.0` virtio-serial port to an agent that
//! listens on a unix socket (upstream kata-agent with `KATA_AGENT_SERVER_ADDR=unix:///run/kata-agent.sock`).
//! These hosts have no vhost-vsock, so the host reaches the agent over virtio-serial; the relay
//! makes the kata-agent guest look like ours from the host: the same port, the same bytes.
//! Each host connection gets its own connection to the agent (a new ttrpc session), told apart by
//! the ttrpc stream ids starting over (framing.rs), so a host may reconnect at once.
//!
//! Usage: kata-ts-serial-relay --port <device> --socket <path> [--connect-timeout-ms N]

mod framing;
mod relay;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread::sleep;
use std::time::Duration;

use relay::{Relay, IDLE_PAUSE};

const USAGE: &str =
    "usage: kata-ts-serial-relay --port <virtio-serial device> --socket <agent unix socket> [--connect-timeout-ms N]";

#[derive(Debug)]
struct Args {
    port: PathBuf,
    socket: PathBuf,
    connect_budget: Duration,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut port, mut socket, mut budget_ms) = (None, None, 60_000u64);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => port = Some(PathBuf::from(value()?)),
            "--socket" => socket = Some(PathBuf::from(value()?)),
            "--connect-timeout-ms" => {
                let v = value()?;
                budget_ms = v
                    .parse()
                    .map_err(|_| format!("--connect-timeout-ms: not a number: {v:?}"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        port: port.ok_or("--port is required")?,
        socket: socket.ok_or("--socket is required")?,
        connect_budget: Duration::from_millis(budget_ms),
    })
}

fn open_port(args: &Args) -> std::io::Result<File> {
    // Opened once, read-write, for the life of the relay: a virtio-serial port has one opener.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY | nix::libc::O_CLOEXEC)
        .open(&args.port)
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("kata-ts-serial-relay: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let port = match open_port(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("kata-ts-serial-relay: open {}: {e}", args.port.display());
            return ExitCode::from(1);
        }
    };
    let mut relay = Relay::new(&port, &args.port, &args.socket, args.connect_budget);
    loop {
        // pump returns when the host end is disconnected (reads return 0 at once): pause.
        if let Err(e) = relay.pump() {
            eprintln!("kata-ts-serial-relay: {e}");
            return ExitCode::from(1);
        }
        sleep(IDLE_PAUSE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Result<Args, String> {
        parse_args(v.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_arguments() {
        let a = args(&[
            "--port",
            "/dev/vport0p1",
            "--socket",
            "/run/kata-agent.sock",
        ])
        .unwrap();
        assert_eq!(a.port, PathBuf::from("/dev/vport0p1"));
        assert_eq!(a.socket, PathBuf::from("/run/kata-agent.sock"));
        assert_eq!(a.connect_budget, Duration::from_secs(60));
        let a = args(&["--socket", "s", "--port", "p", "--connect-timeout-ms", "5"]).unwrap();
        assert_eq!(a.connect_budget, Duration::from_millis(5));
    }

    #[test]
    fn refuses_bad_arguments() {
        assert_eq!(args(&["--port", "p"]).unwrap_err(), "--socket is required");
        assert_eq!(args(&["--port"]).unwrap_err(), "--port needs a value");
        assert_eq!(
            args(&["--bogus"]).unwrap_err(),
            "unknown argument \"--bogus\""
        );
        assert!(
            args(&["--port", "p", "--socket", "s", "--connect-timeout-ms", "x"])
                .unwrap_err()
                .contains("not a number")
        );
    }
}
