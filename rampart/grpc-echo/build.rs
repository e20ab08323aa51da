//! Generates the echo service's messages, client and server from `proto/echo.proto` with a
//! protobuf compiler written in Rust (`protox`): no `protoc` to install.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/echo.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
