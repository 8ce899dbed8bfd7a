//! Property tests of the core: random sequences of process / flush / time jumps /
//! dispatch outcomes never lose or duplicate an event, never exceed the queue bound or
//! the payload limit, never mix contexts, never let a retry reorder a visitor's
//! events; and arbitrary input never panics the parser.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::collections::{HashMap, HashSet};

use batch_event_processor::core::{Config, Outcome, Processor, RetryPolicy};
use common::{conversion, impression, uuids, Ctx};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Process {
        visitor: u8,
        project: u8,
        note: usize,
        conversion: bool,
    },
    Flush,
    Advance(u32),
    Settle {
        pick: usize,
        outcome: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, 0u8..3, 0usize..600, any::<bool>()).prop_map(|(visitor, project, note, conversion)| Op::Process { visitor, project, note, conversion }),
        1 => Just(Op::Flush),
        2 => (0u32..40_000).prop_map(Op::Advance),
        5 => (any::<usize>(), 0u8..8).prop_map(|(pick, outcome)| Op::Settle { pick, outcome }),
    ]
}

fn outcome(code: u8) -> Outcome {
    match code {
        0..=2 => Outcome::Delivered,
        3 => Outcome::status(500),
        4 => Outcome::status(400),
        5 => Outcome::status(413),
        6 => Outcome::Failed {
            status: Some(429),
            retry_after_ms: Some(1500.0),
        },
        _ => Outcome::NETWORK_ERROR,
    }
}

const PROJECTS: [&str; 3] = ["p0", "p1", "p2"];

/// The model: what the processor was given and what came out of it.
#[derive(Default)]
struct World {
    accepted: HashMap<String, u8>, // uuid -> project
    delivered: HashSet<String>,
    failed: HashSet<String>,
    in_flight: HashMap<u64, Vec<String>>,
    dropped: u64,
    /// uuid -> (visitor and project, acceptance number). Order is kept per visitor in
    /// one context: events of other contexts never share a batch, so a batch of one
    /// project may be sealed and sent before an earlier event of another.
    order: HashMap<String, (String, usize)>,
    /// Events of batches that failed and wait for a retry (or were split after a 413).
    awaiting: HashSet<String>,
}

impl World {
    fn check(&self, p: &Processor, max_queue: usize) {
        let s = p.stats();
        assert!(s.queued + s.in_flight <= max_queue, "queue bound: {s:?}");
        assert_eq!(
            self.accepted.len() as u64,
            s.dispatched + s.failed + (s.queued + s.in_flight) as u64,
            "accepted = dispatched + failed + pending: {s:?}"
        );
        assert_eq!(self.delivered.len() as u64, s.dispatched);
        assert_eq!(self.failed.len() as u64, s.failed);
        assert_eq!(self.dropped, s.dropped);
        assert!(self.delivered.is_disjoint(&self.failed));
    }

    fn take_dispatches(&mut self, p: &mut Processor, now: f64, max_payload: usize) {
        while let Some(d) = common::poll(p, now) {
            assert!(
                d.body.len() <= max_payload,
                "{} > {max_payload}",
                d.body.len()
            );
            let ids = uuids(&d.body);
            assert_eq!(ids.len(), d.events);
            let projects: HashSet<u8> = ids.iter().map(|u| self.accepted[u]).collect();
            assert_eq!(projects.len(), 1, "a batch mixes contexts");
            let header = format!(
                "\"project_id\":\"{}\"",
                PROJECTS[*projects.iter().next().unwrap() as usize]
            );
            assert!(d.body.contains(&header));
            for u in &ids {
                assert!(
                    !self.delivered.contains(u) && !self.failed.contains(u),
                    "{u} handed out after it settled"
                );
            }
            // A retry never reorders a visitor's events (README "Order"): nothing is
            // handed out while an earlier event of one of its visitors (in its
            // context) waits for a retry.
            for u in &ids {
                let (visitor, n) = &self.order[u];
                for w in &self.awaiting {
                    let (v, m) = &self.order[w];
                    assert!(
                        !(v == visitor && m < n && !ids.contains(w)),
                        "{u} of {visitor} handed out while {w}, accepted before it, waits for a retry"
                    );
                }
            }
            for u in &ids {
                self.awaiting.remove(u);
            }
            self.in_flight.insert(d.id, ids);
        }
        while let Some(f) = p.poll_failure() {
            assert!(f.events > 0);
        }
    }

    fn settle(&mut self, p: &mut Processor, id: u64, outcome: Outcome, now: f64) {
        let ids = self.in_flight.remove(&id).unwrap();
        let failed_before = p.stats().failed;
        let dispatched_before = p.stats().dispatched;
        assert!(p.on_dispatch_result(id, outcome, now));
        if p.stats().dispatched > dispatched_before {
            for u in ids {
                assert!(self.delivered.insert(u.clone()), "{u} delivered twice");
            }
        } else if p.stats().failed > failed_before {
            for u in ids {
                assert!(self.failed.insert(u));
            }
        } else {
            self.awaiting.extend(ids);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn never_loses_duplicates_or_overflows(ops in prop::collection::vec(op(), 1..200), batch_size in 1usize..8, max_queue in 1usize..40) {
        let max_payload = 6000;
        let mut p = Processor::new(Config {
            batch_size,
            flush_interval_ms: 10_000.0,
            max_queue_size: max_queue,
            max_payload_bytes: max_payload,
            retry: RetryPolicy { max_retries: 3, initial_backoff_ms: 100.0, max_backoff_ms: 2000.0 },
            ..Config::default()
        });
        let mut w = World::default();
        let mut now = 0.0;
        let mut n = 0;
        for op in ops {
            match op {
                Op::Process { visitor, project, note, conversion: conv } => {
                    n += 1;
                    let uuid = format!("u{n}");
                    let ctx = Ctx { project: PROJECTS[project as usize], ..Ctx::default() };
                    let visitor = format!("v{visitor}");
                    let event = if conv {
                        conversion(&ctx, &visitor, &uuid, &"ü".repeat(note))
                    } else {
                        impression(&ctx, &visitor, &uuid)
                    };
                    match p.process(&event, now) {
                        Ok(true) => {
                            w.order.insert(uuid.clone(), (format!("{visitor}/{project}"), n));
                            w.accepted.insert(uuid, project);
                        }
                        Ok(false) => w.dropped += 1,
                        Err(e) => panic!("valid event refused: {e}"),
                    }
                }
                Op::Flush => p.flush(),
                Op::Advance(ms) => {
                    now += f64::from(ms);
                    p.handle_timeout(now);
                }
                Op::Settle { pick, outcome: code } => {
                    if !w.in_flight.is_empty() {
                        let mut ids: Vec<u64> = w.in_flight.keys().copied().collect();
                        ids.sort_unstable();
                        let id = ids[pick % ids.len()];
                        w.settle(&mut p, id, outcome(code), now);
                    }
                }
            }
            w.take_dispatches(&mut p, now, max_payload);
            w.check(&p, max_queue);
        }
        // Close and let everything settle: every accepted event ends delivered or failed.
        p.close();
        for _ in 0..10_000 {
            w.take_dispatches(&mut p, now, max_payload);
            if let Some(&id) = w.in_flight.keys().min() {
                w.settle(&mut p, id, Outcome::Delivered, now);
            } else if let Some(t) = p.poll_timeout() {
                now = now.max(t);
                p.handle_timeout(now);
            } else {
                break;
            }
        }
        w.check(&p, max_queue);
        prop_assert!(p.is_idle());
        let settled: HashSet<String> = w.delivered.union(&w.failed).cloned().collect();
        let accepted: HashSet<String> = w.accepted.keys().cloned().collect();
        prop_assert_eq!(settled, accepted);
    }

    /// Arbitrary text (biased towards the separators) never panics the parser or the
    /// processor, and leaves the processor usable.
    #[test]
    fn arbitrary_packed_input_never_panics(s in "[\\x01\\x02\"{}a-z0-9\\-\\.é]{0,200}") {
        let mut p = Processor::new(Config::default());
        let _ = p.process(&s, 0.0);
        p.flush();
        while p.poll_dispatch(0.0).is_some() {}
        prop_assert!(p.process(&impression(&Ctx::default(), "v", "ok"), 0.0).is_ok());
    }

    /// Events assembled from valid JSON tokens in any field either are refused with an
    /// error naming a field, or produce a body that is valid JSON.
    #[test]
    fn accepted_token_soup_renders_valid_json(conv in any::<bool>(), fields in prop::collection::vec(token(), 22)) {
        let (kind, count) = if conv { ("\"conversion\"", 17) } else { ("\"impression\"", 22) };
        let mut all: Vec<String> = fields[..count].to_vec();
        all.insert(8, kind.to_string());
        // Required strings are forced, so that many events pass validation and the
        // rendering of every other field combination is exercised.
        let required: &[usize] = if conv { &[1, 2, 9, 11, 13, 14] } else { &[1, 2, 9, 11] };
        for &i in required {
            if !all[i].starts_with('"') {
                all[i] = format!("\"r{i}\"");
            }
        }
        let event = all.join("\u{1}");
        let mut p = Processor::new(Config::default());
        match p.process(&event, 1.0) {
            Ok(accepted) => {
                prop_assert!(accepted);
                p.flush();
                let d = common::poll(&mut p, 1.0).unwrap();
                let parsed: serde_json::Value = serde_json::from_str(&d.body)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {}", d.body)))?;
                prop_assert_eq!(parsed["enrich_decisions"].as_bool(), Some(true));
            }
            Err(e) => prop_assert!(e.to_string().contains(" must be "), "{}", e),
        }
    }
}

/// A field of a packed event: valid JSON tokens of every kind, or empty (undefined).
/// Strings are the most likely, so that a fair share of events is accepted.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z0-9 éü\\\\\"]{0,12}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        2 => Just(String::new()),
        1 => Just("null".to_string()),
        1 => prop_oneof![Just("true"), Just("false")].prop_map(String::from),
        1 => any::<i32>().prop_map(|n| n.to_string()),
        1 => Just("-1.5e3".to_string()),
        1 => Just("{\"a\":[1,{\"b\":null}]}".to_string()),
        1 => Just("\"1\"\u{2}\"k\"\u{2}2".to_string()),
    ]
}
