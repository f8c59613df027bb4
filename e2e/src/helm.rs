//! Runs Helm (the binary e2e/helm.sh builds and caches) against the test
//! control plane, the way a user would.

use std::{process::Command, sync::OnceLock};

use crate::kubectl::Output;

/// Runs `helm ARGS`.
pub fn helm(args: &[&str]) -> Output {
    Output::of(
        Command::new(binary())
            .args(args)
            .output()
            .expect("run helm"),
    )
}

/// The helm binary (built once by e2e/helm.sh).
pub fn binary() -> &'static str {
    static BINARY: OnceLock<String> = OnceLock::new();
    BINARY.get_or_init(|| {
        let script = crate::repo_root().join("e2e/helm.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("run e2e/helm.sh");
        assert!(
            out.status.success(),
            "e2e/helm.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}
