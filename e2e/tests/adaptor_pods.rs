//! Adaptor pods as an operator of the cluster configures them, per adaptor
//! kind, on the real control plane.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    AllowedAdaptorImage, SYSTEM_NAMESPACE, begin, dummy_link, eventually, log_dir,
    process::Operator,
};
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn per_kind_settings_reach_the_adaptor_pod() {
    let namespace = "e2e-adaptor-settings";
    let (_guard, client) = begin(namespace).await;
    let settings = log_dir().join("adaptor-settings.yaml");
    std::fs::write(
        &settings,
        "defaults:\n  imagePullSecrets: [{name: edge-registry}]\n  tolerations: [{key: edge.example.com/remote, operator: Exists, effect: NoSchedule}]\nadaptors:\n  dummy:\n    image: registry.example.com/devicelink/{adaptor}:1.2.3\n    imagePullPolicy: IfNotPresent\n    resources: {requests: {cpu: 5m, memory: 16Mi}, limits: {memory: 48Mi}}\n    env: [{name: FAN_FLAVOUR, value: quiet}]\n    podAnnotations: {example.com/team: facilities}\n",
    )
    .unwrap();
    // The chart renders the image into its adaptor pod policy too.
    let _allowed = AllowedAdaptorImage::set("dummy", "registry.example.com/devicelink/dummy:1.2.3");
    let operator = Operator::start_with(
        "operator-settings",
        &["--adaptor-settings-file", settings.to_str().unwrap()],
    );

    let link = dummy_link(
        namespace,
        "cellar-fan",
        "edge-worker",
        json!({"spec": {"protocol": {"location": "cellar"}, "gear": "slow"}}),
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    links
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");

    // An adaptor pod left by an earlier test with other settings is replaced.
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let pod = eventually("the adaptor pod with the settings", WAIT, || async {
        let pod = pods
            .get_opt("devicelink-adaptor-dummy-edge-worker")
            .await
            .ok()??;
        let image = pod.spec.as_ref()?.containers[0].image.clone()?;
        (image == "registry.example.com/devicelink/dummy:1.2.3").then_some(pod)
    })
    .await;
    let spec = pod.spec.unwrap();
    let container = &spec.containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(spec.image_pull_secrets.unwrap()[0].name, "edge-registry");
    assert!(
        spec.tolerations
            .unwrap()
            .iter()
            .any(|t| t.key.as_deref() == Some("edge.example.com/remote")),
        "the default toleration"
    );
    let limits = container
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(limits["memory"].0, "48Mi");
    assert!(
        container
            .env
            .as_ref()
            .unwrap()
            .iter()
            .any(|e| e.name == "FAN_FLAVOUR" && e.value.as_deref() == Some("quiet"))
    );
    assert_eq!(
        pod.metadata.annotations.unwrap()["example.com/team"],
        "facilities"
    );
    // The lock-down stays: no host access was declared for this kind.
    assert!(
        spec.volumes.is_none()
            || spec
                .volumes
                .as_ref()
                .unwrap()
                .iter()
                .all(|v| v.host_path.is_none())
    );
    let sc = container.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));

    // The last DeviceLink of the kind on the node goes: so does the pod.
    links
        .delete("cellar-fan", &DeleteParams::default())
        .await
        .expect("delete DeviceLink");
    eventually("the adaptor pod to be removed", WAIT, || async {
        pods.get_opt("devicelink-adaptor-dummy-edge-worker")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    operator.stop().await;
}
