//! devicelink-adaptor-opcua: watches and writes variables on OPC-UA servers.

use devicelink_adaptor_opcua::{device, discovery::OpcuaDiscoverer, metrics::OpcuaMetrics, trust};
use devicelink_api::opcua::OPCUADevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = OpcuaMetrics::default();
    let registered = metrics.clone();
    let pki = trust::Pki::new(trust::default_root());
    devicelink_adaptor_runtime::Adaptor::new("opcua")
        .with_metrics(move |registry| registered.register(registry))
        .discover(OpcuaDiscoverer::new(pki.clone()))
        .drive::<OPCUADevice, _, _>(move |ctx| device::run(ctx, metrics.clone(), pki.clone()))
        .run()
        .await
}
