//! Generates `custody.v1` from `proto/` with protox, a pure-Rust protobuf compiler: a fresh
//! machine needs only the Rust toolchain (no `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/custody/v1/verifier.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
