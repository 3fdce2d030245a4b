//! Compiles the kubelet API definitions in proto/ without `protoc`: protox (a protobuf compiler in Rust)
//! parses them into a FileDescriptorSet, and tonic-prost-build generates the messages, the clients and
//! the servers from it. A fresh clone builds with cargo alone.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/deviceplugin_v1beta1.proto", "proto/podresources_v1.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
