//! Compiles the Envoy API definitions that the `envoy-types` crate ships (its `proto/` directory)
//! into one encoded descriptor set, so that `compare` can read any Envoy resource, typed configs
//! included, field by field and by name. Nothing is generated into the source tree.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let root = envoy_types_dir().join("proto");
    let includes = [
        "data-plane-api",
        "googleapis",
        "xds",
        "protoc-gen-validate",
        "cel-spec/proto",
        "client_model",
        "opentelemetry-proto",
        "ratelimit/api",
    ]
    .map(|d| root.join(d));
    let mut files = Vec::new();
    collect(&root.join("data-plane-api/envoy"), &mut files);
    files.sort();
    // Each file on its own, with only its imports in scope, as protoc sees it: in one shared
    // scope Envoy's relative names (`config.core.v3.DataSource` inside `envoy.extensions.…`)
    // would resolve to packages of unrelated files.
    let mut merged: Vec<prost_types::FileDescriptorProto> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut skipped = Vec::new();
    for file in &files {
        let mut compiler = protox::Compiler::new(&includes).expect("the include paths exist");
        compiler.include_imports(true);
        match compiler.open_file(file) {
            Ok(_) => {
                for proto in compiler.file_descriptor_set().file {
                    if seen.insert(proto.name().to_string()) {
                        merged.push(proto);
                    }
                }
            }
            // A file whose imports envoy-types does not ship is left out.
            Err(e) => skipped.push(format!("{}: {e}", file.display())),
        }
    }
    assert!(
        files.len() > 300 && skipped.len() * 20 < files.len(),
        "compiled {} of {} Envoy definitions; failed: {skipped:#?}",
        files.len() - skipped.len(),
        files.len(),
    );
    let set = prost_types::FileDescriptorSet { file: merged };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(
        out.join("envoy_descriptors.bin"),
        prost::Message::encode_to_vec(&set),
    )
    .expect("OUT_DIR is writable");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir)
        .expect("readable proto directory")
        .flatten()
    {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
}

/// Where cargo unpacked the envoy-types package this build uses.
fn envoy_types_dir() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(Path::new(&manifest).join("Cargo.toml"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let package = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "envoy-types")
        .expect("envoy-types is a dependency");
    let manifest_path = package["manifest_path"].as_str().expect("a manifest path");
    Path::new(manifest_path)
        .parent()
        .expect("a manifest has a directory")
        .to_path_buf()
}
