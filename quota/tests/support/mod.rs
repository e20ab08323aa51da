//! A real `redis-server` for the tests: started on a free loopback port with nothing saved to
//! disk, stopped (and its files removed) on drop; it can be stopped, paused and started again
//! on the same port mid-test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child process.
pub(crate) struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port of 127.0.0.1. Panics (failing the test) when `redis-server` is
    /// not installed: `.ci/run` installs it.
    pub(crate) fn start() -> Self {
        // Bound and released: free a moment ago, and `redis-server` binds it at once.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let dir = std::env::temp_dir().join(format!("rampart-quota-redis-{port}"));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.restart();
        server
    }

    /// The URL to reach it.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash or a lost host would.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing is saved), and returns once it has
    /// said it accepts connections and answers PING.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (`.ci/run` installs it)");
        // Its log says when it is up: read it, blocking, up to that line (no polling). The end
        // of the log before it means the child exited at start (the port taken meanwhile).
        let mut log = BufReader::new(child.stdout.take().expect("piped"));
        let mut line = String::new();
        loop {
            line.clear();
            let read = log.read_line(&mut line).expect("redis-server's log");
            if read == 0 {
                let status = child.wait().expect("the exited child");
                panic!(
                    "redis-server exited at start ({status}) on port {}",
                    self.port
                );
            }
            if line.contains("Ready to accept connections") {
                break;
            }
        }
        // The rest of its log is drained, so that the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
        self.child = Some(child);
        assert!(
            self.answers_ping(),
            "redis-server on port {} answers PING",
            self.port
        );
    }

    fn answers_ping(&self) -> bool {
        if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            return false;
        }
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut connection| redis::cmd("PING").query::<String>(&mut connection))
            .is_ok_and(|pong| pong == "PONG")
    }

    /// Sends `signal` to the server, through the shell's own `kill` (a builtin of every POSIX
    /// shell: no `procps` needed).
    fn signal(child: &Child, signal: &str) -> std::io::Result<std::process::ExitStatus> {
        Command::new("sh")
            .args(["-c", &format!("kill -{signal} {}", child.id())])
            .status()
    }

    /// Pauses (`true`) or resumes the server: connections stay open, answers stop.
    pub(crate) fn pause(&self, paused: bool) {
        let child = self.child.as_ref().expect("running");
        let status = Self::signal(child, if paused { "STOP" } else { "CONT" }).expect("sh");
        assert!(status.success(), "kill: {status}");
    }

    /// A plain connection, to look at what the quota wrote.
    pub(crate) fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|client| client.get_connection())
            .expect("a connection")
    }

    /// The number of lease scripts Redis has run.
    pub(crate) fn scripts_run(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .expect("INFO");
        info.lines()
            .filter(|line| {
                line.starts_with("cmdstat_evalsha:") || line.starts_with("cmdstat_eval:")
            })
            .filter_map(|line| line.split("calls=").nth(1))
            .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server must be resumed to die cleanly.
            let _ = Self::signal(child, "CONT");
        }
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
