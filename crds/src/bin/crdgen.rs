//! Writes the CRD YAML generated from the API types.
//!
//! `crdgen [DIR]` writes one file per CRD into DIR (default `crds/generated`);
//! `crdgen --check [DIR]` writes nothing and fails if DIR differs.

use std::{fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.first().is_some_and(|a| a == "--check");
    if check {
        args.remove(0);
    }
    let dir = PathBuf::from(
        args.first()
            .cloned()
            .unwrap_or_else(|| "crds/generated".into()),
    );
    let mut drifted = Vec::new();
    for crd in devicelink_api::all_crds() {
        let path = dir.join(devicelink_api::crd_file_name(&crd));
        let yaml = devicelink_api::crd_yaml(&crd);
        if check {
            if fs::read_to_string(&path).ok().as_deref() != Some(yaml.as_str()) {
                drifted.push(path.display().to_string());
            }
        } else {
            fs::create_dir_all(&dir).expect("create output directory");
            fs::write(&path, yaml).expect("write CRD");
            println!("wrote {}", path.display());
        }
    }
    if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "CRD YAML is out of date, run `cargo run -p devicelink-api --bin crdgen`: {drifted:?}"
        );
        ExitCode::FAILURE
    }
}
