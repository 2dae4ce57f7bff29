//! Compiles `payments/v1/*.proto` with the vendored protoc and writes the encoded
//! file descriptor set that gRPC reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tonic-prost-build emits no rerun lines of its own once we print any.
    println!("cargo:rerun-if-changed=payments");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);

    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("payments_descriptor.bin"))
        .compile_with_config(
            config,
            &["payments/v1/payments.proto", "payments/v1/admin.proto"],
            &["."],
        )?;
    Ok(())
}
