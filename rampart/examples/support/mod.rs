//! What the examples and the loopback test share: the HTTP server, the client stacks and the
//! chaos run. Each example uses only part of it.
#![allow(dead_code, unreachable_pub)]

pub mod chaos;
pub mod client;
pub mod grpc;
pub mod server;
