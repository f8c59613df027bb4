//! The console's gate against what an attacker sends it, on a real API
//! server: a path that smuggles another resource into the console's own
//! API request, a token minted for the API server rather than for the
//! console, a flood of made-up tokens, a page of another site opening the
//! stream, and a DeviceLink naming a broker the console may not connect to.
//! Each is refused; who holds a good token keeps being served.

use std::time::Duration;

use devicelink_api::DeviceLink;
use devicelink_e2e::{
    begin,
    console::{AUDIENCE, get_json, install_rbac, open_stream_from, token_of, user},
    dummy_link, eventually, eventually_showing,
    process::{Console, http_get, http_get_as, http_post_as},
};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
};
use serde_json::json;

const NAMESPACE: &str = "e2e-console-gate";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn the_console_refuses_smuggled_paths_foreign_tokens_floods_and_other_sites() {
    let (_guard, client) = begin(NAMESPACE).await;
    let _rbac = install_rbac();
    let console = Console::start(
        "e2e-console-gate",
        // Answers remembered for a minute; 20 token reviews a minute per
        // client address.
        &["--review-seconds", "60", "--reviews-per-minute", "20"],
    );
    eventually("the console to be ready", WAIT, || async {
        (http_get(console.port, "/readyz").await?.0 == 200).then_some(())
    })
    .await;
    let viewer = user(NAMESPACE, "gate-viewer", &["get", "list", "watch"]);
    let list = format!("/api/devicelinks?namespace={NAMESPACE}");
    let (code, body) = get_json(console.port, &list, &viewer).await;
    assert_eq!(code, 200, "the viewer is served: {body}");

    // A namespace segment that would make the console's own request for
    // Events read another resource: refused before anything is asked.
    for path in [
        "/api/devicelinks/kube-system%2Fevents%23/x/events",
        "/api/devicelinks/e2e-console-gate/..%2F..%2Fsecrets/events",
        "/api/devicelinks?namespace=kube-system%2Fsecrets",
    ] {
        let (code, body) = get_json(console.port, path, &viewer).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("is not a Kubernetes")),
            "{path}: {body}"
        );
    }

    // The viewer's token minted for the API server, not for the console:
    // refused, with nothing of the API server's reason.
    let for_the_api_server = token_of(NAMESPACE, "gate-viewer", None);
    let (code, body) = get_json(console.port, &list, &for_the_api_server).await;
    assert_eq!(code, 401, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(&format!("minted for the audience {AUDIENCE:?}")),
        "{body}"
    );
    assert!(
        !error.contains("audiences") && !error.contains("invalid"),
        "no API server text for a stranger: {body}"
    );

    // The stream from a page of another site: refused; from the console's
    // own page, taken.
    let query = format!("namespace={NAMESPACE}");
    let other_site = open_stream_from(
        console.port,
        &query,
        &viewer,
        None,
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(other_site.err(), Some(403), "another site's page");
    let own_page = format!("http://127.0.0.1:{}", console.port);
    open_stream_from(console.port, &query, &viewer, None, Some(&own_page))
        .await
        .expect("the console's own page opens the stream");

    // A DeviceLink naming a broker the console is not allowed (a loopback
    // address where nothing listens, so nothing leaves this machine even
    // if the console did connect): listed with why, and no write goes.
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), NAMESPACE);
    let _ = links
        .delete("elsewhere-fan", &DeleteParams::default())
        .await;
    let fan = dummy_link(
        NAMESPACE,
        "elsewhere-fan",
        "no-such-node",
        json!({"spec": {"protocol": {"location": "attic"}, "extension": {"mqtt": {
            "client": {"server": "tcp://127.0.0.2:18999"},
            "message": {"topic": "e2e/gate/:name"}}}}}),
    );
    links
        .create(&PostParams::default(), &fan)
        .await
        .expect("create the DeviceLink");
    let path = format!("/api/devicelinks/{NAMESPACE}/elsewhere-fan");
    let listed = eventually_showing(
        "the fan listed with why it is not followed",
        WAIT,
        || async {
            let (code, body) = get_json(console.port, &path, &viewer).await;
            let error = body["stream"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (code == 200 && !error.is_empty())
                .then_some(error)
                .ok_or(format!("{code} {body}"))
        },
    )
    .await;
    assert!(
        listed.contains("client.server \"tcp://127.0.0.2:18999\": the console connects only to the brokers it is allowed"),
        "{listed}"
    );
    let writer = user(NAMESPACE, "gate-writer", &["get", "update"]);
    let (code, body) = http_post_as(
        console.port,
        &format!("{path}/write"),
        &writer,
        r#"{"gear": "fast"}"#,
    )
    .await
    .expect("the console answers");
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("--allowed-brokers"), "{body}");
    links
        .delete("elsewhere-fan", &DeleteParams::default())
        .await
        .unwrap();

    // Last, as it spends this address's reviews: a flood of made-up tokens
    // is answered 429 once they are spent, with when to come back; the
    // viewer, whose token is known, is still served.
    let mut limited = None;
    for i in 0..40 {
        let junk = format!("junk.{i}.token");
        let (code, body) = http_get_as(console.port, &list, &junk)
            .await
            .expect("the console answers");
        if code == 429 {
            limited = Some(body);
            break;
        }
        assert_eq!(code, 401, "junk token {i}: {body}");
    }
    let limited = limited.expect("a flood of new tokens is limited");
    assert!(limited.contains("too many new tokens"), "{limited}");
    let (code, body) = get_json(console.port, &list, &viewer).await;
    assert_eq!(code, 200, "the viewer is still served: {body}");
}
