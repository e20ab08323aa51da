//! The live server: a stack's application on 127.0.0.1, served by a tokio runtime with one
//! worker thread. [`child_main`] is the hidden `live-server` command the driver starts in a
//! child process, so that the server's CPU is its own.

use std::io::{BufRead as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;

use super::stacks;
use super::work::{Handler, Work};

/// The CPU one request burns.
pub const WORK: Duration = Duration::from_millis(2);

/// The hidden command's arguments: the driver passes them to the child it starts.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The stack in front of the handler (see `live --help`).
    #[arg(long)]
    pub stack: String,
    /// The port to listen on, on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How the handler spends its CPU.
    #[arg(long, value_enum, default_value_t = Handler::Yielding)]
    pub handler: Handler,
    /// CPU burnt per request, in microseconds.
    #[arg(long, default_value_t = 2_000)]
    pub work_us: u64,
    /// `cgroup.procs` files to write this process's id into before anything else runs.
    #[arg(long)]
    pub join: Vec<PathBuf>,
}

/// Binds 127.0.0.1:`port`.
///
/// # Errors
///
/// If the port cannot be bound.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind(("127.0.0.1", port)).await
}

/// Serves `app` on `listener` until the task is dropped, without Nagle's delay on answers.
///
/// # Errors
///
/// If serving fails.
pub async fn serve(listener: TcpListener, app: Router) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

/// The child process: joins the cgroups it is given, calibrates its work, builds a runtime
/// with one worker thread, prints the port it listens on as the first line of its output, and
/// serves until its standard input closes (the driver has finished with it, or died).
pub fn child_main(args: &ServerArgs) -> ExitCode {
    match child(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("live-server: {error}");
            ExitCode::FAILURE
        }
    }
}

fn child(args: &ServerArgs) -> Result<(), Box<dyn std::error::Error>> {
    // Before any other thread exists, so that every thread of the server is in the cgroup.
    for procs in &args.join {
        std::fs::write(procs, std::process::id().to_string())
            .map_err(|error| format!("cannot join {}: {error}", procs.display()))?;
    }
    let stack = stacks::find(&args.stack).ok_or_else(|| format!("no stack {:?}", args.stack))?;
    let work = Work::calibrate(Duration::from_micros(args.work_us), args.handler);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    // The driver closes our standard input when it is done (or dies): stop then.
    std::thread::spawn(|| {
        let mut sink = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut sink)
            .is_ok_and(|read| read > 0)
        {
            sink.clear();
        }
        std::process::exit(0);
    });
    runtime.block_on(async {
        let app = stacks::app(stack.guard, work)?;
        let listener = bind(args.port).await?;
        let addr: SocketAddr = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", addr.port())?;
        out.flush()?;
        drop(out);
        serve(listener, app).await?;
        Ok(())
    })
}
