//! The echo service of rampart's gRPC example and loopback tests: its messages, tonic client
//! and tonic server trait, generated at build time from `proto/echo.proto` by a protobuf
//! compiler written in Rust, so a fresh machine builds it with no `protoc` installed.
//!
//! ```
//! use rampart_grpc_echo::SayRequest;
//!
//! let request = SayRequest { text: "hello".to_owned(), count: 2 };
//! assert_eq!(request.count, 2);
//! ```

/// The generated code of package `rampart.echo.v1`.
#[allow(missing_docs, unreachable_pub, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("rampart.echo.v1");
}

pub use v1::echo_client::EchoClient;
pub use v1::echo_server::{Echo, EchoServer};
pub use v1::{SayReply, SayRequest};
