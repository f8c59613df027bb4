//! Types for low-level OPC-UA transport implementations.

mod channel;
mod connect;
mod core;
mod state;
mod stream;
pub(super) mod tcp;

pub use channel::{AsyncSecureChannel, SecureChannelEventLoop};
pub use connect::{Connector, ConnectorBuilder, Transport};
pub use core::{OutgoingMessage, TransportPollResult, TransportState};
pub use state::{RequestRecv, RequestSend, SecureChannelState};
pub use stream::{wait_for_reverse_hello, StreamConnection, StreamConnector, StreamTransport};
pub use tcp::{
    ReverseHelloVerifier, ReverseTcpConnector, TcpConnector, TcpTransport, TransportConfiguration,
};
