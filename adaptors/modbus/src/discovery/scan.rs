//! One scan: every address of the ranges, on every port, probed for every
//! unit id, at the discovery's pace and never beyond its ranges.

use std::net::SocketAddr;

use futures::StreamExt;
use ipnet::IpNet;

use devicelink_adaptor_runtime::Pace;

use super::probe::{self, Find, ProbeSettings};
use crate::metrics::ModbusMetrics;

/// A range of addresses and the ports tried on each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub net: IpNet,
    pub ports: Vec<u16>,
}

/// What to scan and how gently.
#[derive(Clone, Debug)]
pub struct ScanSettings {
    pub ranges: Vec<Range>,
    pub units: Vec<u8>,
    pub requests_per_second: u32,
    pub probe: ProbeSettings,
}

/// Addresses probed at once. A silent address holds its probe for the
/// connect timeout; others go on meanwhile (the pace still bounds the
/// rate of all of them together).
const AT_ONCE: usize = 16;

/// Most socket addresses one scan tries, whatever its ranges say (the API
/// server bounds them already; this keeps a scan finite if it does not).
pub const MOST_ADDRESSES: usize = 1 << 16;

/// What a scan found, and what it cost.
#[derive(Debug, Default)]
pub struct Scanned {
    pub finds: Vec<Find>,
    /// Socket addresses tried.
    pub addresses: usize,
    /// Requests made, connects included.
    pub requests: u64,
}

/// The socket addresses of `ranges`, in order, at most [`MOST_ADDRESSES`].
pub fn addresses(ranges: &[Range]) -> Vec<SocketAddr> {
    ranges
        .iter()
        .flat_map(|r| {
            r.net
                .hosts()
                .flat_map(move |ip| r.ports.iter().map(move |&port| SocketAddr::new(ip, port)))
        })
        .take(MOST_ADDRESSES)
        .collect()
}

/// Runs one scan to its end.
pub async fn scan(settings: &ScanSettings, metrics: &ModbusMetrics) -> Scanned {
    let pace = Pace::new(settings.requests_per_second);
    let all = addresses(&settings.ranges);
    let count = all.len();
    let finds = futures::stream::iter(all)
        .map(|address| {
            probe::probe_address(address, &settings.units, &settings.probe, &pace, metrics)
        })
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut finds: Vec<Find> = finds.into_iter().flatten().collect();
    finds.sort_by_key(|f| (f.address, f.unit));
    Scanned {
        finds,
        addresses: count,
        requests: pace.turns(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(net: &str, ports: &[u16]) -> Range {
        Range {
            net: net.parse().unwrap(),
            ports: ports.to_vec(),
        }
    }

    #[test]
    fn a_range_gives_its_hosts_on_each_port_and_nothing_else() {
        let all = addresses(&[range("127.0.0.0/30", &[502, 5020])]);
        let shown: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.1:502",
                "127.0.0.1:5020",
                "127.0.0.2:502",
                "127.0.0.2:5020"
            ]
        );
        let one = addresses(&[range("10.1.2.3/32", &[502])]);
        assert_eq!(one, ["10.1.2.3:502".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn a_scan_never_tries_more_than_its_bound() {
        let all = addresses(&[range("10.0.0.0/8", &[502])]);
        assert_eq!(all.len(), MOST_ADDRESSES);
    }
}
