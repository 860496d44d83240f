//! One token per byte: the tokenizer of random-weight presets (every preset vocabulary
//! has at least 256 entries).

use super::Tokenizer;
use crate::{Error, Result};

/// Token id = byte value.
#[derive(Debug, Clone, Copy, Default)]
pub struct ByteTokenizer;

impl Tokenizer for ByteTokenizer {
    fn describe(&self) -> String {
        "bytes".into()
    }

    fn vocab_size(&self) -> usize {
        256
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(text.bytes().map(u32::from).collect())
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        ids.iter()
            .map(|&id| {
                u8::try_from(id).map_err(|_| Error::Tokenizer {
                    path: "bytes".into(),
                    message: format!("token {id} is not a byte (0..256)"),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_including_multibyte_characters() {
        let t = ByteTokenizer;
        let ids = t.encode("é!").unwrap();
        assert_eq!(ids, vec![0xc3, 0xa9, b'!' as u32]);
        assert_eq!(t.decode(&ids).unwrap(), "é!");
        assert!(t.decode(&[256]).is_err());
    }
}
