//! The console's Discovered view (docs/console.md), in a real browser: a
//! discovery of the loopback plant (e2e/src/modbus.rs) with the shipped
//! catalog and `adoption: Manual`; the page lists the finds with what
//! they say they are and the template that matches, and a person who may
//! patch finds adopts the meter with its Adopt button: the operator makes
//! its DeviceLink from the template. Someone who may only read finds is
//! refused by the console, as the API server would refuse them.

use std::time::Duration;

use devicelink_api::{
    DeviceLink,
    discovery::{DeviceDiscovery, DiscoveredDevice},
};
use devicelink_e2e::{
    LocalKubelet, apply, begin,
    browser::Browser,
    console::{get_json, install_rbac, open_page, user_allowed},
    discovery::{allow_ranges, apply_catalog, discovery, finds},
    eventually,
    modbus::Plant,
    process::{Console, free_port, http_get, http_post_as, start_operator},
    wait_connected,
};
use kube::Api;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_person_adopts_a_find_from_the_consoles_discovered_view() {
    let namespace = "e2e-console-discovered";
    let (_guard, client) = begin(namespace).await;
    allow_ranges(&client, "127.0.0.0/24").await;
    apply_catalog(&client, namespace).await;
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let _rbac = install_rbac();
    let console = Console::start("e2e-console-discovered", &[]);
    let port = free_port();
    let _plant = Plant::start(port).await;
    let discoveries: Api<DeviceDiscovery> = Api::namespaced(client.clone(), namespace);
    let mut plant = discovery(namespace, "plant", "127.0.0.0/29", port);
    plant["spec"]["adoption"] = json!("Manual");
    apply::<DeviceDiscovery>(&discoveries, &plant).await;
    let found: Api<DiscoveredDevice> = Api::namespaced(client.clone(), namespace);
    let all = finds(&found, "plant", 3).await;
    let meter = all[0].metadata.name.clone().unwrap();
    eventually("the console to be ready", WAIT, || async {
        (http_get(console.port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;

    let engineer = user_allowed(
        namespace,
        "engineer",
        &[
            ("discovereddevices", &["get", "list", "patch"]),
            ("devicelinks", &["get", "list", "watch"]),
        ],
    );
    let reader = user_allowed(
        namespace,
        "reader",
        &[("discovereddevices", &["get", "list"])],
    );
    let stranger = user_allowed(namespace, "stranger", &[("devicelinks", &["list"])]);

    // The API: a reader sees the finds and may not adopt; a stranger may
    // not even list them.
    let list = format!("/api/discovereddevices?namespace={namespace}");
    let (code, body) = get_json(console.port, &list, &reader).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3), "{body}");
    let (code, _) = get_json(console.port, &list, &stranger).await;
    assert_eq!(code, 403);
    let adopt = format!("/api/discovereddevices/{namespace}/{meter}/adopt");
    let (code, body) = http_post_as(console.port, &adopt, &reader, "")
        .await
        .expect("the console answers");
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("patch discovereddevices.edge.cattle.io"),
        "{body}"
    );
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let f = found.get(&meter).await.unwrap();
    assert!(
        !f.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("edge.cattle.io/adopt"),
        "a refused adoption left no annotation"
    );

    // The page, as the engineer: the finds, their identity and template.
    let mut browser = Browser::start("e2e-console-discovered-browser").await;
    open_page(&mut browser, console.port, namespace, &engineer).await;
    let row = |name: &str| {
        format!(
            "document.querySelector('#finds tr[data-name={}]')",
            json!(name)
        )
    };
    // The operator writes the match after the adaptor wrote the find.
    let shown = browser
        .wait_for(
            "the meter and its template in the Discovered table",
            &format!(
                "{} && {}.innerText.includes('acme-pm-200') ? {}.innerText : null",
                row(&meter),
                row(&meter),
                row(&meter)
            ),
        )
        .await;
    let shown = shown.as_str().unwrap();
    for column in [
        all[0].spec.address.as_str(),
        "Acme",
        "PM-200",
        "acme-pm-200",
        "Adopt",
    ] {
        assert!(shown.contains(column), "{column} in {shown:?}");
    }
    let rows = browser
        .eval("document.querySelectorAll('#finds tr').length")
        .await;
    assert_eq!(rows, 3);

    // Adopt: the operator makes the DeviceLink from the template, and the
    // row names it.
    browser
        .eval(&format!(
            "{}.querySelector('button').click(); true",
            row(&meter)
        ))
        .await;
    let link = wait_connected(&links, &meter).await;
    assert_eq!(
        link.metadata.labels.unwrap_or_default()["edge.cattle.io/device-template"],
        "acme-pm-200"
    );
    browser
        .wait_for(
            "the meter's DeviceLink in its row",
            &format!(
                "{} && !{}.querySelector('button') && {}.innerText.includes({})",
                row(&meter),
                row(&meter),
                row(&meter),
                json!(meter)
            ),
        )
        .await;
    let (code, body) = http_post_as(console.port, &adopt, &engineer, "")
        .await
        .expect("the console answers");
    assert_eq!(code, 409, "adopted twice: {body}");

    browser.stop().await;
    console.stop().await;
    operator.stop().await;
}
