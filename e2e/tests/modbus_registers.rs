//! Every type x byte order x data table, read and written through the
//! Modbus adaptor's poller against a pymodbus server holding known
//! register contents. The expected words are written out by hand (from
//! Python's struct module), not computed by the adaptor's codec.

use std::collections::HashMap;

use devicelink_adaptor_modbus::{
    metrics::{ModbusMetrics, RequestLabels},
    poller::Poller,
};
use devicelink_api::modbus::{ModbusDeviceSpec, ModbusProtocol, ModbusTcp};
use devicelink_e2e::modbus::{ModbusServer, coils, holding};
use serde_json::{Value, json};

/// One value: its type and register count, the value as JSON (for writes),
/// its text in the status, and its words in BigEndian, BigEndianSwap,
/// LittleEndian and LittleEndianSwap order.
struct Row {
    type_: &'static str,
    quantity: u16,
    value: &'static str,
    text: &'static str,
    words: [&'static [u16]; 4],
}

const ORDERS: [&str; 4] = [
    "BigEndian",
    "BigEndianSwap",
    "LittleEndian",
    "LittleEndianSwap",
];

#[rustfmt::skip]
const ROWS: &[Row] = &[
    Row { type_: "int8", quantity: 1, value: r#"-3"#, text: "-3", words: [&[0xfffd], &[0xfdff], &[0xfdff], &[0xfffd]] },
    Row { type_: "uint8", quantity: 1, value: r#"200"#, text: "200", words: [&[0x00c8], &[0xc800], &[0xc800], &[0x00c8]] },
    Row { type_: "int16", quantity: 1, value: r#"-2"#, text: "-2", words: [&[0xfffe], &[0xfeff], &[0xfeff], &[0xfffe]] },
    Row { type_: "uint16", quantity: 1, value: r#"4660"#, text: "4660", words: [&[0x1234], &[0x3412], &[0x3412], &[0x1234]] },
    Row { type_: "int", quantity: 1, value: r#"-300"#, text: "-300", words: [&[0xfed4], &[0xd4fe], &[0xd4fe], &[0xfed4]] },
    Row { type_: "int", quantity: 2, value: r#"-123456789"#, text: "-123456789", words: [&[0xf8a4, 0x32eb], &[0xa4f8, 0xeb32], &[0xeb32, 0xa4f8], &[0x32eb, 0xf8a4]] },
    Row { type_: "uint", quantity: 1, value: r#"65535"#, text: "65535", words: [&[0xffff], &[0xffff], &[0xffff], &[0xffff]] },
    Row { type_: "uint", quantity: 2, value: r#"3000000000"#, text: "3000000000", words: [&[0xb2d0, 0x5e00], &[0xd0b2, 0x005e], &[0x005e, 0xd0b2], &[0x5e00, 0xb2d0]] },
    Row { type_: "int32", quantity: 2, value: r#"-123456789"#, text: "-123456789", words: [&[0xf8a4, 0x32eb], &[0xa4f8, 0xeb32], &[0xeb32, 0xa4f8], &[0x32eb, 0xf8a4]] },
    Row { type_: "uint32", quantity: 2, value: r#"3000000000"#, text: "3000000000", words: [&[0xb2d0, 0x5e00], &[0xd0b2, 0x005e], &[0x005e, 0xd0b2], &[0x5e00, 0xb2d0]] },
    Row { type_: "int64", quantity: 4, value: r#"-1234567890123456789"#, text: "-1234567890123456789", words: [&[0xeedd, 0xef0b, 0x8216, 0x7eeb], &[0xddee, 0x0bef, 0x1682, 0xeb7e], &[0xeb7e, 0x1682, 0x0bef, 0xddee], &[0x7eeb, 0x8216, 0xef0b, 0xeedd]] },
    Row { type_: "uint64", quantity: 4, value: r#"12345678901234567890"#, text: "12345678901234567890", words: [&[0xab54, 0xa98c, 0xeb1f, 0x0ad2], &[0x54ab, 0x8ca9, 0x1feb, 0xd20a], &[0xd20a, 0x1feb, 0x8ca9, 0x54ab], &[0x0ad2, 0xeb1f, 0xa98c, 0xab54]] },
    Row { type_: "float", quantity: 1, value: r#"235"#, text: "235", words: [&[0x00eb], &[0xeb00], &[0xeb00], &[0x00eb]] },
    Row { type_: "float", quantity: 2, value: r#"-0.5"#, text: "-0.5", words: [&[0xbf00, 0x0000], &[0x00bf, 0x0000], &[0x0000, 0x00bf], &[0x0000, 0xbf00]] },
    Row { type_: "float32", quantity: 2, value: r#"23.4"#, text: "23.4", words: [&[0x41bb, 0x3333], &[0xbb41, 0x3333], &[0x3333, 0xbb41], &[0x3333, 0x41bb]] },
    Row { type_: "double", quantity: 4, value: r#"1234.5678"#, text: "1234.5678", words: [&[0x4093, 0x4a45, 0x6d5c, 0xfaad], &[0x9340, 0x454a, 0x5c6d, 0xadfa], &[0xadfa, 0x5c6d, 0x454a, 0x9340], &[0xfaad, 0x6d5c, 0x4a45, 0x4093]] },
    Row { type_: "float64", quantity: 4, value: r#"-2.5e-8"#, text: "-0.000000025", words: [&[0xbe5a, 0xd7f2, 0x9abc, 0xaf48], &[0x5abe, 0xf2d7, 0xbc9a, 0x48af], &[0x48af, 0xbc9a, 0xf2d7, 0x5abe], &[0xaf48, 0x9abc, 0xd7f2, 0xbe5a]] },
    Row { type_: "boolean", quantity: 1, value: r#"true"#, text: "true", words: [&[0x0001], &[0x0100], &[0x0100], &[0x0001]] },
    Row { type_: "string", quantity: 2, value: r#""abcd""#, text: "abcd", words: [&[0x6162, 0x6364], &[0x6261, 0x6463], &[0x6463, 0x6261], &[0x6364, 0x6162]] },
    Row { type_: "string", quantity: 3, value: r#""hi""#, text: "hi", words: [&[0x6869, 0x0000, 0x0000], &[0x6968, 0x0000, 0x0000], &[0x0000, 0x0000, 0x6968], &[0x0000, 0x0000, 0x6869]] },
    Row { type_: "hexString", quantity: 2, value: r#""deadbeef""#, text: "deadbeef", words: [&[0xdead, 0xbeef], &[0xadde, 0xefbe], &[0xefbe, 0xadde], &[0xbeef, 0xdead]] },
    Row { type_: "binaryString", quantity: 1, value: r#""1010010100001111""#, text: "1010010100001111", words: [&[0xa50f], &[0x0fa5], &[0x0fa5], &[0xa50f]] },
    Row { type_: "base64String", quantity: 2, value: r#""AQIDBA==""#, text: "AQIDBA==", words: [&[0x0102, 0x0304], &[0x0201, 0x0403], &[0x0403, 0x0201], &[0x0304, 0x0102]] },
];

/// Each row and order gets 4 registers from here on; writes go 500 higher.
const READ_BASE: u16 = 0;
const WRITE_BASE: u16 = 500;

fn address(row: usize, order: usize) -> u16 {
    ((row * 4 + order) * 4) as u16
}

fn name(table: &str, row: usize, order: usize) -> String {
    format!("{table}-{row}-{}-{}", ROWS[row].type_, ORDERS[order])
}

fn register_property(table: &str, register: &str, row: usize, order: usize, base: u16) -> Value {
    json!({
        "name": name(table, row, order),
        "type": ROWS[row].type_,
        "visitor": {
            "register": register,
            "offset": base + address(row, order),
            "quantity": ROWS[row].quantity,
            "endianness": ORDERS[order],
        },
    })
}

/// Bit properties: a coil, a binary string over 10 coils, a hex string
/// over 16 coils, each also on discrete inputs.
const BIT_ROWS: &[(&str, u16, &str, &[bool])] = &[
    ("boolean", 1, "true", &[true]),
    (
        "binaryString",
        10,
        "1011000011",
        &[
            true, false, true, true, false, false, false, false, true, true,
        ],
    ),
    // 0xa5 then 0x0f, first coil in the lowest bit of each byte.
    (
        "hexString",
        16,
        "a50f",
        &[
            true, false, true, false, false, true, false, true, true, true, true, true, false,
            false, false, false,
        ],
    ),
];

fn bit_address(row: usize) -> u16 {
    (row * 20) as u16
}

fn contents() -> Value {
    let mut holding = serde_json::Map::new();
    let mut coils = serde_json::Map::new();
    for (r, row) in ROWS.iter().enumerate() {
        for (o, words) in row.words.iter().enumerate() {
            for (i, w) in words.iter().enumerate() {
                holding.insert((READ_BASE + address(r, o) + i as u16).to_string(), json!(w));
            }
        }
    }
    for (r, (_, _, _, bits)) in BIT_ROWS.iter().enumerate() {
        for (i, b) in bits.iter().enumerate() {
            coils.insert((bit_address(r) + i as u16).to_string(), json!(b));
        }
    }
    // Input registers and discrete inputs hold the same as their writable twins.
    json!({"1": {"holding": holding, "input": holding, "coils": coils, "discrete": coils}})
}

fn spec(endpoint: &str, properties: Vec<Value>) -> ModbusDeviceSpec {
    ModbusDeviceSpec {
        extension: None,
        parameters: None,
        protocol: ModbusProtocol {
            tcp: Some(ModbusTcp {
                endpoint: endpoint.into(),
                worker_id: 1,
            }),
            rtu: None,
        },
        properties: serde_json::from_value(Value::Array(properties)).expect("valid properties"),
    }
}

fn values(poller: &Poller) -> HashMap<String, String> {
    poller
        .status()
        .properties
        .into_iter()
        .map(|p| (p.name, p.value.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn every_type_and_order_reads_from_holding_and_input_registers_and_coils_and_inputs() {
    let server = ModbusServer::tcp(&[1], contents()).await;
    let mut properties = Vec::new();
    for r in 0..ROWS.len() {
        for o in 0..4 {
            properties.push(register_property(
                "holding",
                "HoldingRegister",
                r,
                o,
                READ_BASE,
            ));
            properties.push(register_property("input", "InputRegister", r, o, READ_BASE));
        }
    }
    for (r, (type_, quantity, _, _)) in BIT_ROWS.iter().enumerate() {
        for (table, register) in [
            ("coil", "CoilRegister"),
            ("discrete", "DiscreteInputRegister"),
        ] {
            properties.push(json!({
                "name": format!("{table}-{type_}"),
                "type": type_,
                "visitor": {"register": register, "offset": bit_address(r), "quantity": quantity},
            }));
        }
    }
    let mut poller = Poller::new(
        &spec(&server.endpoint(), properties),
        ModbusMetrics::default(),
    );
    poller.cycle().await.expect("a clean poll");
    let got = values(&poller);

    let mut wrong = Vec::new();
    for (r, row) in ROWS.iter().enumerate() {
        for o in 0..4 {
            for table in ["holding", "input"] {
                let n = name(table, r, o);
                if got.get(&n).map(String::as_str) != Some(row.text) {
                    wrong.push(format!("{n}: got {:?}, want {:?}", got.get(&n), row.text));
                }
            }
        }
    }
    for (type_, _, text, _) in BIT_ROWS {
        for table in ["coil", "discrete"] {
            let n = format!("{table}-{type_}");
            if got.get(&n).map(String::as_str) != Some(*text) {
                wrong.push(format!("{n}: got {:?}, want {text:?}", got.get(&n)));
            }
        }
    }
    assert!(wrong.is_empty(), "wrong values:\n{}", wrong.join("\n"));
}

#[tokio::test]
async fn every_type_and_order_writes_the_known_words_to_holding_registers_and_coils() {
    let server = ModbusServer::tcp(&[1], json!({})).await;
    let mut properties = Vec::new();
    let mut write = serde_json::Map::new();
    for (r, row) in ROWS.iter().enumerate() {
        for o in 0..4 {
            properties.push(register_property(
                "holding",
                "HoldingRegister",
                r,
                o,
                WRITE_BASE,
            ));
            write.insert(
                name("holding", r, o),
                serde_json::from_str(row.value).unwrap(),
            );
        }
    }
    for (r, (type_, quantity, text, _)) in BIT_ROWS.iter().enumerate() {
        properties.push(json!({
            "name": format!("coil-{type_}"),
            "type": type_,
            "visitor": {"register": "CoilRegister", "offset": WRITE_BASE + bit_address(r), "quantity": quantity},
        }));
        let value = if *type_ == "boolean" {
            json!(true)
        } else {
            json!(text)
        };
        write.insert(format!("coil-{type_}"), value);
    }
    let mut poller = Poller::new(
        &spec(&server.endpoint(), properties),
        ModbusMetrics::default(),
    );
    poller.write(&write).await.expect("every value written");

    let mut client = server.client(1).await;
    let mut wrong = Vec::new();
    for (r, row) in ROWS.iter().enumerate() {
        for (o, words) in row.words.iter().enumerate() {
            let held = holding(&mut client, WRITE_BASE + address(r, o), row.quantity).await;
            if held != *words {
                wrong.push(format!(
                    "{}: wrote {held:04x?}, want {words:04x?}",
                    name("holding", r, o)
                ));
            }
        }
    }
    for (r, (type_, quantity, _, bits)) in BIT_ROWS.iter().enumerate() {
        let held = coils(&mut client, WRITE_BASE + bit_address(r), *quantity).await;
        if held != *bits {
            wrong.push(format!("coil-{type_}: wrote {held:?}, want {bits:?}"));
        }
    }
    assert!(wrong.is_empty(), "wrong words:\n{}", wrong.join("\n"));

    // And they read back as written.
    poller.cycle().await.expect("a clean poll");
    let got = values(&poller);
    for (r, row) in ROWS.iter().enumerate() {
        for o in 0..4 {
            assert_eq!(
                got[&name("holding", r, o)],
                row.text,
                "{}",
                name("holding", r, o)
            );
        }
    }
}

#[tokio::test]
async fn writes_that_do_not_fit_are_refused_whole_with_the_reason() {
    let server = ModbusServer::tcp(&[1], json!({"1": {"holding": {"0": 7}}})).await;
    let properties = vec![
        json!({"name": "small", "type": "int16", "visitor": {"register": "HoldingRegister", "offset": 0}}),
        json!({"name": "label", "type": "string", "visitor": {"register": "HoldingRegister", "offset": 1, "quantity": 2}}),
        json!({"name": "sensor", "type": "int16", "visitor": {"register": "InputRegister", "offset": 0}}),
    ];
    let mut poller = Poller::new(
        &spec(&server.endpoint(), properties),
        ModbusMetrics::default(),
    );
    let write = json!({"small": 40000, "label": "too long for four bytes", "sensor": 1});
    let refused = poller
        .write(write.as_object().unwrap())
        .await
        .expect_err("refused");
    let reasons: HashMap<_, _> = refused
        .iter()
        .map(|r| (r.property.clone().unwrap(), r.reason.clone()))
        .collect();
    assert!(reasons["small"].contains("signed 16-bit"), "{reasons:?}");
    assert!(reasons["label"].contains("at most 4"), "{reasons:?}");
    assert!(
        reasons["sensor"].contains("read-only (an input register)"),
        "{reasons:?}"
    );
    let mut client = server.client(1).await;
    assert_eq!(holding(&mut client, 0, 1).await, [7], "nothing was written");
}

#[tokio::test]
async fn a_device_that_refuses_a_coalesced_span_gets_its_points_read_alone() {
    // Holding registers 10-12 do not exist: a read of 5-15 is refused.
    let server = ModbusServer::tcp(
        &[1],
        json!({"1": {"holding": {"5": 55, "15": 1515}, "holes": {"holding": [[10, 12]]}}}),
    )
    .await;
    let properties = vec![
        json!({"name": "low", "type": "uint16", "visitor": {"register": "HoldingRegister", "offset": 5}}),
        json!({"name": "high", "type": "uint16", "visitor": {"register": "HoldingRegister", "offset": 15}}),
    ];
    let metrics = ModbusMetrics::default();
    let mut poller = Poller::new(&spec(&server.endpoint(), properties), metrics.clone());
    for cycle in 0..2 {
        poller
            .cycle()
            .await
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let got = values(&poller);
        assert_eq!((got["low"].as_str(), got["high"].as_str()), ("55", "1515"));
    }
    // Refused once (the span), then read alone: 1 + 2 + 2 reads.
    let count = |outcome| {
        metrics
            .requests
            .get_or_create(&RequestLabels {
                operation: "read",
                outcome,
            })
            .get()
    };
    assert_eq!((count("ExceptionResponse"), count("ok")), (1, 4));
    // A property on the missing addresses is reported, the others still read.
    let properties = vec![
        json!({"name": "low", "type": "uint16", "visitor": {"register": "HoldingRegister", "offset": 5}}),
        json!({"name": "missing", "type": "uint16", "visitor": {"register": "HoldingRegister", "offset": 11}}),
    ];
    let mut poller = Poller::new(
        &spec(&server.endpoint(), properties),
        ModbusMetrics::default(),
    );
    let failure = poller.cycle().await.expect_err("address 11 does not exist");
    assert_eq!(
        failure.to_string(),
        "the device answered reading holding registers 11 with exception 0x02 illegal data address"
    );
    assert_eq!(values(&poller)["low"], "55");
}
