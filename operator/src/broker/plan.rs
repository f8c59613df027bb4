//! What the managed broker should hold, from the DeviceLinks: an identity
//! per adaptor pod (and one for the console), each with a role that grants
//! exactly the topics of its devices.

use std::collections::{BTreeMap, BTreeSet};

use devicelink_adaptor_mqtt::plan::Plan;
use devicelink_api::{DeviceLink, adaptor, mqtt_device::MqttDeviceSpec};
use devicelink_mqtt::{
    TopicContext,
    identity::{DeviceTopics, device_topics, uses_identity},
};
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::adaptor_pod;

/// Who holds an identity on the managed broker.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// An adaptor pod, by name (one adaptor kind on one node).
    Adaptor(String),
    /// The live console.
    Console,
    /// A BrokerCredential: (namespace, name).
    Credential(String, String),
}

/// Every identity has two usernames: the Secret names one, and a rotation
/// moves it to the other, so a password changes without a moment in which
/// the holder's credentials are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
}

/// Names of ours on the broker (roles, usernames) start with this; the
/// operator removes such names it no longer wants.
pub const PREFIX: &str = "devicelink-";
/// How BrokerCredentials' names start.
const CREDENTIAL: &str = "devicelink-credential";

impl Identity {
    /// Its name: the adaptor pod's, `devicelink-console`, or
    /// `devicelink-credential/<namespace>/<name>`. Also the name of its
    /// role on the broker.
    pub fn name(&self) -> String {
        match self {
            Identity::Adaptor(pod) => pod.clone(),
            Identity::Console => crate::adaptor_access::CONSOLE.to_string(),
            Identity::Credential(namespace, name) => {
                format!("{CREDENTIAL}/{namespace}/{name}")
            }
        }
    }

    /// The identity of a name of ours.
    pub fn of_name(name: &str) -> Option<Identity> {
        if name == crate::adaptor_access::CONSOLE {
            return Some(Identity::Console);
        }
        if let Some(rest) = name.strip_prefix(&format!("{CREDENTIAL}/")) {
            let (namespace, name) = rest.split_once('/')?;
            return Some(Identity::Credential(namespace.into(), name.into()));
        }
        name.starts_with("devicelink-adaptor-")
            .then(|| Identity::Adaptor(name.to_string()))
    }

    /// The Secret holding its current username and password (in the
    /// adaptor namespace, the operator's, or the credential's own).
    pub fn secret(&self) -> String {
        match self {
            Identity::Credential(_, name) => format!("{name}-broker-credential"),
            other => format!("{}-mqtt", other.name()),
        }
    }

    pub fn username(&self, slot: Slot) -> String {
        let slot = match slot {
            Slot::A => "a",
            Slot::B => "b",
        };
        format!("{}/{slot}", self.name())
    }

    /// The identity a username of ours belongs to, and its slot.
    pub fn of_username(username: &str) -> Option<(String, Slot)> {
        let (name, slot) = username.rsplit_once('/')?;
        let slot = match slot {
            "a" => Slot::A,
            "b" => Slot::B,
            _ => return None,
        };
        name.starts_with(PREFIX).then(|| (name.to_string(), slot))
    }
}

/// One ACL entry of a role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Acl {
    /// The plugin's ACL type: publishClientSend, subscribeLiteral, ...
    pub kind: String,
    pub topic: String,
    pub allow: bool,
    /// Entries of higher priority are checked first; the first that
    /// matches decides.
    pub priority: i64,
}

impl Acl {
    fn new(kind: &str, topic: impl Into<String>) -> Acl {
        Acl {
            kind: kind.into(),
            topic: topic.into(),
            allow: true,
            priority: 0,
        }
    }

    /// Nothing else of this kind (checked after every allow).
    fn deny_the_rest(kind: &str) -> Acl {
        Acl {
            kind: kind.into(),
            topic: "#".into(),
            allow: false,
            priority: -1,
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"acltype": self.kind, "topic": self.topic, "allow": self.allow,
               "priority": self.priority})
    }
}

/// The role of every identity the DeviceLinks call for.
pub type Roles = BTreeMap<Identity, BTreeSet<Acl>>;

/// A BrokerCredential as the plan needs it: (namespace, name, writes).
pub type CredentialRequest = (String, String, bool);

/// The identities and roles `links` call for: one per adaptor pod serving
/// any of them (its pod gets the identity whatever broker its devices
/// use), the console's if `console`, and one per BrokerCredential.
/// DeviceLinks on the managed broker without credentials of their own get
/// their topics granted: to the adaptor, publishing status (and will) and
/// answers, and taking writes; to the console, writing; to a credential of
/// their namespace, receiving status and answers, and writing if it may.
pub fn roles<'a>(
    links: impl IntoIterator<Item = &'a DeviceLink>,
    console: bool,
    credentials: &[CredentialRequest],
) -> Roles {
    let mut roles = Roles::new();
    if console {
        // It follows every device's status and its writes' answers.
        roles
            .entry(Identity::Console)
            .or_default()
            .insert(Acl::new("subscribePattern", "#"));
    }
    for (namespace, name, _) in credentials {
        // Any subscription, but only its devices' messages are delivered.
        roles
            .entry(Identity::Credential(namespace.clone(), name.clone()))
            .or_default()
            .extend([
                Acl::new("subscribePattern", "#"),
                Acl::deny_the_rest("publishClientReceive"),
            ]);
    }
    for link in links {
        if link.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(kind) = adaptor::find(&link.spec.adaptor.name) else {
            continue;
        };
        let pod = Identity::Adaptor(adaptor_pod::pod_name(kind, &link.spec.adaptor.node));
        let adaptor_acls = roles.entry(pod).or_default();
        adaptor_acls.extend(device_protocol_grants(link));
        let Some(topics) = managed_topics(link) else {
            continue;
        };
        adaptor_acls.extend(adaptor_grants(&topics));
        if console {
            roles
                .entry(Identity::Console)
                .or_default()
                .insert(Acl::new("publishClientSend", topics.write.clone()));
        }
        let namespace = link.namespace().unwrap_or_default();
        for (_, name, writes) in credentials.iter().filter(|c| c.0 == namespace) {
            let acls = roles
                .entry(Identity::Credential(namespace.clone(), name.clone()))
                .or_default();
            acls.extend([
                Acl::new("publishClientReceive", topics.status.clone()),
                Acl::new("publishClientReceive", format!("{}/+", topics.write)),
            ]);
            if *writes {
                acls.insert(Acl::new("publishClientSend", topics.write.clone()));
            }
        }
    }
    roles
}

/// What the adaptor of a device with these topics may do.
pub fn adaptor_grants(topics: &DeviceTopics) -> Vec<Acl> {
    let mut acls = vec![
        Acl::new("publishClientSend", topics.status.clone()),
        Acl::new("subscribeLiteral", topics.write.clone()),
        // Answers go one level below the write topic.
        Acl::new("publishClientSend", format!("{}/+", topics.write)),
    ];
    if let Some(will) = &topics.will {
        acls.push(Acl::new("publishClientSend", will.clone()));
    }
    acls
}

/// What the adaptor of an MQTTDevice on the managed broker (with no
/// credentials of its own) may do with the device itself: take what it
/// publishes on the topics the spec names, and publish to the properties
/// it may write.
pub fn device_protocol_grants(link: &DeviceLink) -> Vec<Acl> {
    if link.spec.model.kind != "MQTTDevice" {
        return Vec::new();
    }
    let Some(spec) = link.spec.template.spec.clone() else {
        return Vec::new();
    };
    let Ok(spec) = serde_json::from_value::<MqttDeviceSpec>(spec) else {
        return Vec::new(); // the adaptor reports what does not parse
    };
    if !uses_identity(&spec.protocol.options.client) {
        return Vec::new();
    }
    let Ok(plan) = Plan::new(&spec, &context_of(link)) else {
        return Vec::new();
    };
    let mut acls: Vec<Acl> = plan
        .filters()
        .into_iter()
        .map(|(topic, _)| Acl::new("subscribeLiteral", topic))
        .collect();
    acls.extend(
        plan.command_topics()
            .into_iter()
            .map(|topic| Acl::new("publishClientSend", topic)),
    );
    acls
}

fn context_of(link: &DeviceLink) -> TopicContext {
    TopicContext {
        namespace: link.namespace().unwrap_or_default(),
        name: link.name_any(),
        uid: link.uid().unwrap_or_default(),
    }
}

/// The topics of a DeviceLink that is on the managed broker with no
/// credentials of its own (its adaptor connects with its identity).
pub fn managed_topics(link: &DeviceLink) -> Option<DeviceTopics> {
    let options = link.spec.mqtt_extension()?.ok()?;
    if !uses_identity(&options.client) {
        return None;
    }
    // A topic that does not render is the adaptor's to report.
    device_topics(&options, &context_of(link)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, node: &str, server: &str, auth: bool) -> DeviceLink {
        let mut client = json!({"server": server});
        if auth {
            client["basicAuth"] = json!({"username": "u", "password": "p"});
        }
        let mut link: DeviceLink = serde_json::from_value(json!({
            "apiVersion": "edge.cattle.io/v1alpha1", "kind": "DeviceLink",
            "metadata": {"name": name, "namespace": "plant", "uid": format!("uid-{name}")},
            "spec": {"adaptor": {"node": node, "name": "adaptors.edge.cattle.io/dummy"},
                     "model": {"apiVersion": "devices.edge.cattle.io/v1alpha1", "kind": "DummySpecialDevice"},
                     "template": {"spec": {"extension": {"mqtt": {
                        "client": client,
                        "message": {"topic": "cattle.io/octopus/:namespace/:name"}}}}}}
        }))
        .unwrap();
        link.metadata.uid = Some(format!("uid-{name}"));
        link
    }

    #[test]
    fn each_adaptor_gets_only_its_devices_topics_on_the_managed_broker() {
        devicelink_mqtt::identity::set_managed_broker(&["tcp://broker.devicelink:1883".into()])
            .unwrap();
        let links = [
            link("fan", "edge-1", "tcp://broker.devicelink:1883", false),
            link("pump", "edge-2", "tcp://broker.devicelink", false),
            // Its own credentials: the adaptor uses those, not its identity.
            link("own", "edge-1", "tcp://broker.devicelink:1883", true),
            // Another broker.
            link("far", "edge-1", "tcp://elsewhere:1883", false),
        ];
        let roles = roles(links.iter(), true, &[("plant".into(), "ops".into(), true)]);
        let edge1 = &roles[&Identity::Adaptor("devicelink-adaptor-dummy-edge-1".into())];
        let topics: BTreeSet<_> = edge1
            .iter()
            .map(|a| (a.kind.as_str(), a.topic.as_str()))
            .collect();
        assert_eq!(
            topics,
            BTreeSet::from([
                ("publishClientSend", "cattle.io/octopus/plant/fan"),
                ("publishClientSend", "cattle.io/octopus/plant/fan/$write/+"),
                ("subscribeLiteral", "cattle.io/octopus/plant/fan/$write"),
            ])
        );
        let edge2 = &roles[&Identity::Adaptor("devicelink-adaptor-dummy-edge-2".into())];
        assert!(edge2.iter().all(|a| a.topic.contains("/pump")));
        let console: BTreeSet<_> = roles[&Identity::Console]
            .iter()
            .map(|a| a.topic.as_str())
            .collect();
        assert_eq!(
            console,
            BTreeSet::from([
                "#",
                "cattle.io/octopus/plant/fan/$write",
                "cattle.io/octopus/plant/pump/$write"
            ])
        );
    }

    #[test]
    fn the_mqtt_device_example_gets_its_own_topics_on_the_managed_broker() {
        devicelink_mqtt::identity::set_managed_broker(&["tcp://broker.devicelink:1883".into()])
            .unwrap();
        let example = include_str!("../../../deploy/examples/mqtt-device.yaml")
            .replace("devicelink-mqtt.devicelink-system", "broker.devicelink");
        let mut link: DeviceLink = serde_saphyr::from_str(&example).unwrap();
        link.metadata.namespace = Some("default".into());
        let mut granted: Vec<_> = device_protocol_grants(&link)
            .into_iter()
            .map(|a| format!("{} {}", a.kind, a.topic))
            .collect();
        granted.sort();
        let light = "cattle.io/octopus/home";
        assert_eq!(
            granted,
            [
                format!("publishClientSend {light}/set/kitchen/light/gear"),
                format!("publishClientSend {light}/set/kitchen/light/switch"),
                format!("subscribeLiteral {light}/status/kitchen/light/gear"),
                format!("subscribeLiteral {light}/status/kitchen/light/manufacturer"),
                format!("subscribeLiteral {light}/status/kitchen/light/parameter_power"),
                format!("subscribeLiteral {light}/status/kitchen/light/switch"),
            ]
        );
        // Its status mirror (the extension) as any device's.
        let topics = managed_topics(&link).unwrap();
        assert_eq!(topics.status, "cattle.io/octopus/default/kitchen-light");
        assert_eq!(topics.write, "cattle.io/octopus/default/kitchen-light/set");
    }

    #[test]
    fn a_credential_reaches_only_its_namespace_and_writes_only_if_it_may() {
        devicelink_mqtt::identity::set_managed_broker(&["tcp://broker.devicelink:1883".into()])
            .unwrap();
        let mut elsewhere = link("boiler", "edge-1", "tcp://broker.devicelink:1883", false);
        elsewhere.metadata.namespace = Some("other".into());
        let links = [
            link("fan", "edge-1", "tcp://broker.devicelink:1883", false),
            elsewhere,
        ];
        let requests = [
            ("plant".to_string(), "writer".to_string(), true),
            ("plant".to_string(), "reader".to_string(), false),
        ];
        let roles = roles(links.iter(), false, &requests);
        let shown = |name: &str| -> Vec<String> {
            let mut acls: Vec<String> = roles[&Identity::Credential("plant".into(), name.into())]
                .iter()
                .map(|a| format!("{} {} {} {}", a.kind, a.topic, a.allow, a.priority))
                .collect();
            acls.sort();
            acls
        };
        let fan = "cattle.io/octopus/plant/fan";
        assert_eq!(
            shown("reader"),
            [
                "publishClientReceive # false -1".to_string(),
                format!("publishClientReceive {fan} true 0"),
                format!("publishClientReceive {fan}/$write/+ true 0"),
                "subscribePattern # true 0".to_string(),
            ]
        );
        assert!(shown("writer").contains(&format!("publishClientSend {fan}/$write true 0")));
        assert!(shown("writer").iter().all(|a| !a.contains("boiler")));
    }

    #[test]
    fn usernames_name_their_identity_and_slot() {
        let id = Identity::Adaptor("devicelink-adaptor-dummy-edge-1".into());
        let a = id.username(Slot::A);
        assert_eq!(a, "devicelink-adaptor-dummy-edge-1/a");
        assert_eq!(
            Identity::of_username(&a),
            Some(("devicelink-adaptor-dummy-edge-1".into(), Slot::A))
        );
        assert_eq!(Identity::of_username("admin"), None);
        let credential = Identity::Credential("plant".into(), "ops".into());
        assert_eq!(
            Identity::of_name(&credential.name()),
            Some(credential.clone())
        );
        assert_eq!(credential.secret(), "ops-broker-credential");
        assert_eq!(Identity::of_name(&id.name()), Some(id.clone()));
        assert_eq!(Identity::of_username("someone/a"), None);
    }
}
