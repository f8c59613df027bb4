//! The operator as it runs in production: several replicas with one leader,
//! metrics and health endpoints, on the real control plane.

use std::time::{Duration, Instant};

use devicelink_api::DeviceLink;
use devicelink_e2e::{begin, dummy_link, eventually, process::Operator};
use kube::{
    Api, Client,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

/// A DeviceLink whose node does not exist: the leader answers it with
/// NodeExisted False at once, without adaptor pods.
async fn create_link(client: &Client, namespace: &str, name: &str) {
    let link = dummy_link(
        namespace,
        name,
        "no-such-node",
        json!({"spec": {"gear": "slow"}}),
    );
    Api::<DeviceLink>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &link)
        .await
        .expect("create DeviceLink");
}

async fn wait_node_missing_reported(client: &Client, namespace: &str, name: &str) {
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    eventually(&format!("{name}: NodeExisted False"), WAIT, || async {
        let link = links.get(name).await.ok()?;
        let c = link.conditions().first()?.clone();
        (c.type_ == "NodeExisted" && c.status == "False").then_some(())
    })
    .await;
}

async fn wait_leading(operator: &Operator, leading: bool, within: Duration) {
    let want = if leading { 1.0 } else { 0.0 };
    eventually(
        &format!("{}: leader metric {want}", operator.process.name),
        within,
        || async { (operator.metric("devicelink_operator_leader").await? == want).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn one_replica_leads_and_another_takes_over_when_it_dies() {
    let namespace = "e2e-operator-ha";
    let (_guard, client) = begin(namespace).await;

    let first = Operator::start("operator-a");
    wait_leading(&first, true, WAIT).await;
    let second = Operator::start("operator-b");
    // The standby is healthy and ready, but does not lead.
    eventually(
        "operator-b to answer /healthz and /readyz",
        WAIT,
        || async {
            let (health, _) = second.get("/healthz").await?;
            let (ready, _) = second.get("/readyz").await?;
            (health == 200 && ready == 200).then_some(())
        },
    )
    .await;
    wait_leading(&second, false, WAIT).await;

    create_link(&client, namespace, "before-failover").await;
    wait_node_missing_reported(&client, namespace, "before-failover").await;
    assert!(
        first
            .metric("devicelink_operator_reconciles_total")
            .await
            .unwrap()
            >= 1.0,
        "the leader counts its reconciles"
    );
    assert_eq!(
        second.metric("devicelink_operator_reconciles_total").await,
        Some(0.0),
        "the standby reconciles nothing"
    );
    let by_phase = r#"devicelink_operator_devicelinks{phase="NodeExisted",status="False"}"#;
    eventually(
        "the leader to count the DeviceLink by phase",
        WAIT,
        || async { (first.metric(by_phase).await? >= 1.0).then_some(()) },
    )
    .await;

    // The leader dies without releasing its lease; the standby takes over
    // once the lease runs out.
    first.kill().await;
    let killed = Instant::now();
    wait_leading(&second, true, Duration::from_secs(30)).await;
    println!(
        "failover after the leader was killed: {:?}",
        killed.elapsed()
    );

    create_link(&client, namespace, "after-failover").await;
    wait_node_missing_reported(&client, namespace, "after-failover").await;
    // The gauge is counted from the leader's cache, which sees the status
    // it wrote a moment after the API server has it.
    eventually("the new leader to count both DeviceLinks", WAIT, || async {
        (second.metric(by_phase).await? >= 2.0).then_some(())
    })
    .await;

    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    for name in ["before-failover", "after-failover"] {
        links
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete DeviceLink");
    }
    eventually("the DeviceLinks to be gone", WAIT, || async {
        links
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    // A clean stop releases the lease for the next test's operator.
    second.stop().await;
}
