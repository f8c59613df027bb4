//! The Kafka bridge against a real Apache Kafka (KRaft, from Maven Central)
//! and a real broker, with what arrived read by Kafka's own Java consumer:
//! the mapping of docs/bridge.md, keys and headers, a Kafka outage that
//! loses and reorders nothing, TLS and SASL to Kafka, and bad mappings
//! refused by the API server.

use std::{collections::BTreeMap, time::Duration};

use devicelink_api::{DeviceLink, kafka_bridge::KafkaBridge};
use devicelink_e2e::{
    Broker, LocalKubelet, apply, begin,
    broker::Implementation,
    certs::certificates,
    create_connected, delete_links_and_wait, dummy_link, eventually_showing,
    kafka::{Bridge, Consumer, Kafka, Outgoing, Producer, Record, SASL_USER},
    mqtt,
    process::start_operator,
};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

/// The worked example of docs/bridge.md (issue 34's), as a KafkaBridge.
fn example(namespace: &str, broker: &Broker, kafka: &Kafka) -> Value {
    let topics = json!([
        {"pattern": "iphone|xiaomi|oppo|pixel", "topic": "iot_phone"},
        {"pattern": ".*", "topic": "iot_other"},
    ]);
    json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "KafkaBridge",
        "metadata": {"name": "plant-data", "namespace": namespace},
        "spec": {
            "source": {"client": {"server": broker.url()}, "topics": ["gateway/#", "/gateway/#", "direct/#", "plant/#"]},
            "mapping": {
                "matchIndex": 0,
                "routes": [
                    {"pattern": "gate*", "policy": "gateway"},
                    {"pattern": "dir*", "policy": "direct"},
                ],
                "policies": [
                    {"name": "direct", "topicIndex": 1, "topics": topics,
                     "headers": {"0": "direct", "1": "device", "2": "status"}},
                    {"name": "gateway", "topicIndex": 2, "topics": topics,
                     "headers": {"0": "gateway", "1": "gatewayID", "2": "device", "3": "status"}},
                ],
            },
            "sink": {"bootstrapServers": [kafka.bootstrap()], "topic": "iot_unrouted"},
        },
    })
}

/// Waits until the KafkaBridge says Ready True.
async fn ready(api: &Api<KafkaBridge>, name: &str) {
    eventually_showing(
        &format!("KafkaBridge {name} to be Ready"),
        Duration::from_secs(90),
        || async {
            let bridge = api.get(name).await.map_err(|e| e.to_string())?;
            let conditions = bridge.status.map(|s| s.conditions).unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
            {
                Ok(())
            } else {
                Err(format!("{conditions:?}"))
            }
        },
    )
    .await
}

fn headers(record: &Record) -> BTreeMap<&str, &str> {
    record
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.as_deref()?)))
        .collect()
}

#[tokio::test]
async fn the_worked_examples_reach_kafka_with_their_topics_headers_and_keys() {
    let namespace = "kafka-mapping";
    let (_guard, client) = begin(namespace).await;
    let (broker, kafka) = (Broker::start().await, Kafka::start().await);
    let bridge = Bridge::start(namespace, "mapping-0").await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    apply(&api, &example(namespace, &broker, &kafka)).await;
    ready(&api, "plant-data").await;

    let sent = [
        ("gateway/gate123/iphone/log", "iot_phone"),
        ("direct/xiaomi/status", "iot_phone"),
        ("direct/tv/log", "iot_other"),
        // Levels count from the first non-empty one.
        ("/gateway/gate9/pixel/log", "iot_phone"),
        // No route takes it: the sink's topic.
        ("plant/line1/fan", "iot_unrouted"),
    ];
    for (topic, _) in sent {
        mqtt::publish(broker.port, topic, format!("from {topic}").as_bytes()).await;
    }
    let mut consumer = Consumer::start(&kafka, &["iot_phone", "iot_other", "iot_unrouted"]);
    let records = consumer.take(sent.len(), Duration::from_secs(60)).await;
    let by_mqtt_topic: BTreeMap<&str, &Record> = records
        .iter()
        .map(|r| (r.header("mqtt.topic").unwrap_or_default(), r))
        .collect();
    assert_eq!(
        by_mqtt_topic.len(),
        sent.len(),
        "one record per message: {records:#?}"
    );
    for (topic, kafka_topic) in sent {
        let record = by_mqtt_topic[topic];
        assert_eq!(record.topic, kafka_topic, "{topic}");
        assert_eq!(
            record.key.as_deref(),
            Some(topic),
            "keyed by the MQTT topic"
        );
        assert_eq!(
            record.value.as_deref(),
            Some(format!("from {topic}").as_str())
        );
        assert_eq!(
            record.header("devicelink.bridge"),
            Some("kafka-mapping/plant-data")
        );
    }
    let expect = |pairs: &[(&'static str, &'static str)]| -> BTreeMap<&'static str, &'static str> {
        let mut all: BTreeMap<_, _> = pairs.iter().copied().collect();
        all.insert("devicelink.bridge", "kafka-mapping/plant-data");
        all
    };
    let mut gateway = expect(&[
        ("gateway", "gateway"),
        ("gatewayID", "gate123"),
        ("device", "iphone"),
        ("status", "log"),
    ]);
    gateway.insert("mqtt.topic", "gateway/gate123/iphone/log");
    assert_eq!(
        headers(by_mqtt_topic["gateway/gate123/iphone/log"]),
        gateway
    );
    let mut xiaomi = expect(&[
        ("direct", "direct"),
        ("device", "xiaomi"),
        ("status", "status"),
    ]);
    xiaomi.insert("mqtt.topic", "direct/xiaomi/status");
    assert_eq!(headers(by_mqtt_topic["direct/xiaomi/status"]), xiaomi);
    let mut tv = expect(&[("direct", "direct"), ("device", "tv"), ("status", "log")]);
    tv.insert("mqtt.topic", "direct/tv/log");
    assert_eq!(headers(by_mqtt_topic["direct/tv/log"]), tv);
    assert_eq!(
        headers(by_mqtt_topic["/gateway/gate9/pixel/log"]).get("gatewayID"),
        Some(&"gate9")
    );
    let mut unrouted = expect(&[]);
    unrouted.insert("mqtt.topic", "plant/line1/fan");
    assert_eq!(headers(by_mqtt_topic["plant/line1/fan"]), unrouted);

    // The replica's entry counts them (counters are written every 10 s).
    eventually_showing("the delivered count", Duration::from_secs(30), || async {
        let delivered = delivered_by(&api, "plant-data").await;
        (delivered.get("mapping-0") == Some(&(sent.len() as i64)))
            .then_some(())
            .ok_or(format!("{delivered:?}"))
    })
    .await;
    consumer.stop().await;
    api.delete("plant-data", &Default::default()).await.unwrap();
    bridge.stop().await;
}

/// Three devices publish numbered messages at QoS 1 while Kafka is away
/// for 30 s: all arrive, each device's in order (a duplicate, which at
/// least once allows, is counted and shown).
#[tokio::test]
async fn a_kafka_outage_loses_and_reorders_nothing() {
    let namespace = "kafka-outage";
    let (_guard, client) = begin(namespace).await;
    let (broker, mut kafka) = (Broker::start().await, Kafka::start().await);
    let bridge = Bridge::start(namespace, "outage-0").await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    let mut object = example(namespace, &broker, &kafka);
    object["spec"]["mapping"] = Value::Null;
    object["spec"]["sink"]["topic"] = json!("readings");
    apply(&api, &object).await;
    ready(&api, "plant-data").await;

    const EACH: u32 = 60;
    let devices = ["plant/fan", "plant/pump", "plant/press"];
    let publish = |from: u32, to: u32| async move {
        for n in from..to {
            for device in devices {
                mqtt::publish(broker.port, device, n.to_string().as_bytes()).await;
            }
        }
    };
    publish(0, EACH / 3).await;
    kafka.stop().await;
    let away = tokio::time::Instant::now();
    publish(EACH / 3, 2 * EACH / 3).await;
    tokio::time::sleep_until(away + Duration::from_secs(30)).await;
    kafka.restart().await;
    publish(2 * EACH / 3, EACH).await;

    let mut consumer = Consumer::start(&kafka, &["readings"]);
    let seen = numbers_by_key(&mut consumer, devices.len() * EACH as usize).await;
    for device in devices {
        let numbers = seen.get(device).cloned().unwrap_or_default();
        let duplicates = numbers.len() - unique(&numbers);
        eprintln!(
            "{device}: {} records, {duplicates} duplicate(s)",
            numbers.len()
        );
        assert_eq!(
            first_arrivals(&numbers),
            (0..EACH).collect::<Vec<_>>(),
            "{device}: every message, in order ({numbers:?})"
        );
    }
    consumer.stop().await;
    api.delete("plant-data", &Default::default()).await.unwrap();
    bridge.stop().await;
}

/// What each replica says it delivered, by replica.
async fn delivered_by(api: &Api<KafkaBridge>, name: &str) -> BTreeMap<String, i64> {
    api.get(name)
        .await
        .ok()
        .and_then(|b| b.status)
        .map(|s| {
            s.replicas
                .into_iter()
                .map(|r| (r.name, r.delivered))
                .collect()
        })
        .unwrap_or_default()
}

/// Two replicas share a bridge's messages (an MQTT shared subscription),
/// each showing its part in `status.replicas`. One of them, killed
/// mid-stream (SIGKILL: it acknowledges nothing more) and started again
/// under its name (as the chart's StatefulSet does), loses nothing: every
/// message arrives; duplicates, which at least once allows, are counted
/// and shown. (With two replicas a device's messages are spread over both,
/// so their order in Kafka is not asserted here: docs/bridge.md.)
#[tokio::test]
async fn replicas_share_the_load_and_a_killed_one_loses_nothing() {
    let namespace = "kafka-replicas";
    let (_guard, client) = begin(namespace).await;
    let (broker, kafka) = (Broker::start().await, Kafka::start().await);
    let first = Bridge::start(namespace, "replica-0").await;
    let second = Bridge::start(namespace, "replica-1").await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    let mut object = example(namespace, &broker, &kafka);
    object["spec"]["mapping"] = Value::Null;
    object["spec"]["sink"]["topic"] = json!("readings");
    apply(&api, &object).await;
    ready(&api, "plant-data").await;

    const EACH: u32 = 90;
    let devices = ["plant/fan", "plant/pump", "plant/press"];
    let publish = |from: u32, to: u32| async move {
        for n in from..to {
            for device in devices {
                mqtt::publish(broker.port, device, n.to_string().as_bytes()).await;
            }
        }
    };
    publish(0, EACH / 3).await;
    // Both replicas report; together they delivered every message.
    let first_third = 3 * (EACH / 3) as i64;
    let shares = eventually_showing(
        "both replicas reporting, every message delivered",
        Duration::from_secs(60),
        || async {
            let delivered = delivered_by(&api, "plant-data").await;
            (delivered.len() == 2 && delivered.values().sum::<i64>() == first_third)
                .then_some(delivered.clone())
                .ok_or(format!("{delivered:?}"))
        },
    )
    .await;
    // How a shared subscription spreads messages is the broker's choice
    // (MQTT leaves it open): mosquitto takes its members in turn; HiveMQ
    // may give one member all of a light load.
    if Implementation::chosen() == Implementation::Mosquitto {
        assert!(
            shares.values().all(|n| *n > 0),
            "mosquitto shares the messages in turn: {shares:?}"
        );
    }
    eprintln!("shares of the first third: {shares:?}");
    // Killed while the second third is being published; the last third
    // comes while it is away (its share waits in its session).
    let publishing = tokio::spawn(publish(EACH / 3, 2 * EACH / 3));
    tokio::time::sleep(Duration::from_millis(300)).await;
    second.kill().await;
    publishing.await.unwrap();
    publish(2 * EACH / 3, EACH).await;
    let second = Bridge::start(namespace, "replica-1").await;

    let mut consumer = Consumer::start(&kafka, &["readings"]);
    let seen = numbers_by_key(&mut consumer, devices.len() * EACH as usize).await;
    for device in devices {
        let numbers = seen.get(device).cloned().unwrap_or_default();
        eprintln!(
            "{device}: {} records, {} duplicate(s)",
            numbers.len(),
            numbers.len() - unique(&numbers)
        );
        let mut arrived = first_arrivals(&numbers);
        arrived.sort_unstable();
        assert_eq!(
            arrived,
            (0..EACH).collect::<Vec<_>>(),
            "{device}: every message ({numbers:?})"
        );
    }
    consumer.stop().await;
    api.delete("plant-data", &Default::default()).await.unwrap();
    first.stop().await;
    second.stop().await;
}

/// The numbers in the order each first came.
fn first_arrivals(numbers: &[u32]) -> Vec<u32> {
    let mut first: Vec<u32> = Vec::new();
    for n in numbers {
        if !first.contains(n) {
            first.push(*n);
        }
    }
    first
}

/// The numbered records the consumer reads, by key, until `wanted`
/// different ones have come (or two minutes have passed).
async fn numbers_by_key(consumer: &mut Consumer, wanted: usize) -> BTreeMap<String, Vec<u32>> {
    let mut seen: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while seen.values().map(|v| unique(v)).sum::<usize>() < wanted {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(record) = consumer.next(left).await else {
            break;
        };
        let n: u32 = record.value.as_deref().unwrap().parse().unwrap();
        seen.entry(record.key.clone().unwrap()).or_default().push(n);
    }
    seen
}

fn unique(numbers: &[u32]) -> usize {
    let mut sorted = numbers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.len()
}

#[tokio::test]
async fn bad_mappings_are_refused_by_the_api_server_naming_the_field() {
    let namespace = "kafka-refused";
    let (_guard, client) = begin(namespace).await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    let base = json!({
        "apiVersion": "edge.cattle.io/v1alpha1",
        "kind": "KafkaBridge",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {
            "source": {"client": {"server": "tcp://broker:1883"}, "topics": ["plant/#"]},
            "mapping": {
                "routes": [{"pattern": "^plant$", "policy": "plant"}],
                "policies": [{"name": "plant", "topicIndex": 1,
                              "topics": [{"pattern": ".", "topic": "plant"}],
                              "headers": {"1": "line"}}],
            },
            "sink": {"bootstrapServers": ["kafka:9092"], "topic": "devices"},
        },
    });
    let create = |object: Value| {
        let api = api.clone();
        async move {
            let object: KafkaBridge = serde_json::from_value(object).unwrap();
            match api.create(&PostParams::default(), &object).await {
                Ok(_) => {
                    api.delete("bad", &Default::default()).await.unwrap();
                    String::new()
                }
                Err(kube::Error::Api(status)) => status.message,
                Err(e) => panic!("{e}"),
            }
        }
    };
    assert_eq!(
        create(base.clone()).await,
        "",
        "the base object is accepted"
    );
    let cases: [(&str, Value, &[&str]); 5] = [
        (
            "a route naming no policy",
            json!({"routes": [{"pattern": "^plant$", "policy": "hall"}]}),
            &[
                "spec.mapping.routes",
                "every route must name an entry of policies",
            ],
        ),
        (
            "a pattern that is not a regular expression",
            json!({"routes": [{"pattern": "(plant", "policy": "plant"}]}),
            &["spec.mapping.routes[0].pattern"],
        ),
        (
            "a header key that is not a level",
            json!({"policies": [{"name": "plant", "topicIndex": 1,
                   "topics": [{"pattern": ".", "topic": "plant"}], "headers": {"line": "line"}}]}),
            &["spec.mapping.policies[0].headers", "level indexes"],
        ),
        (
            "a Kafka topic Kafka does not allow",
            json!({"policies": [{"name": "plant", "topicIndex": 1,
                   "topics": [{"pattern": ".", "topic": "plant data"}]}]}),
            &[
                "spec.mapping.policies[0].topics[0].topic",
                "Kafka topic name",
            ],
        ),
        (
            "a bootstrap server without a port",
            json!(null),
            &["spec.sink.bootstrapServers[0]", "host:port"],
        ),
    ];
    for (what, mapping_change, expected) in cases {
        let mut object = base.clone();
        if mapping_change.is_null() {
            object["spec"]["sink"]["bootstrapServers"] = json!(["kafka"]);
        } else {
            for (k, v) in mapping_change.as_object().unwrap() {
                object["spec"]["mapping"][k] = v.clone();
            }
        }
        let message = create(object).await;
        for part in expected {
            assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
        }
    }
    let sink_cases: [(&str, Value, &[&str]); 3] = [
        (
            "a username both written and referenced",
            json!({"sasl": {"mechanism": "PLAIN", "username": "bridge",
                   "usernameRef": {"name": "kafka", "item": "username"},
                   "passwordRef": {"name": "kafka", "item": "password"}}}),
            &["spec.sink.sasl", "set username or usernameRef, one of them"],
        ),
        (
            "a password from no reference",
            json!({"sasl": {"mechanism": "SCRAM-SHA-256", "username": "bridge",
                   "passwordRef": {"name": "vault", "item": "password"}}}),
            &[
                "spec.sink.sasl.passwordRef.name",
                "names 'vault', which is not an entry of spec.references",
            ],
        ),
        (
            "a client certificate without its key",
            json!({"tls": {"certFilePEM": "-----BEGIN CERTIFICATE-----"}}),
            &["spec.sink.tls", "go together"],
        ),
    ];
    for (what, sink_change, expected) in sink_cases {
        let mut object = base.clone();
        object["spec"]["references"] = json!([{"name": "kafka", "secret": {"name": "kafka-auth"}}]);
        for (k, v) in sink_change.as_object().unwrap() {
            object["spec"]["sink"][k] = v.clone();
        }
        let message = create(object).await;
        for part in expected {
            assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
        }
    }
    // What is taken, and commands back.
    let spec_cases: [(&str, Value, &[&str]); 3] = [
        (
            "a source taking nothing",
            json!({"source": {"client": {"server": "tcp://broker:1883"}}}),
            &["spec.source", "set topics, deviceLinks or both"],
        ),
        (
            "commands with no DeviceLinks selected",
            json!({"commands": {"topic": "commands", "replyTopic": "answers"}}),
            &["spec.commands", "set it"],
        ),
        (
            "answers on the commands' own topic",
            json!({"source": {"client": {"server": "tcp://broker:1883"}, "deviceLinks": {}},
                   "commands": {"topic": "commands", "replyTopic": "commands"}}),
            &["spec.commands.replyTopic", "must differ from topic"],
        ),
    ];
    for (what, spec_change, expected) in spec_cases {
        let mut object = base.clone();
        for (k, v) in spec_change.as_object().unwrap() {
            object["spec"][k] = v.clone();
        }
        let message = create(object).await;
        for part in expected {
            assert!(message.contains(part), "{what}: {message:?} lacks {part:?}");
        }
    }
}

/// Waits until the KafkaBridge's SinkConnected condition is False, and
/// returns its message.
async fn sink_refused(api: &Api<KafkaBridge>, name: &str) -> String {
    eventually_showing(
        &format!("KafkaBridge {name}: SinkConnected False"),
        Duration::from_secs(90),
        || async {
            let bridge = api.get(name).await.map_err(|e| e.to_string())?;
            let conditions = bridge.status.map(|s| s.conditions).unwrap_or_default();
            match conditions.iter().find(|c| c.type_ == "SinkConnected") {
                Some(c) if c.status == "False" => Ok(c.message.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

/// TLS and SASL to Kafka, the values from a Secret: over TLS with each
/// SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), and with a client
/// certificate where the listener requires one, the bridge delivers. A
/// wrong password, and brokers whose certificate is not of the CA given,
/// leave SinkConnected False saying why, and deliver nothing.
#[tokio::test]
async fn the_sink_speaks_tls_and_sasl_and_refuses_what_it_should() {
    let namespace = "kafka-secured";
    let (_guard, client) = begin(namespace).await;
    let certs = certificates();
    let (broker, kafka) = (
        Broker::start().await,
        Kafka::start_secured(certs.path()).await,
    );
    let pem = |file: &str| std::fs::read_to_string(certs.path().join(file)).unwrap();
    let (user, password) = SASL_USER;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    apply(
        &secrets,
        &json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kafka-auth", "namespace": namespace},
            "stringData": {
                "username": user,
                "password": password,
                "wrong-password": "guess",
                "ca.pem": pem("ca.pem"),
                "other-ca.pem": pem("other-ca.pem"),
                "client.pem": pem("client.pem"),
                "client.key": pem("client.key"),
            },
        }),
    )
    .await;
    let bridge = Bridge::start(namespace, "secured-0").await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    let item = |item: &str| json!({"name": "kafka", "item": item});
    let object = |name: &str, sink: Value| {
        let mut sink = sink;
        sink["topic"] = json!(name);
        json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "references": [{"name": "kafka", "secret": {"name": "kafka-auth"}}],
                "source": {"client": {"server": broker.url()}, "topics": [format!("{name}/#")]},
                "sink": sink,
            },
        })
    };
    let sasl = |mechanism: &str, password: &str| {
        json!({
            "bootstrapServers": [kafka.sasl_ssl()],
            "tls": {"caFilePEMRef": item("ca.pem")},
            "sasl": {"mechanism": mechanism, "usernameRef": item("username"),
                     "passwordRef": item(password)},
        })
    };
    let delivering = [
        ("plain", {
            // The username written in the spec, the CA too.
            let mut sink = sasl("PLAIN", "password");
            sink["sasl"]["username"] = json!(user);
            sink["sasl"].as_object_mut().unwrap().remove("usernameRef");
            sink["tls"] = json!({"caFilePEM": pem("ca.pem")});
            sink
        }),
        ("scram-256", sasl("SCRAM-SHA-256", "password")),
        ("scram-512", sasl("SCRAM-SHA-512", "password")),
        (
            "client-cert",
            json!({
                "bootstrapServers": [kafka.mutual_tls()],
                "tls": {"caFilePEMRef": item("ca.pem"), "certFilePEMRef": item("client.pem"),
                        "keyFilePEMRef": item("client.key")},
            }),
        ),
    ];
    let refused = [
        ("wrong-password", sasl("SCRAM-SHA-256", "wrong-password")),
        ("untrusted", {
            let mut sink = sasl("SCRAM-SHA-256", "password");
            sink["tls"]["caFilePEMRef"] = item("other-ca.pem");
            sink
        }),
    ];
    for (name, sink) in delivering.iter().chain(&refused) {
        apply(&api, &object(name, sink.clone())).await;
    }
    for (name, _) in &delivering {
        ready(&api, name).await;
    }
    let mut why = BTreeMap::new();
    for (name, _) in &refused {
        why.insert(*name, sink_refused(&api, name).await);
    }
    for (name, _) in delivering.iter().chain(&refused) {
        let topic = format!("{name}/reading");
        mqtt::publish(broker.port, &topic, name.as_bytes()).await;
    }
    let topics: Vec<&str> = delivering
        .iter()
        .chain(&refused)
        .map(|(name, _)| *name)
        .collect();
    let mut consumer = Consumer::start(&kafka, &topics);
    let mut records = consumer
        .take(delivering.len(), Duration::from_secs(60))
        .await;
    // Anything from the refused ones would come with the others.
    records.extend(consumer.take(1, Duration::from_secs(5)).await);
    let arrived: BTreeMap<&str, &str> = records
        .iter()
        .map(|r| (r.topic.as_str(), r.value.as_deref().unwrap_or_default()))
        .collect();
    let expected: BTreeMap<&str, &str> = delivering.iter().map(|(n, _)| (*n, *n)).collect();
    assert_eq!(
        arrived, expected,
        "one record from each bridge that could connect, none from the others: {records:#?}"
    );
    assert!(
        why["wrong-password"].contains("Authentication failed"),
        "a wrong password: {}",
        why["wrong-password"]
    );
    assert!(
        why["untrusted"].contains("certificate verify failed"),
        "a broker certificate of another CA: {}",
        why["untrusted"]
    );
    consumer.stop().await;
    for (name, _) in delivering.iter().chain(&refused) {
        api.delete(name, &Default::default()).await.unwrap();
    }
    bridge.stop().await;
}

/// A dummy fan, turned on so that it publishes its status every tick (a
/// shared subscription gets no retained status), on `plant/<name>/status`
/// and takes writes on `plant/<name>/set`, labelled `line`.
fn fan(namespace: &str, name: &str, line: &str, broker: &Broker) -> DeviceLink {
    let mut link = dummy_link(
        namespace,
        name,
        "edge-worker",
        json!({"spec": {
            "protocol": {"location": name}, "gear": "slow", "on": true,
            "extension": {"mqtt": {
                "client": {"server": broker.url()},
                "message": {"topic": "plant/:name/:operator",
                            "operator": {"read": "set", "write": "status"}},
            }},
        }}),
    );
    link.metadata.labels = Some([("line".to_string(), line.to_string())].into());
    link
}

/// The names of the DeviceLinks whose status records arrive within
/// `window` (the MQTT topic of a record that names none), with how many
/// of each.
async fn names_within(consumer: &mut Consumer, window: Duration) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + window;
    while let Some(record) = consumer
        .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        // A record with no DeviceLink's headers goes by its MQTT topic.
        let name = record
            .header("devicelink.name")
            .or(record.header("mqtt.topic"))
            .unwrap_or("?")
            .to_string();
        *names.entry(name).or_default() += 1;
    }
    names
}

/// Reads `consumer` until `enough` says the records read (since the call)
/// are enough, or fails after `within`, showing what came.
async fn read_until(
    consumer: &mut Consumer,
    what: &str,
    within: Duration,
    enough: impl Fn(&[Record]) -> bool,
) -> Vec<Record> {
    let deadline = tokio::time::Instant::now() + within;
    let mut read = Vec::new();
    while !enough(&read) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match consumer.next(left).await {
            Some(record) => read.push(record),
            None => panic!("{what}: not within {within:?}; read {read:#?}"),
        }
    }
    read
}

/// `source.deviceLinks`: the status of the DeviceLinks a label selector
/// picks reaches Kafka keyed by their UIDs, with their namespace, name and
/// UID as headers, following the selector as labels change. `commands`:
/// writes from a Kafka topic reach the selected DeviceLinks' adaptors and
/// their answers come back keyed and correlated; commands for DeviceLinks
/// of another namespace, not selected, or too old are refused by the
/// bridge with the reason, and written to no device.
#[tokio::test]
async fn devicelinks_by_label_reach_kafka_and_take_commands_back() {
    let namespace = "kafka-devices";
    let (_guard, client) = begin(namespace).await;
    let (broker, kafka) = (Broker::start().await, Kafka::start().await);
    let operator = start_operator();
    let _kubelet = LocalKubelet::start(client.clone());
    let links: Api<DeviceLink> = Api::namespaced(client.clone(), namespace);
    let mut uids = BTreeMap::new();
    for (name, line) in [("fan-a", "1"), ("fan-b", "1"), ("fan-c", "2")] {
        let link = create_connected(&links, &fan(namespace, name, line, &broker)).await;
        uids.insert(name, link.metadata.uid.unwrap());
    }
    let bridge = Bridge::start(namespace, "devices-0").await;
    let api: Api<KafkaBridge> = Api::namespaced(client, namespace);
    apply(
        &api,
        &json!({
            "apiVersion": "edge.cattle.io/v1alpha1",
            "kind": "KafkaBridge",
            "metadata": {"name": "line-1", "namespace": namespace},
            "spec": {
                "source": {"client": {"server": broker.url()},
                           "deviceLinks": {"selector": {"matchLabels": {"line": "1"}}}},
                "sink": {"bootstrapServers": [kafka.bootstrap()], "topic": "fans"},
                "commands": {"topic": "fan-commands", "replyTopic": "fan-answers", "timeout": "5s"},
            },
        }),
    )
    .await;
    ready(&api, "line-1").await;

    // Line 1's fans, keyed by UID, saying whose status they are.
    let mut status = Consumer::start(&kafka, &["fans"]);
    let names = |records: &[Record]| -> BTreeMap<String, Record> {
        records
            .iter()
            .map(|r| {
                (
                    r.header("devicelink.name").unwrap_or("?").to_string(),
                    r.clone(),
                )
            })
            .collect()
    };
    let first = read_until(
        &mut status,
        "a record of each of line 1's fans",
        Duration::from_secs(60),
        |read| names(read).len() >= 2,
    )
    .await;
    let seen = names(&first);
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        ["fan-a", "fan-b"],
        "line 1 only"
    );
    for name in ["fan-a", "fan-b"] {
        let record = &seen[name];
        assert_eq!(
            record.key.as_deref(),
            Some(uids[name].as_str()),
            "keyed by UID"
        );
        assert_eq!(record.header("devicelink.namespace"), Some(namespace));
        assert_eq!(record.header("devicelink.uid"), Some(uids[name].as_str()));
        assert_eq!(
            record.header("mqtt.topic"),
            Some(format!("plant/{name}/status").as_str())
        );
        assert_eq!(
            record.header("devicelink.bridge"),
            Some("kafka-devices/line-1")
        );
    }

    // The selector is followed: fan-b leaves line 1, fan-c joins it.
    let relabel = |line: &str| json!({"metadata": {"labels": {"line": line}}});
    for (name, line) in [("fan-b", "3"), ("fan-c", "1")] {
        links
            .patch(name, &PatchParams::default(), &Patch::Merge(relabel(line)))
            .await
            .unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let names = names_within(&mut status, Duration::from_secs(4)).await;
        if names.contains_key("fan-c") && !names.contains_key("fan-b") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a window with fan-c's status and not fan-b's, within 90 s: {names:?}"
        );
    }

    // Commands. The bridge's consumer joins its group at the end of the
    // topic: a first command is sent again until its answer comes.
    let mut fan_b_writes = mqtt::Subscriber::start(broker.port, "plant/fan-b/set").await;
    let mut commands = Producer::start(&kafka, "fan-commands");
    let mut answers = Consumer::start(&kafka, &["fan-answers"]);
    let key_a = format!("{namespace}/fan-a");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let probe = format!("probe-{}", now_millis());
        commands
            .send(&Outgoing {
                key: &key_a,
                value: r#"{"gear": "slow"}"#,
                headers: vec![("devicelink.correlation", &probe)],
                timestamp: None,
            })
            .await;
        let answered = tokio::time::timeout(
            Duration::from_secs(10),
            read_until(
                &mut answers,
                "the probe's answer",
                // The timeout around it ends the wait.
                Duration::from_secs(3600),
                |read| {
                    read.iter()
                        .any(|r| r.header("devicelink.correlation") == Some(probe.as_str()))
                },
            ),
        )
        .await;
        if answered.is_ok() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge to answer a first command within 90 s"
        );
    }

    let cases: [(String, &str, &str, Option<i64>); 5] = [
        (
            key_a.clone(),
            r#"{"on": true, "gear": "fast"}"#,
            "turn-on",
            None,
        ),
        (key_a.clone(), r#"{"speed": 3}"#, "unknown-property", None),
        (
            "elsewhere/fan-a".into(),
            r#"{"on": true}"#,
            "other-namespace",
            None,
        ),
        (
            format!("{namespace}/fan-b"),
            r#"{"on": true}"#,
            "not-selected",
            None,
        ),
        (
            key_a.clone(),
            r#"{"on": false}"#,
            "too-old",
            Some(now_millis() - 600_000),
        ),
    ];
    for (key, value, correlation, timestamp) in &cases {
        commands
            .send(&Outgoing {
                key,
                value,
                headers: vec![("devicelink.correlation", correlation)],
                timestamp: *timestamp,
            })
            .await;
    }
    let read = read_until(
        &mut answers,
        "an answer to each command",
        Duration::from_secs(60),
        |read| {
            cases.iter().all(|(_, _, c, _)| {
                read.iter()
                    .any(|r| r.header("devicelink.correlation") == Some(c))
            })
        },
    )
    .await;
    let by_correlation: BTreeMap<&str, Record> = read
        .into_iter()
        .filter_map(|r| {
            let c = cases
                .iter()
                .map(|(_, _, c, _)| *c)
                .find(|c| r.header("devicelink.correlation") == Some(c))?;
            Some((c, r))
        })
        .collect();
    for (key, _, correlation, _) in &cases {
        assert_eq!(
            by_correlation[correlation].key.as_deref(),
            Some(key.as_str()),
            "{correlation}: the command's key"
        );
    }
    let value = |c: &str| -> Value {
        serde_json::from_str(by_correlation[c].value.as_deref().unwrap()).unwrap()
    };
    let by = |c: &str| {
        by_correlation[c]
            .header("devicelink.answeredBy")
            .map(str::to_string)
    };
    assert_eq!(
        value("turn-on"),
        json!({"ok": true, "applied": {"on": true, "gear": "fast"}})
    );
    assert_eq!(by("turn-on").as_deref(), Some("adaptor"));
    assert_eq!(
        by_correlation["turn-on"].header("devicelink.uid"),
        Some(uids["fan-a"].as_str())
    );
    assert_eq!(
        value("unknown-property")["ok"],
        false,
        "the adaptor's refusal"
    );
    assert_eq!(by("unknown-property").as_deref(), Some("adaptor"));
    let refusal = |c: &str| {
        value(c)["refused"][0]["reason"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (correlation, reason) in [
        (
            "other-namespace",
            "only to DeviceLinks of namespace kafka-devices",
        ),
        (
            "not-selected",
            "is not one the bridge's source.deviceLinks selects",
        ),
        ("too-old", "older than expireAfter"),
    ] {
        assert_eq!(by(correlation).as_deref(), Some("bridge"), "{correlation}");
        assert!(
            refusal(correlation).contains(reason),
            "{correlation}: {}",
            refusal(correlation)
        );
    }
    // The write reached the fan: its status in Kafka says so; fan-b, not
    // selected, was not written.
    read_until(
        &mut status,
        "fan-a's status to say gear fast",
        Duration::from_secs(60),
        |read| {
            read.iter().any(|r| {
                let v: Value =
                    serde_json::from_str(r.value.as_deref().unwrap_or("null")).unwrap_or_default();
                r.header("devicelink.name") == Some("fan-a") && v["gear"] == "fast"
            })
        },
    )
    .await;
    // The replica counts them (its counters are written every 10 s).
    eventually_showing("the commands counted", Duration::from_secs(30), || async {
        let bridge = api.get("line-1").await.map_err(|e| e.to_string())?;
        let replicas = bridge.status.map(|s| s.replicas).unwrap_or_default();
        replicas
            .iter()
            .any(|r| r.commands_answered >= 3 && r.commands_refused >= 3)
            .then_some(())
            .ok_or(format!("{replicas:?}"))
    })
    .await;
    // Refused before anything was published: fan-b got no write.
    let written = fan_b_writes.try_next(Duration::from_secs(1)).await;
    assert!(written.is_none(), "{written:?}");

    // A DeviceLink let go of while the bridge is away stays subscribed in
    // the session the broker keeps for it: its messages still come, and
    // must not reach Kafka.
    bridge.stop().await;
    links
        .patch(
            "fan-c",
            &PatchParams::default(),
            &Patch::Merge(relabel("9")),
        )
        .await
        .unwrap();
    let bridge = Bridge::start(namespace, "devices-0").await;
    let mut windows = 0;
    loop {
        let names = names_within(&mut status, Duration::from_secs(4)).await;
        windows += 1;
        // The first window may still hold what came before the restart.
        assert!(
            windows == 1 || !names.keys().any(|n| n.contains("fan-c")),
            "fan-c, no longer selected, reached Kafka after the bridge came back: {names:?}"
        );
        if windows >= 3 && names.contains_key("fan-a") {
            break;
        }
        assert!(windows < 20, "fan-a's status within 80 s: {names:?}");
    }

    commands.stop().await;
    answers.stop().await;
    status.stop().await;
    api.delete("line-1", &Default::default()).await.unwrap();
    bridge.stop().await;
    delete_links_and_wait(&links, &["fan-a", "fan-b", "fan-c"]).await;
    operator.stop().await;
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
