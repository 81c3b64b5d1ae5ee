//! Gzip for turn content, turn items and summaries, stored as DynamoDB binary.
use std::io::{Read, Write};

use flate2::{read::GzDecoder, write::GzEncoder, Compression};

use crate::Error;

pub fn compress(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 2 + 32), Compression::best());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    encoder.finish().unwrap_or_default()
}

pub fn decompress(bytes: &[u8]) -> Result<String, Error> {
    let mut text = String::with_capacity(bytes.len() * 3);
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(Error::corrupt)?;
    Ok(text)
}

/// A JSON object, as `compress` stores it: a turn's `item`.
pub fn compress_json(object: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    compress(&serde_json::Value::Object(object.clone()).to_string())
}

pub fn decompress_json(bytes: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    serde_json::from_str(&decompress(bytes)?).map_err(Error::corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_unicode_text() {
        let text = "Is volume 3 of Frieren in stock? 葬送のフリーレン ✨";
        assert_eq!(decompress(&compress(text)).unwrap(), text);
    }

    #[test]
    fn english_chat_text_shrinks() {
        let text = "The assistant recommends the first volume of the series. ".repeat(20);
        assert!(compress(&text).len() < text.len() / 4);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(decompress(b"not gzip"), Err(Error::Corrupt(_))));
    }
}
