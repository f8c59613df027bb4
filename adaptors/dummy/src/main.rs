//! devicelink-adaptor-dummy: drives simulated devices, for demos, tests and
//! benchmarks of everything around a device: the fan (DummySpecialDevice)
//! and devices with declared properties (DummyProtocolDevice).

mod declared;
mod fan;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    devicelink_adaptor_runtime::Adaptor::new("dummy")
        .steps::<fan::Fan>()
        .steps::<declared::Simulation>()
        .run()
        .await
}
