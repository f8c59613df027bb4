//! The way to one device: its own TCP connection, or its turn on a shared
//! serial line; every request bounded by the device's timeout.
//!
//! A TCP device has a connection of its own, so one that hangs delays no
//! other. Devices on one serial port share one opened port and take turns
//! on it (a whole poll at a time, first come first served). A request that
//! times out or breaks the transport drops the connection (a late answer
//! would otherwise be taken for the next request's); the poller connects
//! again with backoff. An exception response leaves the connection up.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, LazyLock, Mutex, Weak},
    time::Duration,
};

use devicelink_adaptor_runtime::Reason;
use devicelink_api::modbus::{ModbusProtocol, Parity, RegisterKind};
use thiserror::Error;
use tokio::{net::TcpStream, sync::OwnedMutexGuard, time::Instant};
use tokio_modbus::{
    ExceptionCode, Slave,
    client::{Context, Reader, Writer},
    prelude::{ReadCode, ReadDeviceIdentificationResponse, SlaveContext},
};

use crate::metrics::{ModbusMetrics, RequestLabels};

/// Why talking to a device failed; the Display text is what the
/// DeviceConnected condition shows.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum Failure {
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("no answer within {timeout:?} to {request}")]
    Timeout { timeout: Duration, request: String },
    #[error("the device answered {request} with exception {}", exception_name(*code))]
    Exception { request: String, code: u8 },
    #[error("{request} failed: {reason}")]
    Transport { request: String, reason: String },
    /// The device closed the connection (many close one left idle).
    #[error("{request} failed: the device closed the connection")]
    Closed { request: String },
    #[error("{0}")]
    Settings(String),
}

impl Failure {
    /// The DeviceConnected reason.
    pub fn reason(&self) -> Reason {
        match self {
            Failure::Connect { .. } => Reason::Unreachable,
            Failure::Timeout { .. } => Reason::Timeout,
            Failure::Exception { .. } => Reason::ExceptionResponse,
            Failure::Transport { .. } | Failure::Closed { .. } => Reason::ConnectionLost,
            Failure::Settings(_) => Reason::InvalidSettings,
        }
    }

    /// Whether the device refused this one request (the connection is fine).
    pub fn is_exception(&self) -> bool {
        matches!(self, Failure::Exception { .. })
    }

    /// Whether the device closed the connection under the request.
    pub fn is_closed(&self) -> bool {
        matches!(self, Failure::Closed { .. })
    }

    /// Whether the device said the addresses do not exist.
    pub fn is_illegal_address(&self) -> bool {
        matches!(self, Failure::Exception { code: 0x02, .. })
    }
}

/// Where a device is and how to reach it.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Tcp { address: String, unit: u8 },
    Rtu { line: SerialSettings, unit: u8 },
}

/// A serial port and its framing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialSettings {
    pub path: String,
    pub baud_rate: u32,
    pub data_bits: u8,
    pub parity: Parity,
    pub stop_bits: u8,
}

impl fmt::Display for SerialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parity = match self.parity {
            Parity::N => 'N',
            Parity::E => 'E',
            Parity::O => 'O',
        };
        write!(
            f,
            "{} at {} {}{}{}",
            self.path, self.baud_rate, self.data_bits, parity, self.stop_bits
        )
    }
}

impl Endpoint {
    pub fn new(protocol: &ModbusProtocol) -> Result<Endpoint, Failure> {
        let unit = |id: i32| {
            u8::try_from(id)
                .ok()
                .filter(|id| (1..=247).contains(id))
                .ok_or_else(|| Failure::Settings(format!("workerID {id} is not 1 to 247")))
        };
        match (&protocol.tcp, &protocol.rtu) {
            (Some(tcp), None) => Ok(Endpoint::Tcp {
                address: tcp.endpoint.clone(),
                unit: unit(tcp.worker_id)?,
            }),
            (None, Some(rtu)) => Ok(Endpoint::Rtu {
                line: SerialSettings {
                    path: rtu.endpoint.clone(),
                    baud_rate: rtu.baud_rate.unwrap_or(19200).clamp(50, 4_000_000) as u32,
                    data_bits: rtu.data_bits.unwrap_or(8).clamp(5, 8) as u8,
                    parity: rtu.parity.unwrap_or(Parity::E),
                    stop_bits: rtu.stop_bits.unwrap_or(1).clamp(1, 2) as u8,
                },
                unit: unit(rtu.worker_id)?,
            }),
            _ => Err(Failure::Settings(
                "protocol: set exactly one of tcp or rtu".into(),
            )),
        }
    }
}

/// The connection of one device; connects on first use.
pub struct Connection {
    endpoint: Endpoint,
    timeout: Duration,
    metrics: ModbusMetrics,
    /// TCP: the device's own connection.
    tcp: Option<Context>,
    /// RTU: the shared line, held for as long as the device exists.
    line: Option<Arc<SerialLine>>,
}

impl Connection {
    pub fn new(
        endpoint: Endpoint,
        timeout: Duration,
        metrics: ModbusMetrics,
    ) -> Result<Connection, Failure> {
        let line = match &endpoint {
            Endpoint::Rtu { line, .. } => Some(SerialLine::join(line)?),
            Endpoint::Tcp { .. } => None,
        };
        Ok(Connection {
            endpoint,
            timeout,
            metrics,
            tcp: None,
            line,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Whether a TCP connection is open from an earlier session (the device
    /// may have closed it since; serial lines do not close).
    pub fn is_open(&self) -> bool {
        matches!(self.endpoint, Endpoint::Tcp { .. }) && self.tcp.is_some()
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Addresses another unit on the same connection or line (discovery
    /// asks every unit id of an address on one connection).
    pub fn set_unit(&mut self, to: u8) {
        match &mut self.endpoint {
            Endpoint::Tcp { unit, .. } | Endpoint::Rtu { unit, .. } => *unit = to,
        }
        if let Some(ctx) = self.tcp.as_mut() {
            ctx.set_slave(Slave(to));
        }
    }

    /// Connects if needed and returns a session for some requests; on a
    /// serial line this waits for the device's turn.
    pub async fn session(&mut self) -> Result<Session<'_>, Failure> {
        let timeout = self.timeout;
        match &self.endpoint {
            Endpoint::Tcp { address, unit } => {
                if self.tcp.is_none() {
                    let stream =
                        tokio::time::timeout(timeout, TcpStream::connect(address.as_str()))
                            .await
                            .map_err(|_| Failure::Connect {
                                endpoint: address.clone(),
                                reason: format!("no connection within {timeout:?}"),
                            })?
                            .map_err(|e| Failure::Connect {
                                endpoint: address.clone(),
                                reason: e.to_string(),
                            })?;
                    let _ = stream.set_nodelay(true);
                    self.tcp = Some(tokio_modbus::client::tcp::attach_slave(
                        stream,
                        Slave(*unit),
                    ));
                }
                Ok(Session {
                    slot: Slot::Tcp(&mut self.tcp),
                    timeout,
                    metrics: &self.metrics,
                })
            }
            Endpoint::Rtu {
                line: settings,
                unit,
            } => {
                let line = self
                    .line
                    .as_ref()
                    .expect("an RTU connection holds its line");
                let mut port = line.port.clone().lock_owned().await;
                if port.is_none() {
                    *port = Some(open_serial(settings)?);
                }
                port.as_mut().expect("just opened").set_slave(Slave(*unit));
                Ok(Session {
                    slot: Slot::Rtu(port),
                    timeout,
                    metrics: &self.metrics,
                })
            }
        }
    }
}

/// Requests to one device, on its connection or its turn of the line.
pub struct Session<'a> {
    slot: Slot<'a>,
    timeout: Duration,
    metrics: &'a ModbusMetrics,
}

enum Slot<'a> {
    Tcp(&'a mut Option<Context>),
    Rtu(OwnedMutexGuard<Option<Context>>),
}

impl Slot<'_> {
    fn get(&mut self) -> &mut Option<Context> {
        match self {
            Slot::Tcp(c) => c,
            Slot::Rtu(g) => g,
        }
    }
}

/// What a read returns.
pub enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

impl Session<'_> {
    pub async fn read(
        &mut self,
        table: RegisterKind,
        start: u16,
        count: u16,
    ) -> Result<Data, Failure> {
        let request = describe("reading", table, start, count);
        let timeout = self.timeout;
        let started = Instant::now();
        let Some(ctx) = self.slot.get().as_mut() else {
            return Err(lost(request));
        };
        let answer = match table {
            RegisterKind::CoilRegister => bounded(timeout, ctx.read_coils(start, count))
                .await
                .map(|r| r.map(|r| r.map(Data::Bits))),
            RegisterKind::DiscreteInputRegister => {
                bounded(timeout, ctx.read_discrete_inputs(start, count))
                    .await
                    .map(|r| r.map(|r| r.map(Data::Bits)))
            }
            RegisterKind::InputRegister => bounded(timeout, ctx.read_input_registers(start, count))
                .await
                .map(|r| r.map(|r| r.map(Data::Words))),
            RegisterKind::HoldingRegister => {
                bounded(timeout, ctx.read_holding_registers(start, count))
                    .await
                    .map(|r| r.map(|r| r.map(Data::Words)))
            }
        };
        let data = self.settle(answer, request.clone(), "read", started)?;
        let got = match &data {
            Data::Bits(b) => b.len(),
            Data::Words(w) => w.len(),
        };
        if got < usize::from(count) {
            return Err(Failure::Transport {
                request,
                reason: format!("the device returned {got} values, not {count}"),
            });
        }
        Ok(data)
    }

    pub async fn write_words(&mut self, start: u16, words: &[u16]) -> Result<(), Failure> {
        let request = describe(
            "writing",
            RegisterKind::HoldingRegister,
            start,
            words.len() as u16,
        );
        let timeout = self.timeout;
        let started = Instant::now();
        let Some(ctx) = self.slot.get().as_mut() else {
            return Err(lost(request));
        };
        let answer = if let [word] = words {
            bounded(timeout, ctx.write_single_register(start, *word)).await
        } else {
            bounded(timeout, ctx.write_multiple_registers(start, words)).await
        };
        self.settle(answer, request, "write", started)
    }

    pub async fn write_bits(&mut self, start: u16, bits: &[bool]) -> Result<(), Failure> {
        let request = describe(
            "writing",
            RegisterKind::CoilRegister,
            start,
            bits.len() as u16,
        );
        let timeout = self.timeout;
        let started = Instant::now();
        let Some(ctx) = self.slot.get().as_mut() else {
            return Err(lost(request));
        };
        let answer = if let [bit] = bits {
            bounded(timeout, ctx.write_single_coil(start, *bit)).await
        } else {
            bounded(timeout, ctx.write_multiple_coils(start, bits)).await
        };
        self.settle(answer, request, "write", started)
    }

    /// Read Device Identification (43/14): one page of a stream of
    /// objects from `first`.
    pub async fn identify(
        &mut self,
        stream: ReadCode,
        first: u8,
    ) -> Result<ReadDeviceIdentificationResponse, Failure> {
        let request = format!("reading the device identification from object {first:#04x}");
        let timeout = self.timeout;
        let started = Instant::now();
        let Some(ctx) = self.slot.get().as_mut() else {
            return Err(lost(request));
        };
        let answer = bounded(timeout, ctx.read_device_identification(stream, first)).await;
        self.settle(answer, request, "identify", started)
    }

    /// Turns an answer into a result, counted; a timeout or a broken
    /// transport drops the connection.
    fn settle<T>(
        &mut self,
        answer: Answer<T>,
        request: String,
        operation: &'static str,
        started: Instant,
    ) -> Result<T, Failure> {
        self.metrics
            .request_duration
            .observe(started.elapsed().as_secs_f64());
        let count = |outcome: &'static str| {
            self.metrics
                .requests
                .get_or_create(&RequestLabels { operation, outcome })
                .inc();
        };
        let failure = match answer {
            Ok(Ok(Ok(value))) => {
                count("ok");
                return Ok(value);
            }
            Ok(Ok(Err(code))) => {
                let failure = Failure::Exception {
                    request,
                    code: code.into(),
                };
                count(failure.reason().as_str());
                return Err(failure);
            }
            Ok(Err(tokio_modbus::Error::Transport(e))) if closed_by_peer(e.kind()) => {
                Failure::Closed { request }
            }
            Ok(Err(e)) => Failure::Transport {
                request,
                reason: e.to_string(),
            },
            Err(timeout) => Failure::Timeout { timeout, request },
        };
        count(failure.reason().as_str());
        *self.slot.get() = None;
        Err(failure)
    }
}

type Answer<T> = Result<tokio_modbus::Result<T>, Duration>;

async fn bounded<T>(
    timeout: Duration,
    request: impl Future<Output = tokio_modbus::Result<T>>,
) -> Answer<T> {
    tokio::time::timeout(timeout, request)
        .await
        .map_err(|_| timeout)
}

/// The ways a socket says the other end closed it.
fn closed_by_peer(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

fn lost(request: String) -> Failure {
    Failure::Transport {
        request,
        reason: "the connection was closed".into(),
    }
}

/// "reading holding registers 100-101", as conditions and logs say it.
pub fn describe(verb: &str, table: RegisterKind, start: u16, count: u16) -> String {
    let what = match table {
        RegisterKind::CoilRegister => "coils",
        RegisterKind::DiscreteInputRegister => "discrete inputs",
        RegisterKind::InputRegister => "input registers",
        RegisterKind::HoldingRegister => "holding registers",
    };
    let last = u32::from(start) + u32::from(count.max(1)) - 1;
    if count <= 1 {
        format!("{verb} {what} {start}")
    } else {
        format!("{verb} {what} {start}-{last}")
    }
}

/// "0x02 illegal data address".
fn exception_name(code: u8) -> String {
    let name = match ExceptionCode::new(code) {
        ExceptionCode::IllegalFunction => "illegal function",
        ExceptionCode::IllegalDataAddress => "illegal data address",
        ExceptionCode::IllegalDataValue => "illegal data value",
        ExceptionCode::ServerDeviceFailure => "server device failure",
        ExceptionCode::Acknowledge => "acknowledge",
        ExceptionCode::ServerDeviceBusy => "server device busy",
        ExceptionCode::MemoryParityError => "memory parity error",
        ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
        ExceptionCode::GatewayTargetDevice => "gateway target device failed to respond",
        ExceptionCode::Custom(_) => "unknown exception",
    };
    format!("0x{code:02x} {name}")
}

/// A serial port shared by the devices on it.
pub struct SerialLine {
    settings: SerialSettings,
    port: Arc<tokio::sync::Mutex<Option<Context>>>,
}

/// Open lines by path; an entry lives as long as a device uses it.
static LINES: LazyLock<Mutex<HashMap<String, Weak<SerialLine>>>> = LazyLock::new(Default::default);

impl SerialLine {
    /// The line at `settings.path`, shared with the other devices on it;
    /// they must agree on its framing.
    fn join(settings: &SerialSettings) -> Result<Arc<SerialLine>, Failure> {
        let mut lines = LINES.lock().unwrap();
        lines.retain(|_, line| line.strong_count() > 0);
        if let Some(line) = lines.get(&settings.path).and_then(Weak::upgrade) {
            if line.settings != *settings {
                return Err(Failure::Settings(format!(
                    "serial line {} is in use by other devices at {}; devices on one line must use the same baudRate, dataBits, parity and stopBits",
                    settings, line.settings
                )));
            }
            return Ok(line);
        }
        let line = Arc::new(SerialLine {
            settings: settings.clone(),
            port: Default::default(),
        });
        lines.insert(settings.path.clone(), Arc::downgrade(&line));
        Ok(line)
    }
}

fn open_serial(settings: &SerialSettings) -> Result<Context, Failure> {
    use tokio_serial::SerialPortBuilderExt;
    let port = tokio_serial::new(&settings.path, settings.baud_rate)
        .data_bits(match settings.data_bits {
            5 => tokio_serial::DataBits::Five,
            6 => tokio_serial::DataBits::Six,
            7 => tokio_serial::DataBits::Seven,
            _ => tokio_serial::DataBits::Eight,
        })
        .parity(match settings.parity {
            Parity::N => tokio_serial::Parity::None,
            Parity::E => tokio_serial::Parity::Even,
            Parity::O => tokio_serial::Parity::Odd,
        })
        .stop_bits(if settings.stop_bits == 2 {
            tokio_serial::StopBits::Two
        } else {
            tokio_serial::StopBits::One
        })
        .open_native_async()
        .map_err(|e| Failure::Connect {
            endpoint: settings.to_string(),
            reason: e.to_string(),
        })?;
    Ok(tokio_modbus::client::rtu::attach(port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(path: &str, baud_rate: u32) -> SerialSettings {
        SerialSettings {
            path: path.into(),
            baud_rate,
            data_bits: 8,
            parity: Parity::E,
            stop_bits: 1,
        }
    }

    #[test]
    fn devices_on_one_port_share_the_line_and_its_framing() {
        let a = SerialLine::join(&line("/dev/test-shared", 19200)).unwrap();
        let b = SerialLine::join(&line("/dev/test-shared", 19200)).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let e = SerialLine::join(&line("/dev/test-shared", 9600))
            .err()
            .unwrap();
        assert!(e.to_string().contains("at 19200 8E1"), "{e}");
        drop((a, b));
        // Once no device uses it, the line may be opened with new framing.
        assert!(SerialLine::join(&line("/dev/test-shared", 9600)).is_ok());
    }

    #[test]
    fn requests_are_described_by_table_and_addresses() {
        assert_eq!(
            describe("reading", RegisterKind::HoldingRegister, 100, 2),
            "reading holding registers 100-101"
        );
        assert_eq!(
            describe("writing", RegisterKind::CoilRegister, 7, 1),
            "writing coils 7"
        );
        assert_eq!(exception_name(0x02), "0x02 illegal data address");
    }
}
