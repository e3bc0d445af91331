// `--listen serial:<path>`: the agent serves ttrpc on a character device it opens read-write
// (virtio-serial in the guest). A raw pty stands in for the port here: the agent opens the
// slave, the test speaks ttrpc frames on the master.
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use transport::frame::{request_frame, Header, HEADER_LEN};
use transport::wire::{Request, Response};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn raw_pty() -> (OwnedFd, OwnedFd, String) {
    let pty = openpty(None, None).expect("openpty");
    let mut t = tcgetattr(pty.slave.as_fd()).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &t).unwrap();
    let path = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&pty.slave)
    ))
    .unwrap()
    .to_string_lossy()
    .into_owned();
    (pty.master, pty.slave, path)
}

fn read_response(master: &mut File) -> (Header, Response) {
    let mut head = [0u8; HEADER_LEN];
    master.read_exact(&mut head).unwrap();
    let h = Header::decode(&head).unwrap();
    let mut data = vec![0u8; h.data_len()];
    master.read_exact(&mut data).unwrap();
    (h, Response::decode(&data).unwrap())
}

#[test]
fn health_check_over_a_serial_port() {
    let (master, _slave, path) = raw_pty();
    let root = std::env::temp_dir().join(format!("kata-ts-agent-serial-{}", std::process::id()));
    let _agent = Agent(
        Command::new(env!("CARGO_BIN_EXE_kata-ts-agent"))
            .args(["--listen", &format!("serial:{path}"), "--root"])
            .arg(&root)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut master = File::from(master);
    // The agent may not have opened the port yet; bytes written before wait in the pty.
    let started = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    // grpc.Health/Check with CheckRequest{} and grpc.Health/Version, on streams 1 and 3.
    for (id, method) in [(1u32, "Check"), (3, "Version")] {
        let req = Request {
            service: "grpc.Health",
            method,
            payload: &[],
            timeout_nano: 5_000_000_000,
        }
        .encode();
        master.write_all(&request_frame(id, &req).unwrap()).unwrap();
        let (h, res) = read_response(&mut master);
        assert_eq!(h.stream_id, id);
        assert_eq!(res.status.map_or(0, |s| s.code), 0);
        if method == "Check" {
            // HealthCheckResponse{status: SERVING(1)}
            assert_eq!(res.payload, [0x08, 0x01]);
        } else {
            assert!(String::from_utf8_lossy(&res.payload).contains("kata-ts-agent"));
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(root);
}
