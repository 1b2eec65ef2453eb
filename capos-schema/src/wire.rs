//! Params and results messages as bytes: the standard Cap'n Proto stream
//! framing (segment table, then segments), exactly as they sit in user memory
//! next to a ring entry.
//!
//! Decoding is for untrusted input: the message is copied into word-aligned
//! memory (a ring buffer may hold it at any offset), its size is bounded before
//! anything is allocated, every byte must belong to the message, and readers
//! enforce [`TRAVERSAL_LIMIT_WORDS`] and [`NESTING_LIMIT`].

use alloc::vec::Vec;
use core::ops::Deref;

use capnp::message::{self, ReaderOptions};
use capnp::serialize::BufferSegments;
use capnp::traits::Owned;
use capnp::Word;

use crate::{CapException, SchemaStruct};

/// Most words a reader may traverse in one params or results message (512 KiB).
pub const TRAVERSAL_LIMIT_WORDS: usize = 64 * 1024;

/// Deepest pointer nesting a reader follows in one message.
pub const NESTING_LIMIT: i32 = 64;

/// Most segments a message may have (the limit `capnp` itself enforces).
const MAX_SEGMENTS: usize = 512;

/// Largest encoded message accepted: the biggest segment table plus
/// [`TRAVERSAL_LIMIT_WORDS`] words of segments.
pub const MAX_MESSAGE_BYTES: usize = segment_table_bytes(MAX_SEGMENTS) + TRAVERSAL_LIMIT_WORDS * 8;

/// Bytes taken by the segment table of a message with `segments` segments:
/// a 4-byte count, 4 bytes per segment, padded to a word.
const fn segment_table_bytes(segments: usize) -> usize {
    (segments / 2 + 1) * 8
}

/// The reader options every capOS message is decoded with.
pub fn reader_options() -> ReaderOptions {
    let mut options = ReaderOptions::new();
    options.traversal_limit_in_words(Some(TRAVERSAL_LIMIT_WORDS)).nesting_limit(NESTING_LIMIT);
    options
}

/// A decoded message, owning a word-aligned copy of its bytes.
pub type MessageReader = message::Reader<BufferSegments<AlignedBytes>>;

/// Bytes copied into word-aligned memory.
#[derive(Debug)]
pub struct AlignedBytes {
    words: Vec<Word>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into fresh word-aligned memory.
    pub fn copy_from(bytes: &[u8]) -> Self {
        let mut words = Word::allocate_zeroed_vec(bytes.len().div_ceil(8));
        Word::words_to_bytes_mut(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Self { words, len: bytes.len() }
    }
}

impl Deref for AlignedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &Word::words_to_bytes(&self.words)[..self.len]
    }
}

/// Decodes one message that must fill `bytes` exactly.
///
/// Fails, never panics, on anything that is not a well-framed message within
/// the limits above. Fields are checked lazily, as they are read.
pub fn decode(bytes: &[u8]) -> capnp::Result<MessageReader> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(capnp::Error::failed(alloc::format!(
            "message of {} bytes is larger than the limit of {MAX_MESSAGE_BYTES} bytes",
            bytes.len()
        )));
    }
    let segments = BufferSegments::new(AlignedBytes::copy_from(bytes), reader_options())?;
    let used = segment_table_bytes(message::ReaderSegments::len(&segments))
        + (0..message::ReaderSegments::len(&segments))
            .filter_map(|id| u32::try_from(id).ok())
            .filter_map(|id| message::ReaderSegments::get_segment(&segments, id))
            .map(<[u8]>::len)
            .sum::<usize>();
    if used != bytes.len() {
        return Err(capnp::Error::failed(alloc::format!(
            "message is {used} bytes long but {} bytes were given",
            bytes.len()
        )));
    }
    Ok(message::Reader::new(segments, reader_options()))
}

/// Words in the first segment of a message being built: most capOS messages
/// are small, and the first segment is zeroed on allocation (capnp's default
/// of 1024 words would cost 8 KiB of zeroing per message). Larger messages
/// grow by further segments.
pub const FIRST_SEGMENT_WORDS: u32 = 64;

/// A message builder sized for typical capOS messages.
pub fn builder() -> message::Builder<message::HeapAllocator> {
    message::Builder::new(message::HeapAllocator::new().first_segment_words(FIRST_SEGMENT_WORDS))
}

/// Builds a message whose root is a `T` filled in by `build`, and encodes it.
pub fn encode<T: Owned>(
    build: impl for<'a> FnOnce(T::Builder<'a>) -> capnp::Result<()>,
) -> capnp::Result<Vec<u8>> {
    let mut message = builder();
    build(message.init_root::<T::Builder<'_>>())?;
    Ok(capnp::serialize::write_message_to_words(&message))
}

/// Encodes an application error as a `CapException` message: what a server
/// side puts in the results area of a call it completes with an application
/// error status.
pub fn encode_exception(exception: &CapException) -> Vec<u8> {
    // Only building a message with a text field: nothing here can fail.
    exception.to_message().unwrap_or_default()
}

/// Decodes a `CapException` message written by [`encode_exception`].
pub fn decode_exception(bytes: &[u8]) -> capnp::Result<CapException> {
    CapException::from_message(bytes)
}

/// Converts a slice length to a Cap'n Proto list length.
pub fn list_len(len: usize) -> capnp::Result<u32> {
    u32::try_from(len).map_err(|_| {
        capnp::Error::failed(alloc::format!(
            "a list of {len} elements is longer than a Cap'n Proto list can be"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capos_capnp::console::write_params;

    fn hello() -> Vec<u8> {
        encode::<write_params::Owned>(|mut params| {
            params.set_text("hello");
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn decodes_what_it_encodes_at_any_alignment() {
        let bytes = hello();
        for offset in 0..8 {
            let mut buffer = alloc::vec![0u8; offset];
            buffer.extend_from_slice(&bytes);
            let message = decode(&buffer[offset..]).unwrap();
            let params = message.get_root::<write_params::Reader<'_>>().unwrap();
            assert_eq!(params.get_text().unwrap().to_str().unwrap(), "hello");
        }
    }

    #[test]
    fn rejects_trailing_and_missing_bytes() {
        let mut bytes = hello();
        bytes.extend_from_slice(&[0; 8]);
        assert!(decode(&bytes).is_err());
        bytes.truncate(bytes.len() - 16);
        assert!(decode(&bytes).is_err());
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn rejects_oversized_messages_before_copying_them() {
        let Err(err) = decode(&alloc::vec![0u8; MAX_MESSAGE_BYTES + 1]) else {
            panic!("an oversized message decoded");
        };
        assert!(alloc::format!("{err}").contains("larger than the limit"));
    }

    #[test]
    fn exceptions_round_trip() {
        let exception = CapException { code: 7, message: "no such binary `nope`".into() };
        assert_eq!(decode_exception(&encode_exception(&exception)).unwrap(), exception);
        assert!(decode_exception(&[1, 2, 3]).is_err());
    }

    #[test]
    fn segment_table_sizes() {
        assert_eq!(segment_table_bytes(1), 8);
        assert_eq!(segment_table_bytes(2), 16);
        assert_eq!(segment_table_bytes(3), 16);
    }
}
