//! Builds packed events for native tests, the way the JS glue does.
#![allow(dead_code)]

use batch_event_processor::core::{Dispatch, Processor};

/// JSON string literal.
pub fn s(v: &str) -> String {
    let mut out = String::from("\"");
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The context fields of an event.
#[derive(Clone)]
pub struct Ctx {
    pub region: &'static str,
    pub account: &'static str,
    pub project: &'static str,
    pub bot: &'static str,
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx {
            region: "",
            account: "acct",
            project: "proj",
            bot: "",
        }
    }
}

fn context(c: &Ctx) -> Vec<String> {
    vec![
        if c.region.is_empty() {
            String::new()
        } else {
            s(c.region)
        },
        s(c.account),
        s(c.project),
        s("42"),
        s("node-sdk"),
        s("6.0.0"),
        "false".into(),
        c.bot.to_string(),
    ]
}

/// A packed impression for `visitor` with `uuid`.
pub fn impression(c: &Ctx, visitor: &str, uuid: &str) -> String {
    let mut f = context(c);
    f.extend([
        s("impression"),
        s(uuid),
        "1700000000000".into(),
        s(visitor),
        format!("{}\u{2}{}\u{2}{}", s("111"), s("plan"), s("pro")),
        s("layer-1"),
        s("exp-1"),
        "1".into(),
        s("222"),
        s("treatment"),
        s("exp_key"),
        s("flag"),
        s("feature-test"),
        "true".into(),
        String::new(),
    ]);
    f.join("\u{1}")
}

/// A packed conversion for `visitor` with `uuid` and a `note` tag of `note_len` bytes.
pub fn conversion(c: &Ctx, visitor: &str, uuid: &str, note: &str) -> String {
    let mut f = context(c);
    f.extend([
        s("conversion"),
        s(uuid),
        "1700000000001".into(),
        s(visitor),
        String::new(),
        s("evt-1"),
        s("purchase"),
        "1000".into(),
        String::new(),
        format!("{{\"revenue\":1000,\"note\":{}}}", s(note)),
    ]);
    f.join("\u{1}")
}

/// The event uuids in a batch body, in order.
pub fn uuids(body: &str) -> Vec<String> {
    body.split("\"uuid\":\"")
        .skip(1)
        .map(|r| r.split('"').next().unwrap_or_default().to_string())
        .collect()
}

/// A batch handed out, with the body the JS layer writes when it sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// As in [`Dispatch`].
    pub id: u64,
    /// As in [`Dispatch`].
    pub url: String,
    /// [`Processor::body`] of the batch, right after it was handed out.
    pub body: String,
    /// As in [`Dispatch`].
    pub events: usize,
    /// As in [`Dispatch`].
    pub first_attempt: bool,
}

/// `d` with its body, as sent.
pub fn sent(p: &Processor, d: Dispatch) -> Sent {
    let body = p.body(d.id).expect("a batch just handed out has a body");
    Sent {
        id: d.id,
        url: d.url,
        body,
        events: d.events,
        first_attempt: d.first_attempt,
    }
}

/// The next batch the processor hands out now, with its body.
pub fn poll(p: &mut Processor, now: f64) -> Option<Sent> {
    let d = p.poll_dispatch(now)?;
    Some(sent(p, d))
}

/// Every batch the processor hands out now, with their bodies.
pub fn drain(p: &mut Processor, now: f64) -> Vec<Sent> {
    std::iter::from_fn(|| poll(p, now)).collect()
}

/// [`Processor::drain_for_unload`], with the bodies.
pub fn unload(p: &mut Processor, max_body: usize) -> Vec<Sent> {
    let out = p.drain_for_unload(max_body);
    out.into_iter().map(|d| sent(p, d)).collect()
}
