//! Private server processes a test owns: started on a free port in a
//! directory of their own, killed (`SIGKILL`, the whole process group, as a
//! crash would) and started again on the same port and data, for the
//! "a broker restart loses nothing" checks that must not disturb the shared
//! peers other tests are using.
//!
//! ```no_run
//! use flextime_testkit::server::{PrivateServer, free_port, require_binary};
//! let Some(bin) = require_binary("redis-server", "my_test") else { return };
//! let port = free_port().unwrap();
//! let mut server = PrivateServer::start("redis", port, move |dir| {
//!     let mut cmd = std::process::Command::new(&bin);
//!     cmd.args(["--port", &port.to_string(), "--appendonly", "yes", "--dir"]).arg(dir);
//!     cmd
//! })
//! .unwrap();
//! server.restart().unwrap(); // same port, same directory
//! ```

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Decision, REQUIRE_SERVICES_VAR, is_truthy, process_env};

/// How long [`PrivateServer`] waits for its port to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A port that was free a moment ago on 127.0.0.1.
///
/// # Errors
///
/// When no port can be bound.
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Finds `name` on `PATH` (or takes an absolute path as is).
pub fn which(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    if path.is_absolute() {
        return path.is_file().then(|| path.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Decides whether `test` can run with the program `name`, with `found`
/// standing for the lookup on `PATH`: run, skip (saying why) or fail when
/// `FLEXTIME_REQUIRE_SERVICES=1`.
pub fn decide_binary(
    name: &str,
    test: &str,
    found: Option<PathBuf>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Decision {
    match found {
        Some(path) => Decision::Run(path.display().to_string()),
        None if is_truthy(lookup(REQUIRE_SERVICES_VAR).as_deref()) => Decision::Fail(format!(
            "{test}: `{name}` is not on PATH and {REQUIRE_SERVICES_VAR}=1 forbids skipping"
        )),
        None => Decision::Skip(format!("SKIPPED {test}: `{name}` is not on PATH")),
    }
}

/// The path of the program `name`, or `None` after printing the skip line;
/// panics instead when services are required, like [`crate::require`].
#[track_caller]
pub fn require_binary(name: &str, test: &str) -> Option<PathBuf> {
    match decide_binary(name, test, which(name), process_env) {
        Decision::Run(path) => Some(PathBuf::from(path)),
        Decision::Skip(message) => {
            eprintln!("{message}");
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

type Launcher = Box<dyn Fn(&Path) -> Command + Send + Sync>;

/// A server process owned by one test, in its own process group and its own
/// temporary directory (removed on drop, after the process is killed).
pub struct PrivateServer {
    name: String,
    port: u16,
    dir: PathBuf,
    launch: Launcher,
    child: Option<Child>,
}

impl std::fmt::Debug for PrivateServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateServer")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl PrivateServer {
    /// Creates a fresh directory, runs `launch(dir)` and waits until
    /// 127.0.0.1:`port` accepts connections. The command's output goes to
    /// `<dir>/server.log`.
    ///
    /// # Errors
    ///
    /// When the process cannot be spawned, or exits, or its port does not
    /// open within [`START_TIMEOUT`] (the error carries the log's tail).
    pub fn start(
        name: &str,
        port: u16,
        launch: impl Fn(&Path) -> Command + Send + Sync + 'static,
    ) -> io::Result<Self> {
        let dir = std::env::temp_dir().join(crate::unique_name(name));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            name: name.to_owned(),
            port,
            dir,
            launch: Box::new(launch),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's own directory (data, configuration, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server like a crash would (`SIGKILL` to its process
    /// group), waits for it to exit, starts it again with the same command
    /// and directory and waits for its port.
    ///
    /// # Errors
    ///
    /// As [`PrivateServer::start`].
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.spawn()
    }

    /// Kills the process group and reaps the child. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // the group id is the child's pid (process_group(0))
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let mut command = (self.launch)(&self.dir);
        command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        let mut child = command.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("{}: spawning the server: {e}", self.name))
        })?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect_timeout(
                &([127, 0, 0, 1], self.port).into(),
                Duration::from_millis(500),
            )
            .is_ok()
            {
                self.child = Some(child);
                return Ok(());
            }
            if let Some(status) = child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited ({status}) before listening on {}: {}",
                    self.name,
                    self.port,
                    self.log_tail()
                )));
            }
            if Instant::now() > deadline {
                self.child = Some(child);
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{} did not listen on {} within {START_TIMEOUT:?}: {}",
                        self.name,
                        self.port,
                        self.log_tail()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_binary_skips_or_fails() {
        let none = |_: &str| None;
        assert!(matches!(
            decide_binary("nope", "t", None, none),
            Decision::Skip(m) if m.contains("`nope` is not on PATH")
        ));
        let required = |name: &str| (name == REQUIRE_SERVICES_VAR).then(|| "1".to_owned());
        assert!(matches!(
            decide_binary("nope", "t", None, required),
            Decision::Fail(m) if m.contains("forbids skipping")
        ));
        assert_eq!(
            decide_binary("sh", "t", Some("/bin/sh".into()), required),
            Decision::Run("/bin/sh".into())
        );
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("flextime-no-such-program").is_none());
    }

    #[test]
    fn a_server_that_exits_is_an_error_with_its_log() {
        let port = free_port().unwrap();
        let err = PrivateServer::start("exits", port, |_| {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", "echo boom-from-server; exit 3"]);
            cmd
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("exited"), "{text}");
        assert!(text.contains("boom-from-server"), "{text}");
    }

    #[test]
    fn restart_keeps_port_and_directory() {
        let Some(python) = require_binary("python3", "restart_keeps_port_and_directory") else {
            return;
        };
        let port = free_port().unwrap();
        let mut server = PrivateServer::start("listener", port, move |dir| {
            let mut cmd = Command::new(&python);
            cmd.args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(dir);
            cmd
        })
        .unwrap();
        let dir = server.dir().to_path_buf();
        std::fs::write(dir.join("kept"), b"x").unwrap();
        server.restart().unwrap();
        assert!(dir.join("kept").exists());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        drop(server);
        assert!(!dir.exists());
    }
}
