//! Starting the live server in a child process (this binary, run as `live-server`) and ending
//! it: the child stops when its standard input closes, and is killed if it has not.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use super::work::Handler;

/// A running server child.
#[derive(Debug)]
pub struct ServerChild {
    process: Child,
    /// Held open: the child stops when it closes.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
}

impl ServerChild {
    /// Starts `live-server` for `stack` with `handler`, joining the cgroups whose
    /// `cgroup.procs` files are `join`, and waits for the port it listens on.
    ///
    /// # Errors
    ///
    /// If the binary cannot be started, or the child stops before telling its port.
    pub fn start(stack: &str, handler: Handler, join: &[PathBuf]) -> std::io::Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["live-server", "--stack", stack, "--handler", handler.name()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for procs in join {
            command.arg("--join").arg(procs);
        }
        let mut process = command.spawn()?;
        let stdin = process.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = process.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let port = line.trim().parse::<u16>().ok();
        let mut child = Self {
            process,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], port.unwrap_or(0))),
        };
        if port.is_none() {
            child.stop();
            return Err(std::io::Error::other(format!(
                "the server for {stack} stopped before telling its port"
            )));
        }
        Ok(child)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn id(&self) -> u32 {
        self.process.id()
    }

    /// Stops it and waits for it to end.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for ServerChild {
    fn drop(&mut self) {
        self.stop();
    }
}
