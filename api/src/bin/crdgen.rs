//! Writes what is generated from the API types: the CRD YAML, and the
//! chart's list of adaptor kinds.
//!
//! `crdgen` (run from the repository root) writes one file per CRD into
//! `api/generated` and the adaptor kinds into `charts/devicelink/adaptors.yaml`;
//! `crdgen --check` writes nothing and fails if any of them differs.

use std::{fs, path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    let check = std::env::args().nth(1).is_some_and(|a| a == "--check");
    let dir = PathBuf::from("api/generated");
    let mut files: Vec<(PathBuf, String)> = devicelink_api::all_crds()
        .iter()
        .map(|crd| {
            (
                dir.join(devicelink_api::crd_file_name(crd)),
                devicelink_api::crd_yaml(crd),
            )
        })
        .collect();
    files.push((
        PathBuf::from(devicelink_api::CHART_ADAPTORS_FILE),
        devicelink_api::adaptor::chart_file(),
    ));
    let mut drifted = Vec::new();
    for (path, text) in files {
        if check {
            if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(path.display().to_string());
            }
        } else {
            fs::create_dir_all(path.parent().expect("a file in a directory"))
                .expect("create output directory");
            fs::write(&path, text).expect("write generated file");
            println!("wrote {}", path.display());
        }
    }
    if drifted.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("out of date, run `make crds`: {drifted:?}");
        ExitCode::FAILURE
    }
}
