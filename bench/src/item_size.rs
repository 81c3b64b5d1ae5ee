//! DynamoDB item sizes and the capacity they cost, by the published rules
//! ("Item sizes and formats" in the DynamoDB developer guide):
//!
//! - a string is the UTF-8 bytes of its name plus the UTF-8 bytes of its value;
//! - a number is its name plus 1 byte per two significant digits plus 1 byte
//!   (leading and trailing zeroes trimmed);
//! - a binary is its name plus its raw bytes (not the base64 on the wire);
//! - a Boolean or null is its name plus 1 byte;
//! - a list or map is its name plus 3 bytes plus its elements, each with 1 byte of overhead
//!   (a map element also counts its key);
//! - a set is its name plus its elements.
//!
//! DynamoDB Local reports the capacity of plain calls by these rules; for transactions it
//! does not, so the harness prices transactions from these sizes.
use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

pub type Item = HashMap<String, AttributeValue>;

pub const WRITE_UNIT_BYTES: usize = 1024;
pub const READ_UNIT_BYTES: usize = 4096;

/// The size of an item as DynamoDB counts it for capacity.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of the attributes of `item` named in `names` (an index entry's projection).
pub fn projected_size(item: &Item, names: &[&str]) -> usize {
    item.iter()
        .filter(|(name, _)| names.contains(&name.as_str()))
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

/// The size of one value, without its attribute name.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

/// 1 byte per two significant digits, plus 1.
pub fn number_size(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

/// Write units of one standard write of an item of `size` bytes: one per started KB.
pub fn write_units(size: usize) -> f64 {
    size.div_ceil(WRITE_UNIT_BYTES).max(1) as f64
}

/// Write units of one item in a `TransactWriteItems`: twice the standard write.
pub fn transactional_write_units(size: usize) -> f64 {
    2.0 * write_units(size)
}

/// Read units of one read of `size` bytes (an item, or the sum of the items a Query returns):
/// one per started 4 KB when strongly consistent, half that when eventually consistent.
pub fn read_units(size: usize, consistent: bool) -> f64 {
    let units = size.div_ceil(READ_UNIT_BYTES).max(1) as f64;
    if consistent {
        units
    } else {
        units / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn a_string_a_number_and_a_binary_add_up_as_published_calculators_say() {
        // The worked example of the dyno-item-size calculator: 12 + 8 + 12 bytes.
        let example = item(&[
            ("string", AttributeValue::S("string".into())),
            ("number", AttributeValue::N("27".into())),
            ("buffer", AttributeValue::B(b"buffer".to_vec().into())),
        ]);
        assert_eq!(item_size(&example), 32);
    }

    #[test]
    fn numbers_count_significant_digits_only() {
        assert_eq!(number_size("27"), 2);
        assert_eq!(number_size("1795806000"), 5); // 1795806: seven digits
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("-0.0012300"), 3); // 123
        assert_eq!(number_size("12345678901234567890"), 11); // 19 significant digits
        assert_eq!(number_size("1.5E+3"), 2);
    }

    #[test]
    fn strings_count_utf8_bytes_and_binaries_raw_bytes() {
        assert_eq!(
            item_size(&item(&[("SK", AttributeValue::S("META".into()))])),
            6
        );
        assert_eq!(
            item_size(&item(&[("t", AttributeValue::S("葬送".into()))])),
            7
        );
        assert_eq!(
            item_size(&item(&[(
                "content",
                AttributeValue::B(vec![0u8; 500].into())
            )])),
            507
        );
        assert_eq!(
            item_size(&item(&[("guest", AttributeValue::Bool(false))])),
            6
        );
    }

    #[test]
    fn maps_and_lists_pay_three_bytes_plus_one_per_element() {
        assert_eq!(value_size(&AttributeValue::M(HashMap::new())), 3);
        let page = AttributeValue::M(HashMap::from([(
            "page".to_owned(),
            AttributeValue::S("/manga".into()),
        )]));
        assert_eq!(
            item_size(&item(&[("page_context", page)])),
            12 + 3 + (4 + 6 + 1)
        );
        let list = AttributeValue::L(vec![
            AttributeValue::S("ab".into()),
            AttributeValue::N("7".into()),
        ]);
        assert_eq!(value_size(&list), 3 + (2 + 1) + (2 + 1));
    }

    #[test]
    fn capacity_rounds_up_per_unit() {
        assert_eq!(write_units(1), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(transactional_write_units(900), 2.0);
        assert_eq!(read_units(4096, false), 0.5);
        assert_eq!(read_units(4097, false), 1.0);
        assert_eq!(read_units(8000, true), 2.0);
    }

    #[test]
    fn a_projection_counts_only_the_named_attributes() {
        let meta = item(&[
            ("PK", AttributeValue::S("SESSION#1".into())),
            ("summary", AttributeValue::B(vec![0u8; 900].into())),
        ]);
        assert_eq!(projected_size(&meta, &["PK"]), 11);
    }
}
