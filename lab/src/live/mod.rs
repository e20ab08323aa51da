//! `rampart-lab live`: the overload scenario on a real server, in real time.
//!
//! A real axum server runs in a child process (this binary, as the hidden `live-server`
//! command), so that its CPU is its own: one tokio worker thread, a handler burning about
//! 2 ms of CPU per request (yielding to the runtime three times, or never), behind one of the
//! [`stacks`], and a `/stats` route beside them telling what the stack's limiter sees.

pub mod child;
pub mod server;
pub mod stacks;
pub mod stats;
pub mod work;

pub use self::server::{ServerArgs, child_main};
