//! The Optimizely log-tier v1 `EventBatch`, written exactly as the Optimizely
//! JavaScript SDK's `buildLogEvent` + `JSON.stringify` would write it: same keys,
//! same key order, same omissions of `undefined` values.
//!
//! Rendering goes through a [`Sink`], so the same code both measures an event (with a
//! [`Counter`]) when it is accepted and writes it (into a `String`) at flush time: the
//! byte accounting can never drift from the bytes sent.

use std::hash::Hasher;

use super::packed::{ctx, data, split, Fields, Kind, Token, SEP, SUB};

/// The log-tier endpoint for the US region (and any region but `EU`).
pub const US_ENDPOINT: &str = "https://logx.optimizely.com/v1/events";
/// The log-tier endpoint for the EU region.
pub const EU_ENDPOINT: &str = "https://eu.logx.optimizely.com/v1/events";

/// What closes a batch body after the last visitor.
pub const BODY_TAIL: &str = "]}";

const BOT_FILTERING_ATTRIBUTE: &str =
    "{\"entity_id\":\"$opt_bot_filtering\",\"key\":\"$opt_bot_filtering\",\"type\":\"custom\",\"value\":";

/// Where rendered JSON goes.
pub trait Sink {
    /// Appends `s`.
    fn put(&mut self, s: &str);
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// A [`Sink`] that only counts UTF-8 bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counter(pub usize);

impl Sink for Counter {
    fn put(&mut self, s: &str) {
        self.0 += s.len();
    }
}

/// Writes a JSON object whose `undefined` (empty) members are left out, as
/// `JSON.stringify` does.
struct Object<'s, S: Sink> {
    out: &'s mut S,
    first: bool,
}

impl<'s, S: Sink> Object<'s, S> {
    fn open(out: &'s mut S) -> Self {
        out.put("{");
        Object { out, first: true }
    }

    /// `key` is written with its quotes and colon, e.g. `"\"uuid\":"`.
    fn member(&mut self, key: &str, value: &str) -> &mut Self {
        if !value.is_empty() {
            if !self.first {
                self.out.put(",");
            }
            self.first = false;
            self.out.put(key);
            self.out.put(value);
        }
        self
    }

    fn close(self) {
        self.out.put("}");
    }
}

/// What every batch of one context shares: its body header and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchContext {
    /// `{"client_name":…,"visitors":[`
    pub header: String,
    /// The `$opt_bot_filtering` value (`true`/`false`) when `botFiltering` is a boolean.
    pub bot_filtering: Option<&'static str>,
    /// `true` when `context.region` is `EU`.
    pub eu: bool,
}

impl BatchContext {
    /// Builds the shared part of a batch from the eight packed context fields.
    pub fn new(context: &str) -> BatchContext {
        let mut f = [""; ctx::COUNT];
        split(context, &mut f);
        let mut header = String::new();
        let mut o = Object::open(&mut header);
        o.member("\"client_name\":", f[ctx::CLIENT_NAME])
            .member("\"client_version\":", f[ctx::CLIENT_VERSION])
            .member("\"account_id\":", f[ctx::ACCOUNT_ID])
            .member("\"project_id\":", f[ctx::PROJECT_ID])
            .member("\"revision\":", f[ctx::REVISION])
            .member("\"anonymize_ip\":", f[ctx::ANONYMIZE_IP])
            .member("\"enrich_decisions\":", "true")
            .member("\"visitors\":", "[");
        let bot_filtering = match f[ctx::BOT_FILTERING] {
            "true" => Some("true"),
            "false" => Some("false"),
            _ => None,
        };
        BatchContext {
            header,
            bot_filtering,
            eu: f[ctx::REGION] == "\"EU\"",
        }
    }

    /// The default endpoint for this context's region.
    pub fn endpoint(&self) -> &'static str {
        if self.eu {
            EU_ENDPOINT
        } else {
            US_ENDPOINT
        }
    }

    /// Size of a body holding only a visitor of `visitor_bytes`.
    pub fn single_body_bytes(&self, visitor_bytes: usize) -> usize {
        self.header.len() + visitor_bytes + BODY_TAIL.len()
    }
}

/// 64-bit FNV-1a of `bytes`: the core's one hash (visitor ids, context keys). Not
/// DoS-resistant, and need not be: a collision only makes a batch wait behind one it
/// need not, or costs a string comparison; SipHash costs code size and time.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.finish()
}

/// FNV-1a as a [`Hasher`] (see [`fnv1a`]).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The key that decides which events may share a batch: the context fields with
/// the region normalized as the SDK's `areEventContextsEqual` does (`region || 'US'`).
pub fn context_key(context: &str) -> String {
    let (region, rest) = context.split_once(SEP).unwrap_or((context, ""));
    let region = if Token::is_truthy(region) {
        region
    } else {
        "\"US\""
    };
    let mut key = String::with_capacity(region.len() + 1 + rest.len());
    key.push_str(region);
    key.push(SEP);
    key.push_str(rest);
    key
}

/// Writes one visitor (`{"snapshots":[…],"visitor_id":…,"attributes":[…]}`) from its
/// packed data fields.
pub fn write_visitor<S: Sink>(out: &mut S, ctx: &BatchContext, kind: Kind, fields: &str) {
    let mut d = [""; data::MAX];
    split(fields, &mut d);
    write_fields(out, ctx, kind, &d);
}

/// [`write_visitor`] of data fields already split.
pub fn write_fields<S: Sink>(out: &mut S, ctx: &BatchContext, kind: Kind, d: &[&str; data::MAX]) {
    write_fields_with(out, ctx, kind, d, |out| {
        write_attributes(out, d[data::ATTRIBUTES])
    });
}

/// [`write_fields`], with the attribute list (without the bot-filtering one) written
/// by `attributes`, which says whether it wrote any.
fn write_fields_with<S: Sink>(
    out: &mut S,
    ctx: &BatchContext,
    kind: Kind,
    d: &[&str; data::MAX],
    attributes: impl FnOnce(&mut S) -> bool,
) {
    out.put("{\"snapshots\":[");
    match kind {
        Kind::Impression => write_decision(out, d),
        Kind::Conversion => write_conversion(out, d),
    }
    out.put("],\"visitor_id\":");
    out.put(d[data::USER_ID]);
    out.put(",\"attributes\":[");
    let any = attributes(out);
    if let Some(value) = ctx.bot_filtering {
        if any {
            out.put(",");
        }
        out.put(BOT_FILTERING_ATTRIBUTE);
        out.put(value);
        out.put("}");
    }
    out.put("]}");
}

/// The parts of an attribute object around its three values.
const ATTRIBUTE_PARTS: [&str; 4] = [
    "{\"entity_id\":",
    ",\"key\":",
    ",\"type\":\"custom\",\"value\":",
    "}",
];

/// Writes the attribute objects of a packed attribute field, joined by commas; returns
/// whether it wrote any.
fn write_attributes<S: Sink>(out: &mut S, field: &str) -> bool {
    let mut first = true;
    if !field.is_empty() {
        let mut tokens = Fields::new(field, SUB);
        while let Some([id, key, value]) = tokens.next_three() {
            if !first {
                out.put(",");
            }
            first = false;
            if id.is_empty() || key.is_empty() || value.is_empty() {
                let mut o = Object::open(out);
                o.member("\"entity_id\":", id)
                    .member("\"key\":", key)
                    .member("\"type\":", "\"custom\"")
                    .member("\"value\":", value);
                o.close();
            } else {
                // All three present (what validation lets in): no per-member checks.
                let [open, key_part, value_part, close] = ATTRIBUTE_PARTS;
                out.put(open);
                out.put(id);
                out.put(key_part);
                out.put(key);
                out.put(value_part);
                out.put(value);
                out.put(close);
            }
        }
    }
    !first
}

/// `variation_id` is kept only when it is made of digits (the SDK's `normalizeVariationId`).
fn numeric_id(id: &str) -> &str {
    let digits = id
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(id);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        id
    } else {
        "null"
    }
}

fn write_decision<S: Sink>(out: &mut S, d: &[&str; data::MAX]) {
    let layer = d[data::LAYER_ID];
    let experiment = d[data::EXPERIMENT_ID];
    let campaign = if Token::is_truthy(layer) {
        layer
    } else if Token::is_truthy(experiment) {
        experiment
    } else {
        "null"
    };
    let experiment = if Token::is_present(experiment) {
        experiment
    } else {
        "\"\""
    };
    let variation_key = if d[data::VARIATION_PRESENT].is_empty() {
        "\"\""
    } else {
        d[data::VARIATION_KEY]
    };
    out.put("{\"decisions\":[{\"campaign_id\":");
    out.put(campaign);
    out.put(",\"experiment_id\":");
    out.put(experiment);
    out.put(",\"variation_id\":");
    out.put(numeric_id(d[data::VARIATION_ID]));
    out.put(",\"metadata\":");
    let mut m = Object::open(out);
    m.member("\"flag_key\":", d[data::FLAG_KEY])
        .member("\"rule_key\":", d[data::RULE_KEY])
        .member("\"rule_type\":", d[data::RULE_TYPE])
        .member("\"variation_key\":", variation_key)
        .member("\"enabled\":", d[data::ENABLED])
        .member("\"cmab_uuid\":", d[data::CMAB_UUID]);
    m.close();
    out.put("}],\"events\":[{\"entity_id\":");
    out.put(campaign);
    out.put(",\"timestamp\":");
    out.put(d[data::TIMESTAMP]);
    out.put(",\"key\":\"campaign_activated\",\"uuid\":");
    out.put(d[data::UUID]);
    out.put("}]}");
}

fn write_conversion<S: Sink>(out: &mut S, d: &[&str; data::MAX]) {
    out.put("{\"events\":[");
    let mut e = Object::open(out);
    e.member("\"entity_id\":", d[data::EVENT_ID])
        .member("\"key\":", d[data::EVENT_KEY])
        .member("\"timestamp\":", d[data::TIMESTAMP])
        .member("\"uuid\":", d[data::UUID]);
    for (key, value) in [
        ("\"tags\":", d[data::TAGS]),
        ("\"value\":", d[data::VALUE]),
        ("\"revenue\":", d[data::REVENUE]),
    ] {
        if Token::is_present(value) {
            e.member(key, value);
        }
    }
    e.close();
    out.put("]}");
}

/// Size in bytes of one rendered visitor, from its data fields already split, of a
/// validated event with `attributes` attributes (see [`super::packed::Parsed`]).
///
/// Measured by the writer itself, but for the attribute list: validation has checked
/// its shape (three non-empty tokens per attribute), so its size follows from the
/// field's length, without splitting it again (one scan of it fewer per event; the
/// render's debug assertion and the tests compare the two).
pub fn visitor_bytes(
    ctx: &BatchContext,
    kind: Kind,
    d: &[&str; data::MAX],
    attributes: usize,
) -> usize {
    let mut c = Counter::default();
    write_fields_with(&mut c, ctx, kind, d, |c| {
        if attributes == 0 {
            return false;
        }
        // The tokens (the field but its 3n - 1 SUBs), n objects around them, n - 1 commas.
        let parts: usize = ATTRIBUTE_PARTS.iter().map(|p| p.len()).sum();
        c.0 += d[data::ATTRIBUTES].len() + attributes * parts - 2 * attributes;
        true
    });
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measure(c: &BatchContext, kind: Kind, fields: &str) -> usize {
        let mut d = [""; data::MAX];
        split(fields, &mut d);
        let attributes = Fields::new(d[data::ATTRIBUTES], SUB)
            .filter(|t| !t.is_empty())
            .count()
            / 3;
        visitor_bytes(c, kind, &d, attributes)
    }

    fn context(fields: [&str; 8]) -> String {
        fields.join("\u{1}")
    }

    #[test]
    fn header_keeps_the_sdk_key_order_and_omits_undefined() {
        let c = BatchContext::new(&context([
            "\"EU\"",
            "\"a\"",
            "\"p\"",
            "\"42\"",
            "\"node-sdk\"",
            "",
            "true",
            "false",
        ]));
        assert_eq!(
            c.header,
            "{\"client_name\":\"node-sdk\",\"account_id\":\"a\",\"project_id\":\"p\",\"revision\":\"42\",\"anonymize_ip\":true,\"enrich_decisions\":true,\"visitors\":["
        );
        assert_eq!(c.endpoint(), EU_ENDPOINT);
        assert_eq!(c.bot_filtering, Some("false"));
    }

    #[test]
    fn region_defaults_to_us_in_the_context_key() {
        let rest = "\u{1}\"a\"\u{1}\"p\"\u{1}\u{1}\u{1}\u{1}\u{1}";
        assert_eq!(context_key(rest), context_key(&format!("\"US\"{rest}")));
        assert_eq!(
            context_key(&format!("null{rest}")),
            context_key(&format!("\"US\"{rest}"))
        );
        assert_ne!(context_key(&format!("\"EU\"{rest}")), context_key(rest));
        let c = BatchContext::new(&format!("\"eu\"{rest}"));
        assert_eq!(c.endpoint(), US_ENDPOINT);
    }

    #[test]
    fn conversion_renders_tags_value_and_revenue_when_present() {
        let c = BatchContext::new(&context(["", "\"a\"", "\"p\"", "", "", "", "", ""]));
        let fields = [
            "\"u\"",
            "5",
            "\"v\"",
            "",
            "\"e1\"",
            "\"buy\"",
            "100",
            "null",
            "{\"revenue\":100}",
        ]
        .join("\u{1}");
        let mut s = String::new();
        write_visitor(&mut s, &c, Kind::Conversion, &fields);
        assert_eq!(
            s,
            "{\"snapshots\":[{\"events\":[{\"entity_id\":\"e1\",\"key\":\"buy\",\"timestamp\":5,\"uuid\":\"u\",\"tags\":{\"revenue\":100},\"revenue\":100}]}],\"visitor_id\":\"v\",\"attributes\":[]}"
        );
        assert_eq!(measure(&c, Kind::Conversion, &fields), s.len());
    }

    #[test]
    fn impression_follows_the_sdk_decision_rules() {
        let c = BatchContext::new(&context(["", "\"a\"", "\"p\"", "", "", "", "", "true"]));
        // layer "" falls through to the experiment; variation id "abc" is not numeric.
        let fields = [
            "\"u\"",
            "5",
            "\"v\"",
            "\"1\"\u{2}\"k\"\u{2}2",
            "\"\"",
            "\"exp\"",
            "1",
            "\"abc\"",
            "\"var\"",
            "\"rk\"",
            "\"fk\"",
            "\"ab\"",
            "true",
            "",
        ]
        .join("\u{1}");
        let mut s = String::new();
        write_visitor(&mut s, &c, Kind::Impression, &fields);
        assert_eq!(
            s,
            "{\"snapshots\":[{\"decisions\":[{\"campaign_id\":\"exp\",\"experiment_id\":\"exp\",\"variation_id\":null,\"metadata\":{\"flag_key\":\"fk\",\"rule_key\":\"rk\",\"rule_type\":\"ab\",\"variation_key\":\"var\",\"enabled\":true}}],\"events\":[{\"entity_id\":\"exp\",\"timestamp\":5,\"key\":\"campaign_activated\",\"uuid\":\"u\"}]}],\"visitor_id\":\"v\",\"attributes\":[{\"entity_id\":\"1\",\"key\":\"k\",\"type\":\"custom\",\"value\":2},{\"entity_id\":\"$opt_bot_filtering\",\"key\":\"$opt_bot_filtering\",\"type\":\"custom\",\"value\":true}]}"
        );
        assert_eq!(measure(&c, Kind::Impression, &fields), s.len());
    }

    #[test]
    fn missing_experiment_and_variation_become_empty_and_null() {
        let c = BatchContext::new(&context(["", "\"a\"", "\"p\"", "", "", "", "", ""]));
        let fields = [
            "\"u\"", "5", "\"v\"", "", "null", "", "", "", "", "", "", "", "", "",
        ]
        .join("\u{1}");
        let mut s = String::new();
        write_visitor(&mut s, &c, Kind::Impression, &fields);
        assert!(s.contains(
            "{\"campaign_id\":null,\"experiment_id\":\"\",\"variation_id\":null,\"metadata\":{\"variation_key\":\"\"}}"
        ));
    }

    #[test]
    fn numeric_variation_ids_are_kept() {
        assert_eq!(numeric_id("\"123\""), "\"123\"");
        assert_eq!(numeric_id("123"), "123");
        assert_eq!(numeric_id("\"12a\""), "null");
        assert_eq!(numeric_id(""), "null");
        assert_eq!(numeric_id("\"\""), "null");
    }
}
