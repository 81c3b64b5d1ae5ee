//! The offline detector: deterministic, pure Rust, no network. Every number it replaces has
//! passed a checksum or a strict format, so it errs towards leaving text alone.
//!
//! - `card`: 13–19 digits, alone or in groups split by single spaces or dashes (the first
//!   group of four, the others of four to six), that pass the Luhn check and start with an
//!   issuer prefix of that length (Visa, Mastercard, American Express, Discover, Diners Club,
//!   JCB, UnionPay, Maestro, Mir).
//! - `iban`: two letters, two check digits and up to 30 letters and digits, grouped or not,
//!   that pass the mod-97 check and the country's BBAN format (`iban_validate`).
//! - `email`: `local@domain.tld` with a dotted domain and a top-level domain of letters.
//! - `phone`: `+` and 9–15 digits; or a national number of 9–11 digits that starts with the
//!   trunk prefix 0 (groups of at least two digits) or is written as a North American number
//!   (`(555) 123-4567`, `555-123-4567`, `1-800-555-0199`). Never a card, an ISBN, a number
//!   glued to a letter, `#`, `/` or `-`, or a number the page context declares as an order.
use std::borrow::Cow;

use iban::Iban;

use super::{Kind, Kinds, OrderNumbers, Redactions};

/// One finding: the byte range it covers and what replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Finding {
    start: usize,
    end: usize,
    kind: Kind,
    /// A card's last four digits, kept in its placeholder.
    last_four: [u8; 4],
}

/// Findings sorted by position, never overlapping.
#[derive(Debug, Default)]
struct Findings(Vec<Finding>);

impl Findings {
    /// Adds a finding unless it overlaps one already made by a detector that ran earlier.
    fn add(&mut self, finding: Finding) {
        let at = self.0.partition_point(|f| f.end <= finding.start);
        if !self.0.get(at).is_some_and(|next| next.start < finding.end) {
            self.0.insert(at, finding);
        }
    }

    fn covers(&self, position: usize) -> bool {
        let at = self.0.partition_point(|f| f.end <= position);
        self.0.get(at).is_some_and(|f| f.start <= position)
    }
}

/// The placeholder that replaces a finding.
pub(crate) fn placeholder(kind: Kind, last_four: &str) -> String {
    match kind {
        Kind::Card => format!("[card ••••{last_four}]"),
        Kind::Iban => "[iban]".to_owned(),
        Kind::Email => "[email]".to_owned(),
        Kind::Phone => "[phone]".to_owned(),
    }
}

/// Replaces every enabled kind found in `text`. Unchanged text is borrowed, not copied.
pub fn redact_text<'a>(text: &'a str, kinds: Kinds, orders: &OrderNumbers) -> (Cow<'a, str>, Redactions) {
    let mut findings = Findings::default();
    if kinds.contains(Kind::Email) {
        find_emails(text.as_bytes(), &mut findings);
    }
    if kinds.contains(Kind::Iban) {
        find_ibans(text.as_bytes(), &mut findings);
    }
    if kinds.contains(Kind::Card) {
        find_cards(text.as_bytes(), &mut findings);
    }
    if kinds.contains(Kind::Phone) {
        find_phones(text.as_bytes(), orders, &mut findings);
    }
    if findings.0.is_empty() {
        return (Cow::Borrowed(text), Redactions::default());
    }
    let mut counts = Redactions::default();
    let mut out = String::with_capacity(text.len() + 16 * findings.0.len());
    let mut copied = 0;
    for finding in &findings.0 {
        // Every finding starts and ends on an ASCII byte, so these are character boundaries.
        out.push_str(&text[copied..finding.start]);
        out.push_str(&placeholder(finding.kind, std::str::from_utf8(&finding.last_four).unwrap_or("")));
        copied = finding.end;
        counts.add(finding.kind);
    }
    out.push_str(&text[copied..]);
    (Cow::Owned(out), counts)
}

// ---- e-mail ---------------------------------------------------------------------------

fn is_local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn find_emails(b: &[u8], findings: &mut Findings) {
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let mut start = i;
        while start > 0 && is_local_byte(b[start - 1]) {
            start -= 1;
        }
        while start < i && b[start] == b'.' {
            start += 1;
        }
        let mut end = i + 1;
        while end < b.len() && is_domain_byte(b[end]) {
            end += 1;
        }
        // A sentence may end right after the address.
        while end > i + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < i && b[i - 1] != b'.' && valid_domain(&b[i + 1..end]) {
            findings.add(Finding { start, end, kind: Kind::Email, last_four: [0; 4] });
            i = end;
        } else {
            i += 1;
        }
    }
}

fn valid_domain(domain: &[u8]) -> bool {
    let labels: Vec<&[u8]> = domain.split(|b| *b == b'.').collect();
    let Some(tld) = labels.last() else { return false };
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l[0] != b'-' && l[l.len() - 1] != b'-')
        && tld.len() >= 2
        && tld.iter().all(u8::is_ascii_alphabetic)
}

// ---- IBAN ------------------------------------------------------------------------------

const MAX_IBAN_LEN: usize = 34;
const MIN_IBAN_LEN: usize = 15;

fn find_ibans(b: &[u8], findings: &mut Findings) {
    let mut i = 0;
    while i + 4 <= b.len() {
        let starts = b[i].is_ascii_alphabetic()
            && b[i + 1].is_ascii_alphabetic()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit()
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric());
        if !starts {
            i += 1;
            continue;
        }
        // Alphanumeric tokens split by single spaces, up to the longest IBAN.
        let mut tokens: Vec<(usize, usize)> = Vec::new();
        let mut length = 0;
        let mut at = i;
        loop {
            let end = at + b[at..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
            if length + (end - at) > MAX_IBAN_LEN {
                break;
            }
            length += end - at;
            tokens.push((at, end));
            if end + 1 < b.len() && b[end] == b' ' && b[end + 1].is_ascii_alphanumeric() {
                at = end + 1;
            } else {
                break;
            }
        }
        // The longest run of whole tokens that is a valid IBAN.
        let found = (1..=tokens.len()).rev().find_map(|n| {
            let electronic: String =
                tokens[..n].iter().flat_map(|&(s, e)| b[s..e].iter().map(|c| c.to_ascii_uppercase() as char)).collect();
            ((MIN_IBAN_LEN..=MAX_IBAN_LEN).contains(&electronic.len()) && electronic.parse::<Iban>().is_ok())
                .then(|| tokens[n - 1].1)
        });
        match found {
            Some(end) => {
                findings.add(Finding { start: i, end, kind: Kind::Iban, last_four: [0; 4] });
                i = end;
            }
            None => i += 1,
        }
    }
}

// ---- cards -------------------------------------------------------------------------------

/// A range of card-number prefixes and the lengths its issuer uses.
struct Issuer {
    low: u32,
    high: u32,
    prefix_digits: usize,
    lengths: &'static [usize],
}

const LEN_16_19: &[usize] = &[16, 17, 18, 19];
const LEN_14_19: &[usize] = &[14, 15, 16, 17, 18, 19];
const LEN_13_19: &[usize] = &[13, 14, 15, 16, 17, 18, 19];

const fn issuer(low: u32, high: u32, prefix_digits: usize, lengths: &'static [usize]) -> Issuer {
    Issuer { low, high, prefix_digits, lengths }
}

const ISSUERS: &[Issuer] = &[
    issuer(4, 4, 1, &[13, 16, 19]),              // Visa
    issuer(51, 55, 2, &[16]),                    // Mastercard
    issuer(2221, 2720, 4, &[16]),                // Mastercard, 2-series
    issuer(34, 34, 2, &[15]),                    // American Express
    issuer(37, 37, 2, &[15]),                    // American Express
    issuer(6011, 6011, 4, LEN_16_19),            // Discover
    issuer(644, 649, 3, LEN_16_19),              // Discover
    issuer(65, 65, 2, LEN_16_19),                // Discover
    issuer(300, 305, 3, LEN_14_19),              // Diners Club
    issuer(3095, 3095, 4, LEN_14_19),            // Diners Club
    issuer(36, 36, 2, LEN_14_19),                // Diners Club
    issuer(38, 39, 2, LEN_16_19),                // Diners Club
    issuer(3528, 3589, 4, LEN_16_19),            // JCB
    issuer(62, 62, 2, LEN_16_19),                // UnionPay
    issuer(2200, 2204, 4, LEN_16_19),            // Mir
    issuer(5018, 5018, 4, LEN_13_19),            // Maestro
    issuer(5020, 5020, 4, LEN_13_19),            // Maestro
    issuer(5038, 5038, 4, LEN_13_19),            // Maestro
    issuer(5893, 5893, 4, LEN_13_19),            // Maestro
    issuer(6304, 6304, 4, LEN_13_19),            // Maestro
    issuer(6759, 6759, 4, LEN_13_19),            // Maestro
    issuer(6761, 6763, 4, LEN_13_19),            // Maestro
];

fn prefix_value(digits: &[u8], count: usize) -> u32 {
    digits.iter().take(count).fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

/// A known issuer's prefix and length, and the Luhn check.
pub(crate) fn is_card_number(digits: &[u8]) -> bool {
    (13..=19).contains(&digits.len())
        && ISSUERS.iter().any(|i| {
            let prefix = prefix_value(digits, i.prefix_digits);
            (i.low..=i.high).contains(&prefix) && i.lengths.contains(&digits.len())
        })
        && std::str::from_utf8(digits).is_ok_and(luhn::valid)
}

/// The groups of a number written with separators: `(start, end)` of each digit group.
fn digit_groups(b: &[u8], start: usize, separators: &[u8]) -> Vec<(usize, usize)> {
    let mut groups = Vec::new();
    let mut at = start;
    loop {
        let end = at + b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        groups.push((at, end));
        if end + 1 < b.len() && separators.contains(&b[end]) && b[end + 1].is_ascii_digit() {
            at = end + 1;
        } else {
            return groups;
        }
    }
}

/// Card grouping: one block of digits, or a first group of four and the others of four to six
/// (the last may be shorter: `4222 2222 2222 2`).
fn card_grouping(groups: &[(usize, usize)]) -> bool {
    let len = |g: &(usize, usize)| g.1 - g.0;
    match groups {
        [_] => true,
        [first, middle @ .., last] => {
            len(first) == 4 && middle.iter().all(|g| (4..=6).contains(&len(g))) && (1..=6).contains(&len(last))
        }
        [] => false,
    }
}

/// A card number starts at a digit that no letter, `_` or `+` (an international phone
/// number: `+4915112345678` passes Luhn as a 13-digit Visa) is glued to.
fn card_starts_at(b: &[u8], i: usize) -> bool {
    b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || matches!(b[i - 1], b'_' | b'+')))
}

fn number_ends_at(b: &[u8], end: usize) -> bool {
    end == b.len() || !(b[end].is_ascii_alphanumeric() || b[end] == b'_')
}

fn find_cards(b: &[u8], findings: &mut Findings) {
    let mut i = 0;
    while i < b.len() {
        if !card_starts_at(b, i) {
            i += 1;
            continue;
        }
        let groups = digit_groups(b, i, b" -");
        let run_end = groups[groups.len() - 1].1;
        let mut first = 0;
        while first < groups.len() {
            match card_in(b, &groups[first..], run_end) {
                Some((used, last_four)) => {
                    let finding =
                        Finding { start: groups[first].0, end: groups[first + used - 1].1, kind: Kind::Card, last_four };
                    findings.add(finding);
                    first += used;
                }
                None => first += 1,
            }
        }
        i = run_end.max(i + 1);
    }
}

/// The longest card number made of the first groups of `groups`: how many groups it takes,
/// and its last four digits.
fn card_in(b: &[u8], groups: &[(usize, usize)], run_end: usize) -> Option<(usize, [u8; 4])> {
    let mut digits = Vec::with_capacity(19);
    let mut best = None;
    for (n, &(start, end)) in groups.iter().enumerate() {
        digits.extend_from_slice(&b[start..end]);
        if digits.len() > 19 {
            break;
        }
        let ends_cleanly = end != run_end || number_ends_at(b, end);
        if digits.len() >= 13 && ends_cleanly && card_grouping(&groups[..=n]) && is_card_number(&digits) {
            let tail = &digits[digits.len() - 4..];
            best = Some((n + 1, [tail[0], tail[1], tail[2], tail[3]]));
        }
    }
    best
}

// ---- phone numbers -------------------------------------------------------------------------

const MIN_PHONE_DIGITS: usize = 9;
const MAX_INTERNATIONAL_DIGITS: usize = 15;
const MAX_NATIONAL_DIGITS: usize = 11;

/// A phone-like run: where it ends, its digit groups, and how they were joined.
struct PhoneCandidate {
    end: usize,
    digits: String,
    group_lengths: Vec<usize>,
    separators: Vec<Vec<u8>>,
    international: bool,
    /// Parentheses balance and the run has at most 15 digits.
    well_formed: bool,
}

fn phone_may_start_after(previous: u8) -> bool {
    !(previous.is_ascii_alphanumeric()
        || matches!(previous, b'@' | b'_' | b'/' | b'#' | b'=' | b'&' | b'.' | b'-' | b'+' | b'$' | b'%'))
}

fn phone_may_end_before(next: u8) -> bool {
    !(next.is_ascii_alphanumeric() || matches!(next, b'@' | b'_' | b':' | b'/' | b'%'))
}

/// Reads a phone-like run from `start` (a `+`, a `(` or a digit, followed by a digit): digit
/// groups joined by an optional `)`, a space, dash, dot or ` - `, and an optional `(`. It
/// reads the whole run even when it is too long, so that no number is found inside it.
fn phone_candidate(b: &[u8], start: usize) -> PhoneCandidate {
    let mut at = start;
    let international = b[at] == b'+';
    if international {
        at += 1;
    }
    let mut open = 0i32;
    if b.get(at) == Some(&b'(') {
        open += 1;
        at += 1;
    }
    let mut candidate = PhoneCandidate {
        end: at,
        digits: String::new(),
        group_lengths: Vec::new(),
        separators: Vec::new(),
        international,
        well_formed: true,
    };
    loop {
        let end = at + b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        if candidate.digits.len() + (end - at) <= MAX_INTERNATIONAL_DIGITS {
            candidate.digits.extend(b[at..end].iter().map(|&c| c as char));
            candidate.group_lengths.push(end - at);
        } else {
            candidate.well_formed = false;
        }
        candidate.end = end;
        let mut next = end;
        let closes = i32::from(b.get(next) == Some(&b')'));
        next += closes as usize;
        next += if b[next..].starts_with(b" - ") {
            3
        } else {
            usize::from(matches!(b.get(next), Some(b' ' | b'-' | b'.')))
        };
        let opens = i32::from(b.get(next) == Some(&b'('));
        next += opens as usize;
        let continues = next > end && b.get(next).is_some_and(u8::is_ascii_digit) && open >= closes;
        if !continues {
            if closes == 1 && open == 1 {
                // A closing parenthesis right after the last group belongs to the number.
                open = 0;
                candidate.end = end + 1;
            }
            break;
        }
        open += opens - closes;
        if candidate.well_formed {
            candidate.separators.push(b[end..next].to_vec());
        }
        at = next;
    }
    candidate.well_formed &= open == 0;
    candidate
}

fn find_phones(b: &[u8], orders: &OrderNumbers, findings: &mut Findings) {
    let mut i = 0;
    while i < b.len() {
        let opener = match b[i] {
            b'+' | b'(' => b.get(i + 1).is_some_and(u8::is_ascii_digit),
            c => c.is_ascii_digit(),
        };
        if !opener || findings.covers(i) {
            i += 1;
            continue;
        }
        // A run that is not a phone number is skipped whole: no number is found inside it.
        let candidate = phone_candidate(b, i);
        let end = candidate.end;
        if candidate.well_formed
            && (i == 0 || phone_may_start_after(b[i - 1]))
            && (end == b.len() || phone_may_end_before(b[end]))
            && is_phone_number(&candidate)
            && !follows_isbn(b, i)
            && !orders.contains(&candidate.digits)
        {
            findings.add(Finding { start: i, end, kind: Kind::Phone, last_four: [0; 4] });
        }
        i = end.max(i + 1);
    }
}

fn is_phone_number(candidate: &PhoneCandidate) -> bool {
    let digits = candidate.digits.as_bytes();
    let count = digits.len();
    // Dots join a number only on their own (06.12.34.56.78, 555.123.4567): not dates and times.
    let dotted = candidate.separators.iter().any(|s| s.contains(&b'.'));
    if dotted && !candidate.separators.iter().all(|s| s == b".") {
        return false;
    }
    if candidate.international {
        return (MIN_PHONE_DIGITS..=MAX_INTERNATIONAL_DIGITS).contains(&count) && digits[0] != b'0';
    }
    if !(MIN_PHONE_DIGITS..=MAX_NATIONAL_DIGITS).contains(&count) {
        return false;
    }
    if digits[0] == b'0' {
        return candidate.group_lengths.iter().all(|&g| g >= 2);
    }
    // North American: (NXX) NXX-XXXX or 1-NXX-NXX-XXXX.
    let nanp = |area: usize| (b'2'..=b'9').contains(&digits[area]);
    match candidate.group_lengths.as_slice() {
        [3, 3, 4] => nanp(0),
        [1, 3, 3, 4] => digits[0] == b'1' && nanp(1),
        _ => false,
    }
}

/// `ISBN 0-306-40615-2`: a number right after the word ISBN is never a phone number.
fn follows_isbn(b: &[u8], start: usize) -> bool {
    let before = &b[start.saturating_sub(12)..start];
    before.windows(4).any(|w| w.eq_ignore_ascii_case(b"isbn"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str, kinds: Kinds) -> String {
        redact_text(text, kinds, &OrderNumbers::default()).0.into_owned()
    }

    fn all(text: &str) -> String {
        redact(text, Kinds::ALL)
    }

    fn count(text: &str, kinds: Kinds) -> Redactions {
        redact_text(text, kinds, &OrderNumbers::default()).1
    }

    #[test]
    fn published_test_cards_are_redacted_to_their_last_four_digits() {
        for (number, last_four) in [
            ("4111111111111111", "1111"),
            ("4012888888881881", "1881"),
            ("5555555555554444", "4444"),
            ("5105105105105100", "5100"),
            ("2223003122003222", "3222"),
            ("378282246310005", "0005"),
            ("371449635398431", "8431"),
            ("6011111111111117", "1117"),
            ("3530111333300000", "0000"),
            ("30569309025904", "5904"),
        ] {
            let text = format!("my card is {number}, thanks");
            assert_eq!(redact(&text, Kinds::DEFAULT), format!("my card is [card ••••{last_four}], thanks"), "{number}");
        }
    }

    #[test]
    fn cards_written_with_spaces_or_dashes_are_redacted() {
        for text in [
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555 5555 5555 4444",
            "2223-0031-2200-3222",
            "3782 822463 10005",
            "3714-496353-98431",
            "4012 8888 8888 1881",
        ] {
            let redacted = redact(&format!("card: {text}."), Kinds::DEFAULT);
            assert!(redacted.starts_with("card: [card ••••") && redacted.ends_with("]."), "{text} -> {redacted}");
            assert_eq!(redacted.chars().filter(char::is_ascii_digit).count(), 4, "{redacted}");
        }
    }

    #[test]
    fn a_card_next_to_other_numbers_is_still_found() {
        assert_eq!(redact("4111111111111111 12/27 cvv 123", Kinds::DEFAULT), "[card ••••1111] 12/27 cvv 123");
        assert_eq!(redact("ref 1234 4111 1111 1111 1111", Kinds::DEFAULT), "ref 1234 [card ••••1111]");
        assert_eq!(
            redact("cards 4111111111111111 and 5105105105105100", Kinds::DEFAULT),
            "cards [card ••••1111] and [card ••••5100]"
        );
        assert_eq!(redact("カード4111111111111111です", Kinds::DEFAULT), "カード[card ••••1111]です");
        // A card is personal data wherever it sits, even glued to a reference by a dash.
        assert_eq!(redact("ORD-4111111111111111", Kinds::DEFAULT), "ORD-[card ••••1111]");
    }

    #[test]
    fn numbers_that_fail_the_checks_are_left_alone() {
        for text in [
            "4111111111111112",          // Luhn fails
            "4111 1111 1111 111",        // 15 digits: no Visa length
            "1234567890123456",          // no issuer
            "9780306406157",             // ISBN-13
            "ISBN 978-3-16-148410-0",    // ISBN-13, hyphenated
            "ISBN 0-306-40615-2",        // ISBN-10
            "order 20261126000123",      // an order id
            "tracking 1Z999AA10123456784", // a parcel number
            "41111111111111111111",      // 20 digits
            "4111111111111111abc",       // glued to letters
            "411 111 111 111 1111",      // not a card's grouping
        ] {
            assert_eq!(redact(text, Kinds::ALL), text, "{text}");
        }
    }

    #[test]
    fn valid_ibans_are_redacted_in_either_format() {
        for text in [
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "de89 3704 0044 0532 0130 00",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
        ] {
            assert_eq!(redact(&format!("pay to {text} please"), Kinds::DEFAULT), "pay to [iban] please", "{text}");
        }
    }

    #[test]
    fn invalid_ibans_are_left_alone() {
        for text in [
            "GB82WEST12345698765433",       // check digits fail
            "DE89370400440532013001",
            "GB82WEST1234569876543",        // too short for GB
            "XX82WEST12345698765432",       // no such country
            "AB12 is my seat",
        ] {
            assert_eq!(redact(text, Kinds::ALL), text, "{text}");
        }
    }

    #[test]
    fn emails_are_redacted_and_look_alikes_are_not() {
        assert_eq!(all("write to jane.doe+shop@example.co.uk."), "write to [email].");
        assert_eq!(all("a@b.cd, X_Y@mail-host.example.org"), "[email], [email]");
        assert_eq!(all("(bob@example.com)"), "([email])");
        for text in ["@frieren_fan", "user@localhost", "price@3.50", "x@y.c", "a@.com", "@", "a@b", "me@-x.com"] {
            assert_eq!(all(text), text, "{text}");
        }
    }

    #[test]
    fn email_is_off_by_default() {
        assert_eq!(redact("jane@example.com", Kinds::DEFAULT), "jane@example.com");
    }

    #[test]
    fn phone_numbers_are_redacted() {
        for text in [
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "+33 6 12 34 56 78",
            "+81 90-1234-5678",
            "+4915112345678",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "020 7946 0958",
            "090-1234-5678",
            "0612345678",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "1-800-555-0199",
        ] {
            assert_eq!(all(&format!("call {text} today")), "call [phone] today", "{text}");
        }
        assert_eq!(all("電話は090-1234-5678です"), "電話は[phone]です");
        // Thirteen digits after a + pass Luhn as a Visa number, but a + makes it a phone number.
        assert_eq!(redact("+4915112345678", Kinds::DEFAULT), "+4915112345678");
    }

    #[test]
    fn numbers_that_are_not_phone_numbers_are_left_alone() {
        for text in [
            "12345678",                 // 8 digits
            "call 123456789",           // no trunk prefix, not North American
            "5551234567",               // bare ten digits
            "order #0123456789",
            "ref-0123456789",
            "ORD0123456789",
            "https://shop.example/orders/0123456789",
            "ISBN 0-306-40615-2",
            "ISBN 0306406152",
            "978-3-16-148410-0",
            "9780306406157",
            "on 01.12.2026 10:30",
            "2026-11-26T19:00:00Z",
            "192.168.100.200",
            "1 000 000 000",
            "+0123456789",
            "(555 123-4567",
            "055 5 123 4567",            // a group of one digit
            "012345678901234",          // too long for a national number
            "155-123-4567",             // no North American area code starts with 1
        ] {
            assert_eq!(all(text), text, "{text}");
        }
    }

    #[test]
    fn a_declared_order_number_is_not_a_phone_number() {
        let orders = OrderNumbers::from_numbers(["0123456789"]);
        let (text, counts) = redact_text("order 0123456789, call 0612345678", Kinds::ALL, &orders);
        assert_eq!(text, "order 0123456789, call [phone]");
        assert_eq!(counts.phone, 1);
    }

    #[test]
    fn a_card_is_never_also_a_phone_number() {
        let counts = count("4111 1111 1111 1111", Kinds::ALL);
        assert_eq!((counts.card, counts.phone), (1, 0));
    }

    #[test]
    fn only_the_enabled_kinds_are_redacted() {
        let text = "card 4111111111111111, iban GB82WEST12345698765432, jane@example.com, +44 20 7946 0958";
        assert_eq!(redact(text, Kinds::NONE), text);
        assert_eq!(
            redact(text, Kinds::DEFAULT),
            "card [card ••••1111], iban [iban], jane@example.com, +44 20 7946 0958"
        );
        assert_eq!(all(text), "card [card ••••1111], iban [iban], [email], [phone]");
        let counts = count(text, Kinds::ALL);
        assert_eq!((counts.card, counts.iban, counts.email, counts.phone), (1, 1, 1, 1));
    }

    #[test]
    fn redacting_twice_changes_nothing_more() {
        let once = all("card 4111111111111111, jane@example.com, +44 20 7946 0958, GB82WEST12345698765432");
        let (twice, counts) = redact_text(&once, Kinds::ALL, &OrderNumbers::default());
        assert_eq!(twice, once);
        assert!(counts.is_empty());
    }

    #[test]
    fn text_without_findings_is_borrowed() {
        let text = "Is volume 3 of Frieren in stock? I'd like 2 copies, order 12345.";
        assert!(matches!(redact_text(text, Kinds::ALL, &OrderNumbers::default()).0, Cow::Borrowed(_)));
    }

    #[test]
    fn odd_input_never_panics() {
        for text in ["", "+", "(", "@", "4", "+(", "0-", "GB", "GB8", "GB82", "1)", "(1", "+1 (", "a@b.", "é@é.éé", "4111 "] {
            let _ = all(text);
        }
        let long = "4111 ".repeat(10_000);
        let _ = all(&long);
        let digits = "0".repeat(10_000);
        assert_eq!(all(&digits), digits);
    }
}
