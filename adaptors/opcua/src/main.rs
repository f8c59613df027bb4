//! devicelink-adaptor-opcua: watches and writes variables on OPC-UA servers.

use devicelink_adaptor_opcua::{device, metrics::OpcuaMetrics, trust};
use devicelink_api::opcua::OPCUADevice;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let metrics = OpcuaMetrics::default();
    let registered = metrics.clone();
    let pki = trust::Pki::new(trust::default_root());
    devicelink_adaptor_runtime::run_with_metrics::<OPCUADevice, _, _>(
        "opcua",
        move |registry| registered.register(registry),
        move |ctx| device::run(ctx, metrics.clone(), pki.clone()),
    )
    .await
}
