//! The arithmetic a property applies to the value read (`orderOfOperations`
//! / `arithmeticOperations`), e.g. Kelvin tenths to degrees Celsius.

use devicelink_api::property::{ArithmeticOperation, ArithmeticOperationType};

/// Decimal places kept when a property does not say.
pub const DEFAULT_PRECISION: u32 = 2;

/// Applies `operations` in order to `value`, then rounds to `precision`
/// decimal places. Operands are checked by the API server (decimal, no
/// division by zero); one that still does not parse is an error naming it.
pub fn apply(
    value: f64,
    operations: &[ArithmeticOperation],
    precision: u32,
) -> Result<f64, String> {
    let mut result = value;
    for op in operations {
        let operand: f64 = op
            .value
            .trim()
            .parse()
            .map_err(|_| format!("operand {:?} of {:?} is not a number", op.value, op.type_))?;
        result = match op.type_ {
            ArithmeticOperationType::Add => result + operand,
            ArithmeticOperationType::Subtract => result - operand,
            ArithmeticOperationType::Multiply => result * operand,
            ArithmeticOperationType::Divide if operand == 0.0 => {
                return Err("Divide by 0".into());
            }
            ArithmeticOperationType::Divide => result / operand,
        };
    }
    let scale = 10f64.powi(precision.min(24) as i32);
    let rounded = (result * scale).round() / scale;
    // Very large values lose nothing to rounding; keep them as they are.
    Ok(if rounded.is_finite() { rounded } else { result })
}

/// The value a property shows after its arithmetic: none without
/// operations or a number; a failure is logged, naming the property.
pub fn operated(
    property: &str,
    number: Option<f64>,
    operations: &[ArithmeticOperation],
    precision: u32,
) -> Option<String> {
    if operations.is_empty() {
        return None;
    }
    number.and_then(|n| match apply(n, operations, precision) {
        Ok(v) => Some(render(v)),
        Err(e) => {
            tracing::warn!(property, error = %e, "arithmetic not applied");
            None
        }
    })
}

/// A number as the status shows it: no trailing zeros, no exponent for
/// everyday magnitudes (`23.5`, `-4`).
pub fn render(value: f64) -> String {
    if value == 0.0 {
        return "0".into(); // not "-0"
    }
    value.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(type_: ArithmeticOperationType, value: &str) -> ArithmeticOperation {
        ArithmeticOperation {
            type_,
            value: value.into(),
        }
    }

    #[test]
    fn kelvin_tenths_to_celsius() {
        let ops = [
            op(ArithmeticOperationType::Divide, "10"),
            op(ArithmeticOperationType::Subtract, "273.15"),
        ];
        assert_eq!(apply(2965.0, &ops, 2).unwrap(), 23.35);
        assert_eq!(render(apply(2965.0, &ops, 2).unwrap()), "23.35");
    }

    #[test]
    fn in_the_order_given() {
        let add_then_multiply = [
            op(ArithmeticOperationType::Add, "1"),
            op(ArithmeticOperationType::Multiply, "3"),
        ];
        assert_eq!(apply(1.0, &add_then_multiply, 2).unwrap(), 6.0);
    }

    #[test]
    fn rounds_to_the_precision() {
        let third = [op(ArithmeticOperationType::Divide, "3")];
        assert_eq!(apply(1.0, &third, 0).unwrap(), 0.0);
        assert_eq!(apply(1.0, &third, 4).unwrap(), 0.3333);
        assert_eq!(render(apply(-0.001, &[], 2).unwrap()), "0");
    }

    #[test]
    fn a_bad_operand_is_named() {
        let e = apply(1.0, &[op(ArithmeticOperationType::Add, "x")], 2).unwrap_err();
        assert!(e.contains("\"x\""), "{e}");
        assert!(apply(1.0, &[op(ArithmeticOperationType::Divide, "0.0")], 2).is_err());
    }
}
