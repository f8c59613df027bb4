//! A property of a ModbusDevice made ready to poll: where its value lives,
//! how it is encoded, whether and when it is read and written.

use devicelink_adaptor_runtime::{
    Property,
    access::{self, ReadMode, WriteMode},
    arithmetic,
    value::{desired, type_name},
};
use devicelink_api::{
    modbus::{ModbusProperty, RegisterKind},
    property::{ArithmeticOperation, Endianness, ValueType},
};
use serde_json::Value;

use crate::{
    codec::{Layout, TextForm},
    plan::{MAX_WRITE_BITS, MAX_WRITE_REGISTERS},
};

/// One property, checked and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub name: String,
    pub type_: ValueType,
    pub table: RegisterKind,
    pub start: u16,
    pub count: u16,
    pub layout: Layout,
    pub endianness: Endianness,
    pub operations: Vec<ArithmeticOperation>,
    pub precision: u32,
    pub read: ReadMode,
    pub write: WriteMode,
    /// The spec's `value`, to be written to the device.
    pub desired: Option<Value>,
}

impl Point {
    /// Resolves a property; the error names the field and says why.
    pub fn new(p: &ModbusProperty) -> Result<Point, String> {
        let visitor = &p.visitor;
        let count = visitor.quantity.unwrap_or(1);
        let start = u16::try_from(visitor.offset).map_err(|_| {
            format!(
                "visitor.offset {} is not an address (0 to 65535)",
                visitor.offset
            )
        })?;
        let limit = if is_bits(visitor.register) { 2000 } else { 125 };
        if !(1..=limit).contains(&count) || visitor.offset + count > 65536 {
            return Err(format!(
                "visitor.quantity {count} must be 1 to {limit} and stay within the 65536 addresses"
            ));
        }
        let layout = layout(p.type_, visitor.register, count as usize)?;
        let writable_table = matches!(
            visitor.register,
            RegisterKind::CoilRegister | RegisterKind::HoldingRegister
        );
        let (read, write) = access::modes(&p.access_modes, p.read_only, writable_table);
        let desired = p.value.as_ref().map(desired);
        if desired.is_some() && write == WriteMode::Never {
            return Err("value is set but the property cannot be written".into());
        }
        // One value is one write request: split in two, a device could act
        // on half of it.
        let write_limit = if is_bits(visitor.register) {
            MAX_WRITE_BITS
        } else {
            MAX_WRITE_REGISTERS
        };
        if write != WriteMode::Never && count > write_limit {
            return Err(format!(
                "visitor.quantity {count} is over what one write request takes ({write_limit}): make the property readOnly: true, or use a smaller quantity"
            ));
        }
        let operations = if visitor.order_of_operations.is_empty() {
            visitor.arithmetic_operations.clone()
        } else {
            visitor.order_of_operations.clone()
        };
        Ok(Point {
            name: p.name.clone(),
            type_: p.type_,
            table: visitor.register,
            start,
            count: count as u16,
            layout,
            endianness: visitor.endianness.unwrap_or_default(),
            operations,
            precision: visitor
                .arithmetic_operation_precision
                .map_or(arithmetic::DEFAULT_PRECISION, |p| p.clamp(0, 24) as u32),
            read,
            write,
            desired,
        })
    }

    /// The property as writes from MQTT see it.
    pub fn as_property(&self) -> Property {
        let accepts = self.layout.accepts();
        Property {
            name: self.name.clone(),
            accepts,
            writes: access::mqtt_writes(self.write, self.desired.is_some()),
        }
    }

    /// The last address this point covers, plus one.
    pub fn end(&self) -> u32 {
        u32::from(self.start) + u32::from(self.count)
    }
}

/// Coils and discrete inputs hold bits; the other tables 16-bit words.
pub fn is_bits(table: RegisterKind) -> bool {
    matches!(
        table,
        RegisterKind::CoilRegister | RegisterKind::DiscreteInputRegister
    )
}

/// How a type sits in `count` coils or registers of `table`.
fn layout(type_: ValueType, table: RegisterKind, count: usize) -> Result<Layout, String> {
    use ValueType::*;
    let needs = |n: usize, layout: Layout| {
        if count == n {
            Ok(layout)
        } else {
            Err(format!(
                "type {} takes {n} register{}; visitor.quantity is {count}",
                type_name(type_),
                if n == 1 { "" } else { "s" }
            ))
        }
    };
    if is_bits(table) {
        return match type_ {
            Boolean => needs(1, Layout::Bool),
            HexString => Ok(Layout::Text(TextForm::Hex)),
            BinaryString => Ok(Layout::Text(TextForm::Binary)),
            _ => Err(format!(
                "type {} cannot live in coils or discrete inputs: use boolean, hexString or binaryString",
                type_name(type_)
            )),
        };
    }
    match type_ {
        Int8 => needs(1, Layout::Signed(1)),
        Uint8 => needs(1, Layout::Unsigned(1)),
        Int16 => needs(1, Layout::Signed(2)),
        Uint16 => needs(1, Layout::Unsigned(2)),
        Boolean => needs(1, Layout::Bool),
        Int32 => needs(2, Layout::Signed(4)),
        Uint32 => needs(2, Layout::Unsigned(4)),
        Float32 => needs(2, Layout::Float(4)),
        Int64 => needs(4, Layout::Signed(8)),
        Uint64 => needs(4, Layout::Unsigned(8)),
        Double | Float64 => needs(4, Layout::Float(8)),
        // One register: a 16-bit value, widened (as early Octopus samples
        // use `float` with Divide for scaled integers); two: 32 bits.
        Int if count == 1 => Ok(Layout::Signed(2)),
        Int => needs(2, Layout::Signed(4)),
        Uint if count == 1 => Ok(Layout::Unsigned(2)),
        Uint => needs(2, Layout::Unsigned(4)),
        Float if count == 1 => Ok(Layout::Signed(2)),
        Float => needs(2, Layout::Float(4)),
        String => Ok(Layout::Text(TextForm::Utf8)),
        HexString => Ok(Layout::Text(TextForm::Hex)),
        BinaryString => Ok(Layout::Text(TextForm::Binary)),
        Base64String => Ok(Layout::Text(TextForm::Base64)),
        ByteString | Datetime => Err(format!(
            "type {} is an OPC-UA type; Modbus registers hold numbers, booleans and strings",
            type_name(type_)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use devicelink_adaptor_runtime::Accepts;
    use devicelink_api::{modbus::ModbusVisitor, property::AccessMode};

    fn property(type_: ValueType, register: RegisterKind, quantity: i32) -> ModbusProperty {
        ModbusProperty {
            name: "p".into(),
            description: None,
            type_,
            visitor: ModbusVisitor {
                register,
                offset: 10,
                quantity: Some(quantity),
                endianness: None,
                order_of_operations: vec![],
                arithmetic_operations: vec![],
                arithmetic_operation_precision: None,
            },
            read_only: None,
            access_modes: vec![],
            value: None,
        }
    }

    #[test]
    fn a_type_that_does_not_fit_its_registers_is_named() {
        let e = Point::new(&property(
            ValueType::Int32,
            RegisterKind::HoldingRegister,
            1,
        ))
        .unwrap_err();
        assert_eq!(e, "type int32 takes 2 registers; visitor.quantity is 1");
        let e = Point::new(&property(ValueType::Float, RegisterKind::CoilRegister, 1)).unwrap_err();
        assert!(e.contains("coils"), "{e}");
    }

    #[test]
    fn input_tables_are_never_written() {
        let p = Point::new(&property(ValueType::Uint16, RegisterKind::InputRegister, 1)).unwrap();
        assert_eq!(p.write, WriteMode::Never);
        assert_eq!(
            p.as_property().writes,
            devicelink_adaptor_runtime::Writes::No
        );
        let p = Point::new(&property(
            ValueType::Uint16,
            RegisterKind::HoldingRegister,
            1,
        ))
        .unwrap();
        assert_eq!(p.write, WriteMode::OnChange);
        assert_eq!(
            p.as_property().accepts,
            Accepts::Integer { min: 0, max: 65535 }
        );
    }

    #[test]
    fn a_writable_value_fits_one_write_request() {
        // 124 registers can be read in one request, not written.
        let hex = |register, quantity| property(ValueType::HexString, register, quantity);
        let e = Point::new(&hex(RegisterKind::HoldingRegister, 124)).unwrap_err();
        assert!(
            e.contains("visitor.quantity 124") && e.contains("(123)"),
            "{e}"
        );
        assert!(Point::new(&hex(RegisterKind::HoldingRegister, 123)).is_ok());
        let e = Point::new(&hex(RegisterKind::CoilRegister, 1969)).unwrap_err();
        assert!(e.contains("(1968)"), "{e}");
        let read_only = ModbusProperty {
            read_only: Some(true),
            ..hex(RegisterKind::HoldingRegister, 125)
        };
        assert!(Point::new(&read_only).is_ok());
    }

    #[test]
    fn access_modes_choose_reads_and_writes() {
        let mut p = property(ValueType::Int16, RegisterKind::HoldingRegister, 1);
        p.access_modes = vec![AccessMode::ReadOnce, AccessMode::WriteMany];
        let point = Point::new(&p).unwrap();
        assert_eq!(
            (point.read, point.write),
            (ReadMode::Once, WriteMode::Every)
        );
        p.access_modes = vec![AccessMode::WriteOnce];
        let point = Point::new(&p).unwrap();
        assert_eq!(
            (point.read, point.write),
            (ReadMode::Never, WriteMode::Once)
        );
        p.access_modes = vec![];
        p.read_only = Some(true);
        assert_eq!(Point::new(&p).unwrap().write, WriteMode::Never);
    }
}
