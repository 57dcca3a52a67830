//! Opening sealed records, with fixed keys: frames sealed by a real `SealedWriter`, then the
//! stream truncated, a record dropped, two records swapped, one replayed or a bit flipped (or
//! raw bytes instead). Whatever arrives, the reader returns only frames that were sent, in
//! the order they were sent, and then an end or an error: never a panic, never a forgery.
#![no_main]

use arbitrary::Arbitrary;
use chatter::pake::SecretKey;
use chatter::transport::{SealedReader, SealedWriter};
use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Tamper {
    Nothing,
    Truncate(u16),
    DropRecord(u8),
    SwapRecords(u8, u8),
    ReplayRecord(u8),
    FlipBit(u32),
    Raw,
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    frames: Vec<&'a [u8]>,
    /// Whether to seal the record after each frame (otherwise frames share records).
    flush_after: Vec<bool>,
    tamper: Tamper,
    raw: &'a [u8],
}

fn key() -> SecretKey {
    SecretKey::from_bytes([7; 32])
}

/// Splits a stream of records at their 4-byte length prefixes.
fn records(stream: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut rest = stream;
    while let Some((prefix, after)) = rest.split_first_chunk::<4>() {
        let len = u32::from_be_bytes(*prefix) as usize;
        let (body, after) = after.split_at(len.min(after.len()));
        records.push([prefix.as_slice(), body].concat());
        rest = after;
    }
    records
}

fuzz_target!(|input: Input<'_>| {
    let mut writer = SealedWriter::new(Vec::new(), &key());
    for (n, frame) in input.frames.iter().enumerate() {
        writer.queue(frame).expect("small frames queue");
        if input.flush_after.get(n).copied().unwrap_or(false) {
            writer.flush().now_or_never().expect("a Vec never blocks").expect("flushed");
        }
    }
    writer.flush().now_or_never().expect("a Vec never blocks").expect("flushed");
    let sealed = std::mem::take(writer.get_mut());

    let mut records = records(&sealed);
    let n_records = records.len().max(1);
    let stream: Vec<u8> = match input.tamper {
        Tamper::Nothing => sealed.clone(),
        Tamper::Truncate(at) => sealed[..usize::from(at).min(sealed.len())].to_vec(),
        Tamper::DropRecord(at) => {
            if !records.is_empty() {
                records.remove(usize::from(at) % n_records);
            }
            records.concat()
        }
        Tamper::SwapRecords(a, b) => {
            if !records.is_empty() {
                records.swap(usize::from(a) % n_records, usize::from(b) % n_records);
            }
            records.concat()
        }
        Tamper::ReplayRecord(at) => {
            if let Some(record) = records.get(usize::from(at) % n_records).cloned() {
                records.push(record);
            }
            records.concat()
        }
        Tamper::FlipBit(bit) => {
            let mut stream = sealed.clone();
            if !stream.is_empty() {
                let bit = bit as usize % (stream.len() * 8);
                stream[bit / 8] ^= 1 << (bit % 8);
            }
            stream
        }
        Tamper::Raw => input.raw.to_vec(),
    };

    let mut reader = SealedReader::new(stream.as_slice(), &key());
    let mut received: Vec<Vec<u8>> = Vec::new();
    let clean_end = loop {
        match reader.next_frame().now_or_never().expect("a slice never blocks") {
            Ok(Some(frame)) => received.push(frame.to_vec()),
            Ok(None) => break true,
            Err(_) => break false,
        }
    };
    if matches!(input.tamper, Tamper::Raw) {
        // Raw bytes may hold records sealed under the fixed key (the fuzzer copies them from
        // the seeds), so only "no panic" applies.
        return;
    }
    assert!(received.len() <= input.frames.len(), "more frames than were sent");
    for (got, sent) in received.iter().zip(&input.frames) {
        assert_eq!(got.as_slice(), *sent, "a frame arrived altered or out of order");
    }
    if stream == sealed {
        assert!(clean_end, "an untouched stream reads to its end");
        assert_eq!(received.len(), input.frames.len(), "an untouched stream loses nothing");
    } else if received.len() == input.frames.len() {
        // Every frame arrived: the tampering can only have been after the last record
        // (a replay), which must have failed to open.
        assert!(!clean_end, "a replayed record must not open");
    }
});
