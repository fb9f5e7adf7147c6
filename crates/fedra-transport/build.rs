//! Generates the gRPC service from proto/fedra.proto with a vendored protoc,
//! so that no system protobuf compiler has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/fedra.proto");
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // Frame payloads become `bytes::Bytes`: chunks are slices of one buffer, no copies.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/fedra.proto"],
        &["proto"],
    )?;
    Ok(())
}
