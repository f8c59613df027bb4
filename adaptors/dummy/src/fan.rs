//! A simulated fan (DummySpecialDevice).
//!
//! Turned on, it speeds up by one every tick until the ceiling of its gear:
//! slow ticks every 3 s up to 100, middle every 2 s up to 200, fast every 1 s
//! up to 300. Changing gear starts from that gear's floor (0, 100, 200).
//! Turned off, it stops where it is.

use std::{sync::LazyLock, time::Duration};

use devicelink_adaptor_runtime::{Accepts, Change, DeviceContext, Property, Reason, Steps, Writes};
use devicelink_api::dummy::{
    DummySpecialDevice, DummySpecialDeviceSpec, DummySpecialDeviceStatus, Gear,
};

/// The fan's state machine, separate from time and I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fan {
    on: bool,
    gear: Gear,
    speed: i32,
}

impl Fan {
    pub fn new(spec: &DummySpecialDeviceSpec) -> Self {
        Fan {
            on: spec.on,
            gear: spec.gear,
            speed: floor(spec.gear),
        }
    }

    /// Applies a new spec; a new gear restarts from its floor.
    pub fn apply(&mut self, spec: &DummySpecialDeviceSpec) {
        if spec.gear != self.gear {
            self.gear = spec.gear;
            self.speed = floor(spec.gear);
        }
        self.on = spec.on;
    }

    /// One tick of the simulation.
    pub fn tick(&mut self) {
        if self.on && self.speed < ceiling(self.gear) {
            self.speed += 1;
        }
    }

    /// Applies a write from MQTT, already checked against
    /// [`writable_properties`].
    pub fn write(&mut self, values: &serde_json::Map<String, serde_json::Value>) {
        let mut spec = DummySpecialDeviceSpec {
            on: self.on,
            gear: self.gear,
            ..Default::default()
        };
        if let Some(on) = values.get("on").and_then(|v| v.as_bool()) {
            spec.on = on;
        }
        if let Some(gear) = values
            .get("gear")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
        {
            spec.gear = gear;
        }
        self.apply(&spec);
    }

    pub fn tick_interval(&self) -> Duration {
        match self.gear {
            Gear::Slow => Duration::from_secs(3),
            Gear::Middle => Duration::from_secs(2),
            Gear::Fast => Duration::from_secs(1),
        }
    }

    pub fn status(&self) -> DummySpecialDeviceStatus {
        DummySpecialDeviceStatus {
            gear: Some(self.gear),
            rotating_speed: self.speed,
            extension: None,
        }
    }
}

/// What a write from MQTT may set: `on` and `gear`; the speed is the
/// fan's own. The same for every fan, so made once (at ten thousand fans a
/// copy each was 3 MiB).
pub fn writable_properties() -> &'static [Property] {
    static WRITABLE: LazyLock<Vec<Property>> = LazyLock::new(|| {
        vec![
            Property {
                name: "on".into(),
                accepts: Accepts::Boolean,
                writes: Writes::Yes,
            },
            Property {
                name: "gear".into(),
                accepts: Accepts::OneOf(vec!["slow".into(), "middle".into(), "fast".into()]),
                writes: Writes::Yes,
            },
            Property {
                name: "rotatingSpeed".into(),
                accepts: Accepts::Integer { min: 0, max: 300 },
                writes: Writes::No,
            },
        ]
    });
    &WRITABLE
}

fn floor(gear: Gear) -> i32 {
    match gear {
        Gear::Slow => 0,
        Gear::Middle => 100,
        Gear::Fast => 200,
    }
}

fn ceiling(gear: Gear) -> i32 {
    floor(gear) + 100
}

/// A fan as the runtime steps it: no task of its own, one tick a period
/// while it is on.
impl Steps for Fan {
    type Model = DummySpecialDevice;

    fn start(ctx: &DeviceContext<DummySpecialDevice>) -> Fan {
        let fan = Fan::new(&ctx.device().spec);
        // A simulated device is always reachable.
        ctx.set_connected(Reason::Healthy.outcome(""));
        ctx.report(&fan.status());
        fan
    }

    fn changed(
        &mut self,
        ctx: &DeviceContext<DummySpecialDevice>,
        change: Change<DummySpecialDevice>,
    ) {
        match change {
            Change::Spec(device) => self.apply(&device.spec),
            Change::Write(request) => {
                let Some(values) = ctx.decode_write(&request, writable_properties()) else {
                    return;
                };
                self.write(&values);
                ctx.answer_write(&request, Ok(&values));
            }
        }
        ctx.report(&self.status());
    }

    /// A new gear paces anew; a fan turned off does not tick.
    fn period(&self) -> Option<Duration> {
        self.on.then(|| self.tick_interval())
    }

    fn tick(&mut self, ctx: &DeviceContext<DummySpecialDevice>) {
        Fan::tick(self);
        ctx.report(&self.status());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_api::dummy::DummySpecialDeviceProtocol;

    fn spec(on: bool, gear: Gear) -> DummySpecialDeviceSpec {
        DummySpecialDeviceSpec {
            extension: None,
            protocol: DummySpecialDeviceProtocol {
                location: "x".into(),
            },
            on,
            gear,
        }
    }

    #[test]
    fn speeds_up_to_the_gear_ceiling() {
        let mut fan = Fan::new(&spec(true, Gear::Slow));
        for _ in 0..150 {
            fan.tick();
        }
        assert_eq!(fan.status().rotating_speed, 100);
    }

    #[test]
    fn new_gear_starts_at_its_floor_and_paces_faster() {
        let mut fan = Fan::new(&spec(true, Gear::Slow));
        fan.tick();
        fan.apply(&spec(true, Gear::Fast));
        assert_eq!(fan.status().rotating_speed, 200);
        assert_eq!(fan.tick_interval(), Duration::from_secs(1));
    }

    #[test]
    fn a_write_sets_on_and_gear_like_a_spec_change() {
        let mut fan = Fan::new(&spec(false, Gear::Slow));
        let values = serde_json::json!({"on": true, "gear": "fast"});
        fan.write(values.as_object().unwrap());
        assert_eq!(fan, Fan::new(&spec(true, Gear::Fast)));
    }

    #[test]
    fn off_stops_where_it_is() {
        let mut fan = Fan::new(&spec(true, Gear::Middle));
        fan.tick();
        fan.apply(&spec(false, Gear::Middle));
        fan.tick();
        assert_eq!(fan.status().rotating_speed, 101);
    }
}
