//! The packed event: one string per event, built by the JS glue in one pass.
//!
//! Each field is the `JSON.stringify` of one leaf of the Optimizely `UserEvent`
//! (so strings arrive escaped and numbers arrive formatted exactly as JavaScript
//! formats them), or empty when the leaf is `undefined`. Fields are separated by
//! [`SEP`] (`U+0001`), which `JSON.stringify` always escapes, so it can never occur
//! inside a field. The attribute list is one field whose tokens are separated by
//! [`SUB`] (`U+0002`), three per attribute (`entityId`, `key`, `value`).
//!
//! Layout (see [`ctx`], [`TYPE`] and [`data`]): the eight context fields, then the
//! event type, then the per-event data, whose tail depends on the type.
//!
//! [`parse`] validates every field against the rules of the input format and returns
//! the parts the processor keeps: the raw context and the data fields, which are
//! stored as they are and rendered to the wire format only at flush time.

use super::error::{push_uint, Error};

/// Separates the fields of a packed event.
pub const SEP: char = '\u{1}';
/// Separates the tokens inside the attribute field.
pub const SUB: char = '\u{2}';

/// Indexes of the context fields (the first eight fields).
pub mod ctx {
    /// `context.region`
    pub const REGION: usize = 0;
    /// `context.accountId`
    pub const ACCOUNT_ID: usize = 1;
    /// `context.projectId`
    pub const PROJECT_ID: usize = 2;
    /// `context.revision`
    pub const REVISION: usize = 3;
    /// `context.clientName`
    pub const CLIENT_NAME: usize = 4;
    /// `context.clientVersion`
    pub const CLIENT_VERSION: usize = 5;
    /// `context.anonymizeIP`
    pub const ANONYMIZE_IP: usize = 6;
    /// `context.botFiltering`
    pub const BOT_FILTERING: usize = 7;
    /// Number of context fields.
    pub const COUNT: usize = 8;
}

/// Index of the `type` field, right after the context.
pub const TYPE: usize = ctx::COUNT;

/// Indexes inside the data part (the fields after `type`).
pub mod data {
    /// `uuid`
    pub const UUID: usize = 0;
    /// `timestamp`
    pub const TIMESTAMP: usize = 1;
    /// `user.id`
    pub const USER_ID: usize = 2;
    /// `user.attributes`, tokens separated by [`super::SUB`].
    pub const ATTRIBUTES: usize = 3;

    /// Impression: `layer.id`
    pub const LAYER_ID: usize = 4;
    /// Impression: `experiment.id`
    pub const EXPERIMENT_ID: usize = 5;
    /// Impression: `1` when `variation` is an object, empty otherwise.
    pub const VARIATION_PRESENT: usize = 6;
    /// Impression: `variation.id`
    pub const VARIATION_ID: usize = 7;
    /// Impression: `variation.key`
    pub const VARIATION_KEY: usize = 8;
    /// Impression: `ruleKey`
    pub const RULE_KEY: usize = 9;
    /// Impression: `flagKey`
    pub const FLAG_KEY: usize = 10;
    /// Impression: `ruleType`
    pub const RULE_TYPE: usize = 11;
    /// Impression: `enabled`
    pub const ENABLED: usize = 12;
    /// Impression: `cmabUuid`
    pub const CMAB_UUID: usize = 13;
    /// Number of data fields of an impression.
    pub const IMPRESSION_COUNT: usize = 14;

    /// Conversion: `event.id`
    pub const EVENT_ID: usize = 4;
    /// Conversion: `event.key`
    pub const EVENT_KEY: usize = 5;
    /// Conversion: `revenue`
    pub const REVENUE: usize = 6;
    /// Conversion: `value`
    pub const VALUE: usize = 7;
    /// Conversion: `tags`
    pub const TAGS: usize = 8;
    /// Number of data fields of a conversion.
    pub const CONVERSION_COUNT: usize = 9;

    /// The largest number of data fields.
    pub const MAX: usize = IMPRESSION_COUNT;
}

/// Impression or conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A decision event (`campaign_activated`).
    Impression,
    /// A conversion (`trackEvent`).
    Conversion,
}

/// The JSON kind of one field, judged from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// The leaf was `undefined` (empty field).
    Absent,
    /// `null` (also what `JSON.stringify` makes of `NaN` and `Infinity`).
    Null,
    /// `true` or `false`.
    Bool,
    /// A JSON number.
    Number,
    /// A JSON string.
    String,
    /// A JSON object.
    Object,
    /// Anything else (arrays, malformed text).
    Other,
}

impl Token {
    /// Classifies one field.
    pub fn of(field: &str) -> Token {
        let b = field.as_bytes();
        match b.first() {
            None => Token::Absent,
            Some(b'"') if b.len() >= 2 && b[b.len() - 1] == b'"' => Token::String,
            Some(b'{') if b[b.len() - 1] == b'}' => Token::Object,
            Some(b'-' | b'0'..=b'9') if is_number(b) => Token::Number,
            _ => match field {
                "null" => Token::Null,
                "true" | "false" => Token::Bool,
                _ => Token::Other,
            },
        }
    }

    /// JavaScript truthiness of the value this token encodes (`||` semantics).
    pub fn is_truthy(field: &str) -> bool {
        !matches!(field, "" | "null" | "false" | "0" | "-0" | "\"\"")
    }

    /// `true` unless the value is `null` or `undefined` (`!= null` semantics).
    pub fn is_present(field: &str) -> bool {
        !matches!(field, "" | "null")
    }
}

/// A JSON number as `JSON.stringify` writes it: digits, sign, dot and exponent only.
fn is_number(b: &[u8]) -> bool {
    let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
    digits > 0
        && b.iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
}

/// The parts of a valid packed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The eight context fields, still joined by [`SEP`].
    pub context: &'a str,
    /// Impression or conversion.
    pub kind: Kind,
    /// The data fields, still joined by [`SEP`].
    pub data: &'a str,
    /// The same data fields, split (see [`data`]; unused ones are empty).
    pub fields: [&'a str; data::MAX],
    /// `true` when the context is the `known_valid` one given to [`parse_after`].
    pub known: bool,
    /// Number of attributes (three tokens each) in the attribute field.
    pub attributes: usize,
}

/// The parts of `s` between the bytes `sep` (an ASCII separator), like
/// `str::split`, with the separator found eight bytes at a time: the fields are short,
/// and the generic char searcher cost more per field than the scan itself.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

impl<'a> Fields<'a> {
    /// The fields of `s` separated by `sep` (one empty field for an empty `s`).
    pub fn new(s: &'a str, sep: char) -> Self {
        debug_assert!(sep.is_ascii());
        Fields {
            rest: Some(s),
            sep: sep as u8,
        }
    }

    /// The next three fields (an attribute's `entityId`, `key` and `value`), or `None`
    /// when fewer are left. One call for three: the call cost more than the scans.
    pub fn next_three(&mut self) -> Option<[&'a str; 3]> {
        let mut three = [""; 3];
        for slot in &mut three {
            (*slot, self.rest) = cut(self.rest?, self.sep);
        }
        Some(three)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let field;
        (field, self.rest) = cut(self.rest?, self.sep);
        Some(field)
    }
}

/// The first field of `s` and, if `sep` follows it, the rest after that `sep`. Inlined
/// into the loops that split an event (a call per field cost more than the short scans).
#[inline(always)]
fn cut(s: &str, sep: u8) -> (&str, Option<&str>) {
    match find(s.as_bytes(), sep) {
        // `sep` is ASCII, so both sides of it are char boundaries; non-panicking
        // slicing (no panic path, no core::fmt in the wasm).
        Some(i) => (
            s.get(..i).unwrap_or_default(),
            Some(s.get(i + 1..).unwrap_or_default()),
        ),
        None => (s, None),
    }
}

/// The index of the first `sep` in `b`. Eight bytes at a time (the "has a zero
/// byte" test on `word ^ sep`, in 64-bit integers, which wasm has too): the separator
/// scans were more than half of the core's time with a byte loop.
fn find(b: &[u8], sep: u8) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let pattern = ONES * u64::from(sep);
    let mut rest = b;
    let mut at = 0;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let x = u64::from_le_bytes(*word) ^ pattern;
        // The lowest flagged byte is the first zero byte of `x` (a borrow can only
        // flag bytes above a real zero).
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        rest = tail;
        at += 8;
    }
    rest.iter().position(|&c| c == sep).map(|i| at + i)
}

/// Splits `s` on [`SEP`] into `out`, returning how many fields there were
/// (possibly more than `out` holds).
pub fn split<'a>(s: &'a str, out: &mut [&'a str]) -> usize {
    let mut n = 0;
    let mut rest = Some(s);
    while let Some(r) = rest {
        let part;
        (part, rest) = cut(r, SEP as u8);
        if let Some(slot) = out.get_mut(n) {
            *slot = part;
        }
        n += 1;
    }
    n
}

/// A short rendering of a field for error messages.
fn shown(field: &str) -> String {
    if field.is_empty() {
        return "undefined".to_string();
    }
    let mut end = field.len().min(48);
    while !field.is_char_boundary(end) {
        end -= 1;
    }
    if end < field.len() {
        let mut out = String::with_capacity(end + 3);
        out.push_str(field.get(..end).unwrap_or_default());
        out.push('…');
        out
    } else {
        field.to_string()
    }
}

/// What a field may hold.
#[derive(Clone, Copy)]
enum Rule {
    RequiredString,
    OptionalString,
    OptionalId,
    OptionalBool,
    OptionalNumber,
    Timestamp,
    AttributeValue,
    OptionalObject,
}

impl Rule {
    fn allows(self, t: Token) -> bool {
        use Token::*;
        match self {
            Rule::RequiredString => t == String,
            Rule::OptionalString => matches!(t, Absent | Null | String),
            Rule::OptionalId => matches!(t, Absent | Null | String | Number),
            Rule::OptionalBool => matches!(t, Absent | Null | Bool),
            Rule::OptionalNumber => matches!(t, Absent | Null | Number),
            Rule::Timestamp => t == Number,
            Rule::AttributeValue => matches!(t, String | Number | Bool),
            Rule::OptionalObject => matches!(t, Absent | Null | Object),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Rule::RequiredString => "a string",
            Rule::OptionalString => "a string, null or undefined",
            Rule::OptionalId => "a string, a number, null or undefined",
            Rule::OptionalBool => "a boolean, null or undefined",
            Rule::OptionalNumber => "a finite number, null or undefined",
            Rule::Timestamp => "a finite number >= 0 (ms since epoch)",
            Rule::AttributeValue => "a string, a finite number or a boolean",
            Rule::OptionalObject => "an object, null or undefined",
        }
    }
}

fn check(field: &str, name: &str, rule: Rule) -> Result<(), Error> {
    if rule.allows(Token::of(field)) {
        Ok(())
    } else {
        Err(invalid(name, rule.describe(), field))
    }
}

fn invalid(name: &str, rule: &'static str, field: &str) -> Error {
    Error::InvalidEvent {
        field: name.to_string(),
        rule,
        got: shown(field),
    }
}

const CONTEXT_RULES: [(&str, Rule); ctx::COUNT] = [
    ("context.region", Rule::OptionalString),
    ("context.accountId", Rule::RequiredString),
    ("context.projectId", Rule::RequiredString),
    ("context.revision", Rule::OptionalString),
    ("context.clientName", Rule::OptionalString),
    ("context.clientVersion", Rule::OptionalString),
    ("context.anonymizeIP", Rule::OptionalBool),
    ("context.botFiltering", Rule::OptionalBool),
];

const COMMON_RULES: [(&str, Rule); 3] = [
    ("uuid", Rule::RequiredString),
    ("timestamp", Rule::Timestamp),
    ("user.id", Rule::RequiredString),
];

const IMPRESSION_RULES: [(usize, &str, Rule); 9] = [
    // Ids are strings in the SDK's types, but the SDK passes numbers through as they
    // are, so we do too.
    (data::LAYER_ID, "layer.id", Rule::OptionalId),
    (data::EXPERIMENT_ID, "experiment.id", Rule::OptionalId),
    (data::VARIATION_ID, "variation.id", Rule::OptionalId),
    (data::VARIATION_KEY, "variation.key", Rule::OptionalString),
    (data::RULE_KEY, "ruleKey", Rule::OptionalString),
    (data::FLAG_KEY, "flagKey", Rule::OptionalString),
    (data::RULE_TYPE, "ruleType", Rule::OptionalString),
    (data::ENABLED, "enabled", Rule::OptionalBool),
    (data::CMAB_UUID, "cmabUuid", Rule::OptionalString),
];

const CONVERSION_RULES: [(usize, &str, Rule); 5] = [
    (data::EVENT_ID, "event.id", Rule::RequiredString),
    (data::EVENT_KEY, "event.key", Rule::RequiredString),
    (data::REVENUE, "revenue", Rule::OptionalNumber),
    (data::VALUE, "value", Rule::OptionalNumber),
    (data::TAGS, "tags", Rule::OptionalObject),
];

/// Validates a packed event and splits it into context and data.
pub fn parse(s: &str) -> Result<Parsed<'_>, Error> {
    parse_after(s, None)
}

/// [`parse`], skipping the rules of the context fields when the context is
/// `known_valid` (the raw context of an event validated before: consecutive events
/// nearly always share it).
pub fn parse_after<'a>(s: &'a str, known_valid: Option<&str>) -> Result<Parsed<'a>, Error> {
    let mut f = [""; ctx::COUNT + 1 + data::MAX];
    // A context that is `known_valid` (eight fields, validated) is neither split nor
    // checked again: only what follows it is split, into `f[TYPE..]`.
    let known = known_valid.and_then(|k| Some((k, after_context(s, k)?)));
    let n = match known {
        Some((_, rest)) => TYPE + split(rest, f.get_mut(TYPE..).unwrap_or_default()),
        None => split(s, &mut f),
    };
    let kind = match f[TYPE] {
        "\"impression\"" => Kind::Impression,
        "\"conversion\"" => Kind::Conversion,
        other => {
            return Err(invalid(
                "type",
                "'impression' or 'conversion'",
                if n > TYPE { other } else { "" },
            ))
        }
    };
    let expected = ctx::COUNT
        + 1
        + match kind {
            Kind::Impression => data::IMPRESSION_COUNT,
            Kind::Conversion => data::CONVERSION_COUNT,
        };
    if n != expected {
        return Err(Error::InvalidEvent {
            field: "event".to_string(),
            rule: "a packed event with the right number of fields",
            got: {
                let mut got = String::new();
                push_uint(&mut got, n as u64);
                got.push_str(" fields");
                got
            },
        });
    }
    let context_end = match known {
        Some((k, _)) => k.len(),
        None => f[..ctx::COUNT].iter().map(|x| x.len() + 1).sum::<usize>() - 1,
    };
    let context = s.get(..context_end).unwrap_or_default();
    if known.is_none() && known_valid != Some(context) {
        for (field, (name, rule)) in f.iter().zip(&CONTEXT_RULES) {
            check(field, name, *rule)?;
        }
    }
    // The data fields, in a fixed-size array: the checks below index it with constants
    // and need no bounds check (no panic path).
    let mut d = [""; data::MAX];
    for (to, from) in d
        .iter_mut()
        .zip(f.get(TYPE + 1..expected).unwrap_or_default())
    {
        *to = from;
    }
    for (field, (name, rule)) in d.iter().zip(&COMMON_RULES) {
        check(field, name, *rule)?;
    }
    if d[data::TIMESTAMP].starts_with('-') {
        return Err(invalid(
            "timestamp",
            Rule::Timestamp.describe(),
            d[data::TIMESTAMP],
        ));
    }
    let attributes = check_attributes(d[data::ATTRIBUTES])?;
    let rules: &[(usize, &str, Rule)] = match kind {
        Kind::Impression => {
            if !matches!(d[data::VARIATION_PRESENT], "" | "1") {
                return Err(invalid(
                    "variation",
                    "an object, null or undefined",
                    d[data::VARIATION_PRESENT],
                ));
            }
            &IMPRESSION_RULES
        }
        Kind::Conversion => &CONVERSION_RULES,
    };
    for (i, name, rule) in rules {
        check(d.get(*i).copied().unwrap_or_default(), name, *rule)?;
    }
    let data_start = context_end + 1 + f[TYPE].len() + 1;
    Ok(Parsed {
        context,
        known: known.is_some(),
        attributes,
        kind,
        data: s.get(data_start..).unwrap_or_default(),
        fields: d,
    })
}

/// What follows `context` and its SEP when `s` starts with them.
fn after_context<'a>(s: &'a str, context: &str) -> Option<&'a str> {
    let rest = s.as_bytes().get(context.len()..)?;
    if !same_bytes(s.as_bytes().get(..context.len())?, context.as_bytes())
        || rest.first() != Some(&(SEP as u8))
    {
        return None;
    }
    // After an ASCII separator: a char boundary.
    s.get(context.len() + 1..)
}

/// `a == b`, eight bytes at a time: the wasm's `memcmp` goes byte by byte, and the
/// context (~60 bytes) is compared for every event.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a, b);
    while let (Some((p, xs)), Some((q, ys))) =
        (x.split_first_chunk::<8>(), y.split_first_chunk::<8>())
    {
        if u64::from_le_bytes(*p) != u64::from_le_bytes(*q) {
            return false;
        }
        x = xs;
        y = ys;
    }
    x.iter().zip(y).all(|(p, q)| p == q)
}

/// Validates the attribute field; returns the number of attributes.
fn check_attributes(field: &str) -> Result<usize, Error> {
    if field.is_empty() {
        return Ok(0);
    }
    let mut count = 0;
    for (i, token) in Fields::new(field, SUB).enumerate() {
        count += 1;
        let (name, rule) = match i % 3 {
            0 => ("entityId", Rule::RequiredString),
            1 => ("key", Rule::RequiredString),
            _ => ("value", Rule::AttributeValue),
        };
        if !rule.allows(Token::of(token)) {
            let mut field = String::from("user.attributes[");
            push_uint(&mut field, (i / 3) as u64);
            field.push_str("].");
            field.push_str(name);
            return Err(invalid(&field, rule.describe(), token));
        }
    }
    if count % 3 != 0 {
        return Err(invalid(
            "user.attributes",
            "a list of { entityId, key, value }",
            field,
        ));
    }
    Ok(count / 3)
}

#[cfg(test)]
mod tests;
