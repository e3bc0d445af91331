//! kata-ts-agent: a minimal Kata-compatible guest agent. Serves `grpc.AgentService` and
//! `grpc.Health` with ttrpc-rust (what the Kata agent uses) so kata-ts's client can be tested
//! against the real ttrpc implementation now and run inside the guest later.
//!
//! Usage: kata-ts-agent --listen <unix:PATH|hvsock:PATH[:PORT]|serial:PATH|vsock:PORT>
//!        [--root DIR] [--record FILE] [--delay-method METHOD:MS]... [--copy-stream-timeout-ms MS]
//!        [--guest [--device-timeout-ms MS] [--poweroff-on-destroy]]
//!
//! By default the sandbox is modelled (nothing is mounted or run; tests of the host side rely
//! on that). `--guest` carries requests out for real (see `guest/`); it is how the agent runs
//! inside the VM (`--guest --listen serial:/dev/vportNpM --root /`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

use kata_ts_agent::copy_file::{CopyFiles, DEFAULT_STREAM_TIMEOUT};
use kata_ts_agent::guest::guest_root::GuestRoot;
use kata_ts_agent::guest::{self as guest, GuestConfig};
use kata_ts_agent::listen::{self, ListenAddr};
use kata_ts_agent::record::Recorder;
use kata_ts_agent::service::{self, Agent};

/// Parsed command line.
#[derive(Debug)]
struct Args {
    listen: ListenAddr,
    root: PathBuf,
    record: Option<PathBuf>,
    delays: HashMap<String, Duration>,
    guest: bool,
    device_timeout: Duration,
    poweroff_on_destroy: bool,
    copy_stream_timeout: Duration,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut listen = None;
    let mut root = PathBuf::from("/");
    let mut record = None;
    let mut delays = HashMap::new();
    let mut guest = false;
    let mut device_timeout = guest::DEFAULT_DEVICE_TIMEOUT;
    let mut poweroff_on_destroy = false;
    let mut copy_stream_timeout = DEFAULT_STREAM_TIMEOUT;
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(ListenAddr::parse(&value()?)?),
            "--root" => root = PathBuf::from(value()?),
            "--record" => record = Some(PathBuf::from(value()?)),
            "--delay-method" => {
                let v = value()?;
                let (m, ms) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--delay-method {v:?}: want METHOD:MS"))?;
                let ms: u64 = ms
                    .parse()
                    .map_err(|e| format!("--delay-method {v:?}: {e}"))?;
                delays.insert(m.to_string(), Duration::from_millis(ms));
            }
            "--guest" => guest = true,
            "--poweroff-on-destroy" => poweroff_on_destroy = true,
            "--device-timeout-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .map_err(|e| format!("--device-timeout-ms {v:?}: {e}"))?;
                device_timeout = Duration::from_millis(ms);
            }
            "--copy-stream-timeout-ms" => {
                let v = value()?;
                let ms: u64 = v
                    .parse()
                    .map_err(|e| format!("--copy-stream-timeout-ms {v:?}: {e}"))?;
                copy_stream_timeout = Duration::from_millis(ms.max(1));
            }
            "--help" | "-h" => return Err(String::new()),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let listen = listen.ok_or("--listen is required")?;
    Ok(Args {
        listen,
        root,
        record,
        delays,
        guest,
        device_timeout,
        poweroff_on_destroy,
        copy_stream_timeout,
    })
}

const USAGE: &str =
    "usage: kata-ts-agent --listen <unix:PATH|hvsock:PATH[:PORT]|serial:PATH|vsock:PORT> \
[--root DIR] [--record FILE] [--delay-method METHOD:MS]... [--copy-stream-timeout-ms MS] \
[--guest [--device-timeout-ms MS] [--poweroff-on-destroy]]";

async fn serve(args: Args) -> Result<(), String> {
    let recorder = match &args.record {
        Some(p) => Some(Recorder::open(p).map_err(|e| format!("--record {}: {e}", p.display()))?),
        None => None,
    };
    // The root is the agent's own configuration (trusted): made when missing, as a test root is.
    std::fs::create_dir_all(&args.root)
        .map_err(|e| format!("--root {}: {e}", args.root.display()))?;
    let mut agent = Agent::new(args.root.clone(), recorder, args.delays);
    if args.guest {
        agent = agent
            .into_guest(GuestConfig {
                root: GuestRoot::new(args.root),
                device_timeout: args.device_timeout,
                poweroff_on_destroy: args.poweroff_on_destroy,
            })
            .map_err(|e| format!("guest mode: {e}"))?;
    }
    let agent = Arc::new(agent);
    abandon_idle_copies(agent.copies(), args.copy_stream_timeout);
    let copies = agent.copies();
    // A host that went away (no connection left) will not finish its copies.
    let listener = listen::counted(
        args.listen
            .listen()
            .map_err(|e| format!("listen {:?}: {e}", args.listen))?,
        move || {
            copies.streams().abandon_all();
        },
    );
    let mut server = ttrpc::r#async::Server::new()
        .register_service(service::services(agent.clone()))
        .add_listener(listener);
    server
        .start()
        .await
        .map_err(|e| format!("start ttrpc server: {e}"))?;
    eprintln!("kata-ts-agent: listening on {:?}", args.listen);

    let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    agent.shutdown().await;
    server
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e}"))?;
    if let ListenAddr::Unix(p) | ListenAddr::HybridVsock { path: p, .. } = &args.listen {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

/// Removes the temp file of every CopyFile stream with no chunk for `timeout`.
fn abandon_idle_copies(copies: Arc<CopyFiles>, timeout: Duration) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval((timeout / 4).max(Duration::from_millis(10)));
        loop {
            tick.tick().await;
            copies.streams().abandon_idle(timeout);
        }
    });
}

fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some(guest::spawn::HELPER_FLAG) {
        guest::container_init::run();
    }
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("kata-ts-agent: {e}");
            }
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kata-ts-agent: tokio runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kata-ts-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
