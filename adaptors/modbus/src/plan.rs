//! Coalesced reads: the fewest requests that read a set of points.
//!
//! Points of one data table whose addresses are contiguous, overlap, or lie
//! within a small gap of each other are read in one request, up to the
//! protocol's limits (125 registers or 2000 bits per request). Reading a few
//! unused addresses costs less than a round trip, above all on a serial
//! line; a device that refuses the gap (IllegalDataAddress) gets its points
//! read one by one instead (see `Point` solo marks in the poller).

use devicelink_api::modbus::RegisterKind;

use crate::point::{Point, is_bits};

/// Most registers one read may return (function codes 3 and 4).
pub const MAX_REGISTERS: u32 = 125;
/// Most bits one read may return (function codes 1 and 2).
pub const MAX_BITS: u32 = 2000;
/// Most registers one write may carry (function code 16).
pub const MAX_WRITE_REGISTERS: i32 = 123;
/// Most coils one write may carry (function code 15).
pub const MAX_WRITE_BITS: i32 = 1968;
/// Unused registers a read may span to join two points.
pub const REGISTER_GAP: u32 = 16;
/// Unused bits a read may span to join two points.
pub const BIT_GAP: u32 = 256;

/// One read request and the points it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub table: RegisterKind,
    pub start: u16,
    pub count: u16,
    /// Indexes of the points served, into the slice planned.
    pub points: Vec<usize>,
}

impl Read {
    /// Where point `p` starts within this read's data.
    pub fn offset_of(&self, p: &Point) -> usize {
        usize::from(p.start - self.start)
    }
}

/// Plans the reads of the points `wanted` (indexes into `points`); points
/// in `solo` are read by requests of their own.
pub fn plan(points: &[Point], wanted: &[usize], solo: &[bool]) -> Vec<Read> {
    let mut order: Vec<usize> = wanted.to_vec();
    order.sort_by_key(|&i| {
        (
            table_rank(points[i].table),
            points[i].start,
            points[i].count,
        )
    });
    let mut reads: Vec<Read> = Vec::new();
    // The read still open for joining, as (index into reads, its end).
    let mut open: Option<(usize, u32)> = None;
    for i in order {
        let p = &points[i];
        let (limit, gap) = if is_bits(p.table) {
            (MAX_BITS, BIT_GAP)
        } else {
            (MAX_REGISTERS, REGISTER_GAP)
        };
        let alone = solo.get(i).copied().unwrap_or(false);
        if let Some((r, end)) = open.filter(|_| !alone) {
            let read = &mut reads[r];
            let new_end = end.max(p.end());
            let joins = read.table == p.table
                && u32::from(p.start) <= end + gap
                && new_end - u32::from(read.start) <= limit;
            if joins {
                read.count = (new_end - u32::from(read.start)) as u16;
                read.points.push(i);
                open = Some((r, new_end));
                continue;
            }
        }
        reads.push(Read {
            table: p.table,
            start: p.start,
            count: p.count,
            points: vec![i],
        });
        open = (!alone).then_some((reads.len() - 1, p.end()));
    }
    reads
}

fn table_rank(table: RegisterKind) -> u8 {
    match table {
        RegisterKind::CoilRegister => 0,
        RegisterKind::DiscreteInputRegister => 1,
        RegisterKind::InputRegister => 2,
        RegisterKind::HoldingRegister => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Layout;
    use devicelink_adaptor_runtime::access::{ReadMode, WriteMode};
    use devicelink_api::property::{Endianness, ValueType};
    use proptest::prelude::*;

    fn point(table: RegisterKind, start: u16, count: u16) -> Point {
        Point {
            name: format!("{table:?}-{start}"),
            type_: ValueType::HexString,
            table,
            start,
            count,
            layout: Layout::Unsigned(2),
            endianness: Endianness::BigEndian,
            operations: vec![],
            precision: 2,
            read: ReadMode::Every,
            write: WriteMode::Never,
            desired: None,
        }
    }

    fn all(points: &[Point]) -> Vec<usize> {
        (0..points.len()).collect()
    }

    #[test]
    fn neighbours_share_a_request_and_tables_do_not() {
        use RegisterKind::*;
        let points = vec![
            point(HoldingRegister, 0, 2),
            point(HoldingRegister, 2, 1),
            point(HoldingRegister, 10, 4), // within the gap
            point(InputRegister, 0, 1),
            point(CoilRegister, 5, 1),
            point(CoilRegister, 0, 1),
        ];
        let reads = plan(&points, &all(&points), &[]);
        let shape: Vec<_> = reads.iter().map(|r| (r.table, r.start, r.count)).collect();
        assert_eq!(
            shape,
            [
                (CoilRegister, 0, 6),
                (InputRegister, 0, 1),
                (HoldingRegister, 0, 14)
            ]
        );
    }

    #[test]
    fn far_apart_or_past_the_limit_starts_a_new_request() {
        use RegisterKind::HoldingRegister as H;
        let points = vec![point(H, 0, 1), point(H, 100, 1), point(H, 110, 10)];
        let reads = plan(&points, &all(&points), &[]);
        let shape: Vec<_> = reads.iter().map(|r| (r.start, r.count)).collect();
        assert_eq!(shape, [(0, 1), (100, 20)]);
        let points = vec![point(H, 0, 100), point(H, 110, 20)];
        assert_eq!(
            plan(&points, &all(&points), &[]).len(),
            2,
            "130 registers is over 125"
        );
    }

    #[test]
    fn solo_points_get_their_own_request() {
        use RegisterKind::HoldingRegister as H;
        let points = vec![point(H, 0, 1), point(H, 1, 1), point(H, 2, 1)];
        let reads = plan(&points, &all(&points), &[false, true, false]);
        assert_eq!(reads.len(), 3);
    }

    proptest! {
        /// Every wanted point is served by exactly one read that covers it
        /// within the protocol's limits.
        #[test]
        fn every_point_is_covered_within_the_limits(
            raw in prop::collection::vec((0u8..4, 0u16..3000, 1u16..125), 0..60),
            solo in prop::collection::vec(any::<bool>(), 60),
        ) {
            let tables = [RegisterKind::CoilRegister, RegisterKind::DiscreteInputRegister, RegisterKind::InputRegister, RegisterKind::HoldingRegister];
            let points: Vec<Point> = raw.iter().map(|&(t, s, c)| point(tables[t as usize], s, c)).collect();
            let reads = plan(&points, &all(&points), &solo);
            let mut served = vec![0; points.len()];
            for r in &reads {
                let limit = if is_bits(r.table) { MAX_BITS } else { MAX_REGISTERS };
                prop_assert!(u32::from(r.count) <= limit);
                for &i in &r.points {
                    served[i] += 1;
                    let p = &points[i];
                    prop_assert_eq!(p.table, r.table);
                    prop_assert!(p.start >= r.start && p.end() <= u32::from(r.start) + u32::from(r.count));
                }
            }
            prop_assert!(served.iter().all(|&n| n == 1));
        }
    }
}
