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
            "api/generated/{name} is out of date: run `cargo run -p devicelink-api --bin crdgen`"
        );
        expected_files.push(name);
    }
    let mut present: Vec<String> = fs::read_dir(&dir)
        .expect("api/generated exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort();
    expected_files.sort();
    assert_eq!(
        present, expected_files,
        "api/generated holds a CRD the types no longer define"
    );
}

#[test]
fn the_charts_adaptor_kinds_are_generated_from_the_rust_list() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let file = Path::new(&manifest_dir)
        .join("..")
        .join(devicelink_api::CHART_ADAPTORS_FILE);
    let committed = fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == devicelink_api::adaptor::chart_file(),
        "{} is out of date: run `make crds`",
        devicelink_api::CHART_ADAPTORS_FILE
    );
}

/// Every adaptor kind has an image: a Dockerfile target
/// `adaptor-<short name>` whose entrypoint is the command the operator gives
/// its pods.
#[test]
fn every_adaptor_kind_has_an_image() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let dockerfile = fs::read_to_string(Path::new(&manifest_dir).join("../Dockerfile"))
        .expect("read the Dockerfile");
    for kind in devicelink_api::adaptor::ADAPTORS {
        let stage = format!("FROM runtime AS adaptor-{}\n", kind.short_name);
        let at = dockerfile
            .find(&stage)
            .unwrap_or_else(|| panic!("the Dockerfile has no target adaptor-{}", kind.short_name));
        let rest = &dockerfile[at + stage.len()..];
        let target = &rest[..rest.find("\nFROM ").unwrap_or(rest.len())];
        let entrypoint = format!("ENTRYPOINT [\"/usr/bin/{}\"]", kind.command);
        assert!(
            target.contains(&entrypoint),
            "target adaptor-{} must have {entrypoint}",
            kind.short_name
        );
    }
}

/// The chart's values schema takes pod settings for exactly the adaptor
/// kinds there are (a kind missing there could not be tuned by the chart).
#[test]
fn the_values_schema_has_pod_settings_for_every_adaptor_kind() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo test");
    let text = fs::read_to_string(
        Path::new(&manifest_dir).join("../charts/devicelink/values.schema.json"),
    )
    .expect("read the chart's values.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&text).expect("values.schema.json is JSON");
    let kinds = &schema["properties"]["adaptors"]["properties"]["settings"]["properties"]["adaptors"]
        ["properties"];
    let mut in_schema: Vec<&str> = kinds
        .as_object()
        .expect("adaptors.settings.adaptors lists the kinds")
        .keys()
        .map(String::as_str)
        .collect();
    let mut defined: Vec<&str> = devicelink_api::adaptor::ADAPTORS
        .iter()
        .map(|k| k.short_name)
        .collect();
    in_schema.sort();
    defined.sort();
    assert_eq!(
        in_schema, defined,
        "adaptors.settings.adaptors in values.schema.json"
    );
}
