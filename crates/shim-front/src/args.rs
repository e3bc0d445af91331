//! The front's command line: `--socket`, `--lock`, `--daemon-socket`, `--ready-fd`, then `--`
//! and the daemon's command.

/// What the front was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub socket: String,
    pub lock: String,
    pub daemon_socket: String,
    pub ready_fd: Option<i32>,
    /// The daemon's program and arguments (started again after it dies).
    pub command: Vec<String>,
}

/// A bad command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("unknown flag {0:?}")]
    Unknown(String),
    #[error("flag {0} needs a value")]
    Missing(&'static str),
    #[error("--ready-fd {0:?} is not a descriptor number")]
    BadFd(String),
    #[error("no daemon command after --")]
    NoCommand,
}

/// Parses the arguments after the program name.
pub fn parse(argv: impl IntoIterator<Item = String>) -> Result<Args, ArgsError> {
    let mut it = argv.into_iter();
    let (mut socket, mut lock, mut daemon, mut ready) = (None, None, None, None);
    while let Some(a) = it.next() {
        let slot = match a.as_str() {
            "--" => break,
            "--socket" => &mut socket,
            "--lock" => &mut lock,
            "--daemon-socket" => &mut daemon,
            "--ready-fd" => &mut ready,
            _ => return Err(ArgsError::Unknown(a)),
        };
        *slot = Some(it.next().ok_or(ArgsError::Missing("value"))?);
    }
    let command: Vec<String> = it.collect();
    if command.is_empty() {
        return Err(ArgsError::NoCommand);
    }
    let ready_fd = match ready {
        None => None,
        Some(s) => Some(s.parse::<i32>().map_err(|_| ArgsError::BadFd(s.clone()))?),
    };
    Ok(Args {
        socket: socket.ok_or(ArgsError::Missing("--socket"))?,
        lock: lock.ok_or(ArgsError::Missing("--lock"))?,
        daemon_socket: daemon.ok_or(ArgsError::Missing("--daemon-socket"))?,
        ready_fd,
        command,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_string()).collect()
    }

    #[test]
    fn parses_a_full_command_line() {
        let a = parse(v(&[
            "--socket",
            "/r/s",
            "--lock",
            "/r/l",
            "--daemon-socket",
            "/r/d",
            "--ready-fd",
            "3",
            "--",
            "node",
            "x.js",
            "daemon",
        ]))
        .unwrap();
        assert_eq!(a.socket, "/r/s");
        assert_eq!(a.ready_fd, Some(3));
        assert_eq!(a.command, v(&["node", "x.js", "daemon"]));
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        assert_eq!(
            parse(v(&["--x", "1", "--", "a"])),
            Err(ArgsError::Unknown("--x".into()))
        );
        assert_eq!(
            parse(v(&[
                "--socket",
                "/s",
                "--lock",
                "/l",
                "--daemon-socket",
                "/d"
            ])),
            Err(ArgsError::NoCommand)
        );
        assert_eq!(
            parse(v(&[
                "--socket",
                "/s",
                "--lock",
                "/l",
                "--daemon-socket",
                "/d",
                "--ready-fd",
                "x",
                "--",
                "a"
            ])),
            Err(ArgsError::BadFd("x".into()))
        );
    }
}
