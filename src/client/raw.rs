//! A frame-level client: connect, handshake, register, then send and receive protocol
//! frames. The chat engine is built on it; relay tests and the load generator use it
//! directly.

use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::resume::SessionNumbers;
use super::{Asked, ClientError};
use crate::proto::{ClientFrame, ErrorReason, NickProblem, ServerFrame};
use crate::secret::Secret;
use crate::transport::{self, SealedReader, SealedWriter};

/// An authenticated connection to a relay.
#[derive(Debug)]
pub struct RawClient {
    pub reader: SealedReader<OwnedReadHalf>,
    pub writer: SealedWriter<OwnedWriteHalf>,
}

impl RawClient {
    /// Connects to `server` ("host:port") and completes the encrypted handshake.
    pub async fn connect(server: &str, access_code: &Secret) -> Result<Self, ClientError> {
        Self::connect_to_one_of(server, access_code).await.map(|(raw, _)| raw)
    }

    /// Connects to the first of `servers` (comma-separated: `client::relays`) that answers,
    /// saying which; the error is the last one's.
    pub async fn connect_to_one_of(
        servers: &str,
        access_code: &Secret,
    ) -> Result<(Self, usize), ClientError> {
        let relays = super::relays::Relays::parse(servers);
        let mut failed = None;
        for (index, server) in relays.addresses().iter().enumerate() {
            let stream = match TcpStream::connect(server.as_str()).await {
                Ok(stream) => stream,
                Err(error) => {
                    failed = Some(ClientError::Unreachable { server: server.clone(), error });
                    continue;
                }
            };
            let (reader, writer) = transport::client_handshake(stream, access_code).await?;
            return Ok((RawClient { reader, writer }, index));
        }
        Err(failed.unwrap_or_else(|| ClientError::Unreachable {
            server: servers.to_owned(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no server given"),
        }))
    }

    /// Connects from a chosen local address (tests use 127.0.0.2, 127.0.0.3, … to be several
    /// hosts on loopback).
    pub async fn connect_from(
        local: std::net::IpAddr,
        server: std::net::SocketAddr,
        access_code: &Secret,
    ) -> Result<Self, ClientError> {
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
        }
        .and_then(|socket| socket.bind((local, 0).into()).map(|()| socket))
        .map_err(|error| ClientError::LocalAddress { local, error })?;
        let stream = socket
            .connect(server)
            .await
            .map_err(|error| ClientError::Unreachable { server: server.to_string(), error })?;
        let (reader, writer) = transport::client_handshake(stream, access_code).await?;
        Ok(RawClient { reader, writer })
    }

    /// Claims a nickname and waits for the answer: the session's numbering, from its
    /// resume token on.
    pub async fn register(&mut self, nick: &str) -> Result<SessionNumbers, ClientError> {
        self.send(&ClientFrame::Register { nick: nick.to_owned() }).await?;
        match self.recv().await? {
            ServerFrame::Registered { token, relay_boot, .. } => {
                Ok(SessionNumbers::registered(token, relay_boot))
            }
            ServerFrame::Error { reason: ErrorReason::NickTaken, .. } => {
                Err(ClientError::NickTaken(nick.to_owned()))
            }
            ServerFrame::Error { reason: ErrorReason::NickNotAllowed(problem), .. } => {
                Err(ClientError::NickInvalid(nick.to_owned(), problem))
            }
            // What a relay said before it named the rule the nickname breaks.
            ServerFrame::Error { reason: ErrorReason::NickInvalid, .. } => {
                let problem = crate::proto::check_nick(nick).err();
                Err(ClientError::NickInvalid(
                    nick.to_owned(),
                    problem.unwrap_or(NickProblem::Length),
                ))
            }
            ServerFrame::Goodbye { reason } => Err(reason.into()),
            _ => Err(ClientError::UnexpectedAnswer(Asked::Register)),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.writer.write_frame(frame).await.map_err(ClientError::Io)
    }

    /// The next frame from the relay; a closed connection is an error.
    pub async fn recv(&mut self) -> Result<ServerFrame, ClientError> {
        match self.reader.read_frame().await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(ClientError::ConnectionClosed),
            Err(error) => Err(ClientError::Transport(error)),
        }
    }
}
