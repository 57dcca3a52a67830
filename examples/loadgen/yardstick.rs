//! The yardstick: the same fan-out with nothing but TCP. No handshake, no encryption, no
//! protocol: a connection names its room in four bytes, then every length-prefixed frame it
//! sends is copied to the other members of that room. Built like the relay (a queue per
//! connection, writes batched), so the ratio relay/yardstick measures what the relay's
//! protocol and cryptography cost, not a difference in architecture.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::common::source_address;
use crate::traffic::{FrameSink, FrameSource, Received, stamp_of};

/// Frames queued per connection, as the relay's default.
const QUEUE_FRAMES: usize = 1024;
/// Frames gathered into one write, as the relay.
const MAX_FRAMES_PER_WRITE: usize = 64;
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Largest frame accepted.
const MAX_FRAME: usize = 1 << 20;

/// Each room's members: connection id and queue.
type RoomMap = HashMap<u32, Vec<(u64, mpsc::Sender<Bytes>)>>;
type Rooms = Arc<Mutex<RoomMap>>;

/// Accepts until `stopped` fires.
pub async fn serve(listener: TcpListener, stopped: oneshot::Receiver<()>) {
    let rooms: Rooms = Arc::default();
    tokio::pin!(stopped);
    for id in 0u64.. {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut stopped => break,
        };
        if let Ok((stream, _)) = accepted {
            let _ = stream.set_nodelay(true);
            let (reader, writer) = stream.into_split();
            tokio::spawn(connection(Arc::clone(&rooms), id, reader, writer));
        }
    }
}

fn lock(rooms: &Rooms) -> std::sync::MutexGuard<'_, RoomMap> {
    rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn connection(rooms: Rooms, id: u64, mut reader: OwnedReadHalf, mut writer: OwnedWriteHalf) {
    let Ok(room) = reader.read_u32().await else { return };
    let (outbound, mut queued) = mpsc::channel::<Bytes>(QUEUE_FRAMES);
    lock(&rooms).entry(room).or_default().push((id, outbound));
    if writer.write_u8(1).await.is_err() {
        return;
    }
    let writing = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(READ_CHUNK);
        while let Some(frame) = queued.recv().await {
            batch.clear();
            batch.extend_from_slice(&frame);
            for _ in 1..MAX_FRAMES_PER_WRITE {
                let Ok(frame) = queued.try_recv() else { break };
                batch.extend_from_slice(&frame);
            }
            if writer.write_all(&batch).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = BytesMut::with_capacity(READ_CHUNK);
    'reading: loop {
        while buffer.len() >= 4 {
            let length = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
            if length > MAX_FRAME {
                break 'reading;
            }
            if buffer.len() < 4 + length {
                break;
            }
            let frame = buffer.split_to(4 + length).freeze();
            let rooms = lock(&rooms);
            for (member, outbound) in rooms.get(&room).into_iter().flatten() {
                if *member != id {
                    let _ = outbound.try_send(frame.clone());
                }
            }
        }
        buffer.reserve(READ_CHUNK);
        match reader.read_buf(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if let Some(members) = lock(&rooms).get_mut(&room) {
        members.retain(|(member, _)| *member != id);
    }
    writing.abort();
}

/// A yardstick client's sending half.
pub struct Sink {
    writer: OwnedWriteHalf,
    buffer: Vec<u8>,
}

impl FrameSink for Sink {
    fn queue(&mut self, frame: &[u8]) -> io::Result<()> {
        self.buffer.extend_from_slice(frame);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.writer.write_all(&self.buffer).await?;
        self.buffer.clear();
        Ok(())
    }
}

/// A yardstick client's receiving half: reads in bulk, hands out frames one at a time.
pub struct Source {
    reader: OwnedReadHalf,
    buffer: BytesMut,
}

impl FrameSource for Source {
    async fn next(&mut self) -> io::Result<Received> {
        loop {
            if self.buffer.len() >= 4 {
                let prefix = [self.buffer[0], self.buffer[1], self.buffer[2], self.buffer[3]];
                let length = u32::from_be_bytes(prefix) as usize;
                if self.buffer.len() >= 4 + length {
                    let stamp = stamp_of(&self.buffer[4..4 + length]);
                    self.buffer.advance(4 + length);
                    return Ok(stamp.map_or(Received::Other, Received::Delivery));
                }
            }
            self.buffer.reserve(READ_CHUNK);
            if self.reader.read_buf(&mut self.buffer).await? == 0 {
                return Ok(Received::Closed);
            }
        }
    }
}

/// Connects client `index` (from the same loopback address as the relay's client `index`)
/// into `room` and waits until the yardstick has registered it.
pub async fn connect(index: usize, server: SocketAddr, room: u32) -> io::Result<(Sink, Source)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind((source_address(index), 0).into())?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    writer.write_u32(room).await?;
    reader.read_u8().await?;
    Ok((Sink { writer, buffer: Vec::new() }, Source { reader, buffer: BytesMut::new() }))
}

/// A frame as the yardstick carries it: a 4-byte big-endian length, then the bytes.
pub fn frame_of(message: &[u8]) -> Vec<u8> {
    let mut frame = (message.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(message);
    frame
}
