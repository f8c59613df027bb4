//! The committed CRD YAML must be exactly what the Rust types generate, so
//! that what users apply and what the code expects never differ.

use std::{fs, path::Path};

#[test]
fn committed_crd_yaml_matches_the_types() {
    // Read at run time: the build cache is shared between checkouts, so a
    // path compiled in may name another checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let dir = Path::new(&manifest_dir).join("generated");
    let mut expected_files: Vec<String> = Vec::new();
    for crd in devicelink_api::all_crds() {
        let name = devicelink_api::crd_file_name(&crd);
        let committed = fs::read_to_string(dir.join(&name)).unwrap_or_default();
        assert!(
            committed == devicelink_api::crd_yaml(&crd),
            "crds/generated/{name} is out of date: run `cargo run -p devicelink-api --bin crdgen`"
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = fs::read_dir(&dir)
        .expect("crds/generated exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "crds/generated holds a CRD the types no longer define"
    );
}
