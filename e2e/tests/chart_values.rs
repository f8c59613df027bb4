//! The chart refuses values it does not know or of the wrong type, naming
//! them (values.schema.json), rather than ignoring a typo; and it says
//! which Kubernetes it needs.

use devicelink_e2e::{helm::helm, repo_root};

fn template(sets: &[&str]) -> devicelink_e2e::kubectl::Output {
    let chart = repo_root().join("charts/devicelink");
    let mut args = vec!["template", "devicelink", chart.to_str().unwrap()];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args)
}

#[test]
fn a_mistyped_or_ill_typed_value_fails_naming_it() {
    for (set, named) in [
        ("broker.enabeld=true", "/broker"),
        ("operator.replicas=two", "/operator/replicas"),
        ("consol.enabled=true", "consol"),
        (
            "adaptors.settings.adaptors.modbsu.hostDBus=true",
            "/adaptors/settings/adaptors",
        ),
        (
            "adaptors.settings.defaults.serialDevices[0]=ttyUSB0",
            "/adaptors/settings/defaults/serialDevices/0",
        ),
        (
            "operator.image.pullPolicy=Sometimes",
            "/operator/image/pullPolicy",
        ),
    ] {
        let out = template(&[set]);
        assert!(!out.success, "--set {set} was taken");
        assert!(
            out.text.contains(named) && out.text.contains("schema"),
            "--set {set}: the refusal names {named}: {}",
            out.text
        );
    }
    // Every value the docs and tests set is known.
    let out = template(&[
        "broker.enabled=true",
        "broker.persistence.enabled=true",
        "broker.passwordSecret=users",
        "broker.aclSecret=users",
        "broker.imagePullSecrets[0].name=registry",
        "console.enabled=true",
        "console.allowedOrigins[0]=https://ops.example.com",
        "adaptors.settings.adaptors.modbus.serialDevices[0]=/dev/ttyUSB0",
        "adaptors.settings.adaptors.dummy.resources.limits.memory=48Mi",
        "operator.image.repository=registry.example.com/devicelink/operator",
    ]);
    assert!(out.success, "{}", out.text);
}

#[test]
fn the_chart_needs_kubernetes_1_31() {
    let chart = repo_root().join("charts/devicelink");
    let chart = chart.to_str().unwrap();
    let old = helm(&["template", "devicelink", chart, "--kube-version", "1.30.4"]);
    assert!(!old.success, "installed on 1.30");
    assert!(old.text.contains(">=1.31"), "{}", old.text);
    let new = helm(&["template", "devicelink", chart, "--kube-version", "1.31.0"]);
    assert!(new.success, "{}", new.text);
}
