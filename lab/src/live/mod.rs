//! `rampart-lab live`: the overload scenario on a real server, in real time.
//!
//! A real axum server runs in a child process (this binary, as the hidden `live-server`
//! command), so that its CPU is its own: one tokio worker thread, a handler burning about
//! 2 ms of CPU per request (yielding to the runtime three times, or never), behind one of the
//! [`stacks`], and a `/stats` route beside them telling what the stack's limiter sees. Where
//! this process may create a cgroup (root on Linux), the child runs in one limited to one
//! CPU, as in a pod with a 1-CPU limit ([`cgroup`]).
//!
//! The driver measures the unprotected server's capacity (closed loop), then loads each stack
//! with the lab's own open-loop generator (a hyper client; Poisson arrivals from the lab's
//! seeded generator, the same for every stack; a client timeout) on a [`script`] of load
//! levels, watching the server once a second.

pub mod child;
pub mod aggregate;
pub mod cgroup;
pub mod load;
pub mod observe;
pub mod run;
pub mod script;
pub mod server;
pub mod stacks;
pub mod stats;
pub mod work;

pub use self::server::{ServerArgs, child_main};
