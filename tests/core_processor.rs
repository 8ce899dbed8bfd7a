//! The sans-IO processor, driven with simulated time.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use batch_event_processor::core::{Config, Error, Outcome, Processor};
use common::{conversion, impression, uuids, Ctx, Sent};

fn drain(p: &mut Processor) -> Vec<Sent> {
    common::drain(p, 0.0)
}

#[test]
fn a_body_is_written_when_asked_the_same_each_time_until_the_batch_settles() {
    let mut p = Processor::new(Config {
        batch_size: 2,
        ..Config::default()
    });
    let c = Ctx::default();
    p.process(&impression(&c, "v1", "a"), 0.0).unwrap();
    p.process(&impression(&c, "v2", "b"), 0.0).unwrap();
    let d = p.poll_dispatch(0.0).expect("a full batch is handed out");
    let body = p.body(d.id).expect("an in-flight batch has a body");
    assert_eq!(uuids(&body), ["a", "b"]);
    assert_eq!(p.body(d.id).as_deref(), Some(body.as_str()));
    assert_eq!(p.url(d.id), Some(d.url.as_str()));
    assert!(p.on_dispatch_result(d.id, Outcome::Delivered, 1.0));
    assert_eq!(p.body(d.id), None, "a delivered batch is gone");
    assert_eq!(p.url(d.id), None);
    assert_eq!(p.stats().bytes_sent, body.len() as u64);
}

#[test]
fn sends_a_batch_when_batch_size_is_reached() {
    let mut p = Processor::new(Config {
        batch_size: 3,
        ..Config::default()
    });
    let c = Ctx::default();
    for i in 0..2 {
        assert_eq!(
            p.process(&impression(&c, &format!("u{i}"), &format!("u{i}")), 0.0),
            Ok(true)
        );
    }
    assert!(p.poll_dispatch(0.0).is_none());
    p.process(&impression(&c, "u2", "u2"), 1.0).unwrap();
    let batches = drain(&mut p);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].events, 3);
    assert_eq!(uuids(&batches[0].body), ["u0", "u1", "u2"]);
    assert_eq!(batches[0].url, "https://logx.optimizely.com/v1/events");
    assert_eq!(p.stats().in_flight, 3);
    assert_eq!(p.stats().queued, 0);
}

#[test]
fn sends_a_partial_batch_when_the_flush_interval_passes() {
    let mut p = Processor::new(Config {
        flush_interval_ms: 1000.0,
        ..Config::default()
    });
    let c = Ctx::default();
    assert_eq!(p.poll_timeout(), None);
    p.process(&impression(&c, "a", "a"), 500.0).unwrap();
    p.process(&impression(&c, "b", "b"), 900.0).unwrap();
    // The interval counts from the first event of the batch.
    assert_eq!(p.poll_timeout(), Some(1500.0));
    p.handle_timeout(1499.0);
    assert!(p.poll_dispatch(0.0).is_none());
    p.handle_timeout(1500.0);
    let b = drain(&mut p);
    assert_eq!(b.len(), 1);
    assert_eq!(uuids(&b[0].body), ["a", "b"]);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn never_mixes_contexts_in_a_batch() {
    let mut p = Processor::new(Config {
        batch_size: 2,
        ..Config::default()
    });
    let us = Ctx::default();
    let eu = Ctx {
        region: "EU",
        ..Ctx::default()
    };
    let other = Ctx {
        project: "other",
        ..Ctx::default()
    };
    let bot = Ctx {
        bot: "true",
        ..Ctx::default()
    };
    p.process(&impression(&us, "us1", "us1"), 0.0).unwrap();
    p.process(&impression(&eu, "eu1", "eu1"), 0.0).unwrap();
    p.process(&impression(&other, "o1", "o1"), 0.0).unwrap();
    p.process(&impression(&bot, "b1", "b1"), 0.0).unwrap();
    assert!(p.poll_dispatch(0.0).is_none());
    p.process(&impression(&eu, "eu2", "eu2"), 0.0).unwrap();
    let b = drain(&mut p);
    assert_eq!(b.len(), 1);
    assert_eq!(uuids(&b[0].body), ["eu1", "eu2"]);
    assert_eq!(b[0].url, "https://eu.logx.optimizely.com/v1/events");
    p.flush();
    let rest = drain(&mut p);
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|d| d.events == 1));
}

#[test]
fn an_explicit_us_region_batches_with_no_region() {
    let mut p = Processor::new(Config::default());
    p.process(&impression(&Ctx::default(), "a", "a"), 0.0)
        .unwrap();
    p.process(
        &impression(
            &Ctx {
                region: "US",
                ..Ctx::default()
            },
            "v",
            "b",
        ),
        0.0,
    )
    .unwrap();
    p.flush();
    assert_eq!(drain(&mut p).len(), 1);
}

#[test]
fn splits_batches_that_would_exceed_max_payload_bytes() {
    let max = 4000;
    let mut p = Processor::new(Config {
        batch_size: 1000,
        max_payload_bytes: max,
        ..Config::default()
    });
    let c = Ctx::default();
    // Non-ASCII notes: bytes, not characters, must be counted.
    let note = "é".repeat(300);
    for i in 0..20 {
        p.process(
            &conversion(&c, &format!("u{i}"), &format!("u{i}"), &note),
            0.0,
        )
        .unwrap();
    }
    p.flush();
    let b = drain(&mut p);
    assert!(b.len() > 1);
    let mut all = Vec::new();
    for d in &b {
        assert!(d.body.len() <= max, "{} > {max}", d.body.len());
        // Full batches were sealed because the next event would not fit.
        all.extend(uuids(&d.body));
    }
    assert_eq!(all, (0..20).map(|i| format!("u{i}")).collect::<Vec<_>>());
}

#[test]
fn refuses_an_event_that_cannot_fit_in_any_batch() {
    let mut p = Processor::new(Config {
        max_payload_bytes: 2000,
        ..Config::default()
    });
    let c = Ctx::default();
    let err = p
        .process(&conversion(&c, "big", "big", &"x".repeat(3000)), 0.0)
        .unwrap_err();
    assert!(matches!(err, Error::EventTooLarge { max: 2000, .. }));
    assert!(err.to_string().contains("maxPayloadBytes"));
    assert_eq!(p.stats().queued, 0);
}

#[test]
fn a_full_queue_drops_the_new_event_and_counts_it() {
    let mut p = Processor::new(Config {
        batch_size: 2,
        max_queue_size: 3,
        ..Config::default()
    });
    let c = Ctx::default();
    assert_eq!(p.process(&impression(&c, "a", "a"), 0.0), Ok(true));
    assert_eq!(p.process(&impression(&c, "b", "b"), 0.0), Ok(true)); // in flight now
    assert_eq!(p.process(&impression(&c, "c", "c"), 0.0), Ok(true));
    // Pending + in flight = 3: the bound counts both.
    assert_eq!(p.process(&impression(&c, "d", "d"), 0.0), Ok(false));
    assert_eq!(p.stats().dropped, 1);
    let first = drain(&mut p);
    assert!(p.on_dispatch_result(first[0].id, Outcome::Delivered, 0.0));
    assert_eq!(p.process(&impression(&c, "e", "e"), 0.0), Ok(true));
    let s = p.stats();
    assert_eq!(
        (s.queued, s.in_flight, s.dispatched, s.batches),
        (0, 2, 2, 1)
    );
}

#[test]
fn dispatch_results_update_the_counters_once() {
    let mut p = Processor::new(Config {
        batch_size: 2,
        ..Config::default()
    });
    let c = Ctx::default();
    for i in 0..4 {
        p.process(&impression(&c, &format!("u{i}"), &format!("u{i}")), 0.0)
            .unwrap();
    }
    let b = drain(&mut p);
    assert!(p.on_dispatch_result(b[0].id, Outcome::Delivered, 0.0));
    assert!(p.on_dispatch_result(b[1].id, Outcome::status(400), 0.0));
    assert!(!p.on_dispatch_result(b[1].id, Outcome::Delivered, 0.0));
    let s = p.stats();
    assert_eq!(s.dispatched, 2);
    assert_eq!(s.failed, 2);
    assert_eq!(s.bytes_sent, b[0].body.len() as u64);
    assert!(p.is_idle());
}

#[test]
fn close_flushes_everything_and_refuses_more() {
    let mut p = Processor::new(Config::default());
    let c = Ctx::default();
    p.process(&impression(&c, "a", "a"), 0.0).unwrap();
    p.process(
        &impression(
            &Ctx {
                region: "EU",
                ..c.clone()
            },
            "v",
            "b",
        ),
        0.0,
    )
    .unwrap();
    p.close();
    assert_eq!(drain(&mut p).len(), 2);
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(
        p.process(&impression(&c, "c", "c"), 0.0),
        Err(Error::Closed)
    );
}

#[test]
fn an_invalid_event_leaves_the_queue_intact() {
    let mut p = Processor::new(Config::default());
    let c = Ctx::default();
    p.process(&impression(&c, "a", "a"), 0.0).unwrap();
    let bad = impression(&c, "b", "b").replace("\"acct\"", "17");
    let err = p.process(&bad, 0.0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "context.accountId must be a string, got 17"
    );
    assert!(p.process("garbage", 0.0).is_err());
    assert_eq!(p.stats().queued, 1);
    p.flush();
    assert_eq!(uuids(&drain(&mut p)[0].body), ["a"]);
}

#[test]
fn the_core_never_writes_its_clock_into_an_event() {
    // now_ms is a monotonic clock (performance.now()), not a date: an event's timestamp
    // is the caller's (the glue fills a missing one with Date.now()), and an event
    // without one is refused rather than stamped with now_ms.
    let mut p = Processor::new(Config::default());
    let stamped = conversion(&Ctx::default(), "a", "a", "");
    let missing = stamped.replace("\u{1}1700000000001\u{1}", "\u{1}\u{1}");
    assert_ne!(missing, stamped);
    match p.process(&missing, 1234.5) {
        Err(Error::InvalidEvent { field, .. }) => assert_eq!(field, "timestamp"),
        other => panic!("{other:?}"),
    }
    p.process(&stamped, 1234.5).unwrap();
    p.flush();
    let body = &drain(&mut p)[0].body;
    assert!(body.contains("\"timestamp\":1700000000001,"), "{body}");
    assert!(!body.contains("1234"), "{body}");
}

#[test]
fn bodies_are_valid_wire_format() {
    let mut p = Processor::new(Config::default());
    let c = Ctx {
        bot: "false",
        ..Ctx::default()
    };
    p.process(&impression(&c, "vis\"1", "a"), 0.0).unwrap();
    p.process(&conversion(&c, "vis2", "b", "n"), 0.0).unwrap();
    p.flush();
    let body = &drain(&mut p)[0].body;
    assert!(body.starts_with(
        "{\"client_name\":\"node-sdk\",\"client_version\":\"6.0.0\",\"account_id\":\"acct\",\"project_id\":\"proj\",\"revision\":\"42\",\"anonymize_ip\":false,\"enrich_decisions\":true,\"visitors\":[{\"snapshots\":[{\"decisions\":"
    ));
    assert!(body.contains("\"visitor_id\":\"vis\\\"1\""));
    assert!(body.contains("{\"entity_id\":\"$opt_bot_filtering\",\"key\":\"$opt_bot_filtering\",\"type\":\"custom\",\"value\":false}"));
    assert!(body.ends_with("]}]}"));
}

#[test]
fn batches_version_moves_only_when_a_batch_comes_or_goes() {
    // The browser mirror re-reads the batch list only when this number changed.
    let mut p = Processor::new(Config {
        batch_size: 2,
        ..Config::default()
    });
    let c = Ctx::default();
    let v0 = p.batches_version();
    p.process(&impression(&c, "a", "a"), 0.0).unwrap();
    assert_eq!(p.batches_version(), v0, "a queued event is not a batch");
    p.process(&impression(&c, "b", "b"), 0.0).unwrap();
    let sealed = p.batches_version();
    assert_ne!(sealed, v0);
    let b = drain(&mut p);
    assert_eq!(
        p.batches_version(),
        sealed,
        "handing a batch out keeps it unsettled"
    );
    p.on_dispatch_result(b[0].id, Outcome::Delivered, 1.0);
    assert_ne!(p.batches_version(), sealed);
    assert!(p.unsettled_ids().is_empty());
}
