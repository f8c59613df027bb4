//! Runs the adaptor pods the operator creates on kwok nodes as local
//! processes, for the demo. Stops with Ctrl-C.

#[tokio::main]
async fn main() {
    let client = devicelink_e2e::client().await;
    let kubelet = devicelink_e2e::LocalKubelet::start(client);
    eprintln!(
        "local-kubelet: running adaptor pods of {} as local processes",
        devicelink_e2e::SYSTEM_NAMESPACE
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(kubelet);
}
