// The server socket's mode does not depend on the umask: under umask 000 (which made the shim
// socket 0777) it is still 0600. Its own test binary, since the umask is process-wide.
use std::os::unix::fs::PermissionsExt;

use nix::sys::stat::{umask, Mode};
use transport::server::{AllowedPeers, Incoming, Server, SOCKET_MODE};

/// A throwaway directory removed on drop, so a failing assertion leaves nothing behind.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_0600_under_umask_000() {
    let dir = std::env::temp_dir().join(format!("ttrpc-umask-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let path = dir.join("s.sock");
    let old = umask(Mode::empty());
    let bound = Server::bind(
        &path,
        AllowedPeers::root_and_self(),
        |_req: Incoming| async { Ok(Vec::new()) },
    );
    umask(old);
    let server = bound.unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    server.close();
    assert_eq!(mode & 0o7777, SOCKET_MODE, "mode {mode:o}");
}
