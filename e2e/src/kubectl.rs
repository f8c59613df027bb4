//! Runs kubectl against the test control plane, the way a user would.

use std::{
    io::Write,
    process::{Command, Stdio},
};

/// What kubectl printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    /// stdout followed by stderr.
    pub text: String,
}

/// Runs `kubectl ARGS`, feeding `stdin` if given.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run the end-to-end tests with `make test`, which starts the control plane"
    );
    let mut child = Command::new("kubectl")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl (make test puts the control plane's kubectl on PATH)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write kubectl's stdin");
    }
    Output::of(child.wait_with_output().expect("wait for kubectl"))
}

impl Output {
    /// What a finished command printed, and whether it succeeded.
    pub(crate) fn of(out: std::process::Output) -> Output {
        Output {
            success: out.status.success(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}

/// `kubectl apply --dry-run=server -f -` with the object as JSON.
pub fn dry_run_apply(object: &serde_json::Value) -> Output {
    kubectl(
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&object.to_string()),
    )
}

/// `kubectl auth can-i VERB RESOURCE -n NAMESPACE --as USER`: whether RBAC
/// lets `user` do it.
pub fn can_i(user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let out = kubectl(
        &[
            "auth", "can-i", verb, resource, "-n", namespace, "--as", user,
        ],
        None,
    );
    match out.text.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {verb} {resource} as {user} answered {other:?}"),
    }
}
