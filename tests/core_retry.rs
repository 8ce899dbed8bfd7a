//! Retries, Retry-After, 413 splits and ordering in the sans-IO core, with simulated time.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use batch_event_processor::core::{Config, FailReason, Outcome, Processor, RetryPolicy};
use common::{drain, impression, uuids, Ctx};

fn processor(batch_size: usize) -> Processor {
    Processor::new(Config {
        batch_size,
        ..Config::default()
    })
}

fn fail(status: u16) -> Outcome {
    Outcome::status(status)
}

#[test]
fn a_failed_batch_is_retried_after_a_jittered_exponential_backoff() {
    let mut p = processor(2);
    let c = Ctx::default();
    p.process(&impression(&c, "v1", "a"), 0.0).unwrap();
    p.process(&impression(&c, "v2", "b"), 0.0).unwrap();
    let first = drain(&mut p, 0.0);
    assert!(first[0].first_attempt);
    let mut now = 0.0;
    for retry in 0..3u32 {
        assert!(p.on_dispatch_result(first[0].id, fail(503), now));
        assert!(drain(&mut p, now).is_empty(), "no retry before the backoff");
        let wake = p.poll_timeout().expect("a retry is scheduled");
        let bound = 500.0 * 2f64.powi(retry as i32);
        assert!(
            wake >= now && wake <= now + bound,
            "retry {retry}: {wake} not in [{now}, {}]",
            now + bound
        );
        now = wake;
        p.handle_timeout(now);
        let again = drain(&mut p, now);
        assert_eq!(again.len(), 1);
        assert!(!again[0].first_attempt);
        assert_eq!(
            again[0].body, first[0].body,
            "the same bytes are sent again"
        );
    }
    assert!(p.on_dispatch_result(first[0].id, Outcome::Delivered, now));
    let s = p.stats();
    assert_eq!(
        (s.dispatched, s.retried, s.failed, s.in_flight),
        (2, 3, 0, 0)
    );
}

#[test]
fn network_errors_timeouts_408_429_and_5xx_are_retried_other_4xx_are_not() {
    for (outcome, retried) in [
        (Outcome::NETWORK_ERROR, true),
        (fail(408), true),
        (fail(429), true),
        (fail(500), true),
        (fail(599), true),
        (fail(400), false),
        (fail(401), false),
        (fail(404), false),
        (fail(422), false),
    ] {
        let mut p = processor(1);
        p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
            .unwrap();
        let d = drain(&mut p, 0.0);
        p.on_dispatch_result(d[0].id, outcome, 0.0);
        if retried {
            assert_eq!(p.stats().in_flight, 1, "{outcome:?}");
            assert!(p.poll_failure().is_none());
        } else {
            assert_eq!(p.stats().failed, 1, "{outcome:?}");
            let f = p.poll_failure().unwrap();
            assert_eq!(f.reason, FailReason::Rejected);
            assert_eq!(f.events, 1);
        }
    }
}

#[test]
fn gives_up_after_max_retries_and_reports_it() {
    let mut p = Processor::new(Config {
        batch_size: 1,
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff_ms: 10.0,
            max_backoff_ms: 10.0,
        },
        ..Config::default()
    });
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let mut now = 0.0;
    let mut attempts = 0;
    loop {
        p.handle_timeout(now);
        let Some(d) = common::poll(&mut p, now) else {
            break;
        };
        attempts += 1;
        p.on_dispatch_result(d.id, fail(500), now);
        now += 10.0;
    }
    assert_eq!(attempts, 3, "the first attempt and two retries");
    let f = p.poll_failure().unwrap();
    assert_eq!(
        (f.status, f.reason),
        (Some(500), FailReason::RetriesExhausted)
    );
    assert_eq!(p.stats().failed, 1);
    assert!(p.is_idle());
}

#[test]
fn retry_disabled_fails_at_once() {
    let mut p = Processor::new(Config {
        batch_size: 1,
        retry: RetryPolicy::DISABLED,
        ..Config::default()
    });
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let d = drain(&mut p, 0.0);
    p.on_dispatch_result(d[0].id, fail(503), 0.0);
    assert_eq!(p.stats().failed, 1);
    assert_eq!(p.poll_timeout(), None);
}

fn retry_after(status: u16, ms: f64) -> Outcome {
    Outcome::Failed {
        status: Some(status),
        retry_after_ms: Some(ms),
    }
}

#[test]
fn retry_after_pauses_the_endpoint_and_counts_as_a_retry() {
    let mut p = processor(1);
    let c = Ctx::default();
    p.process(&impression(&c, "v1", "a"), 0.0).unwrap();
    let d = drain(&mut p, 0.0);
    assert!(p.on_dispatch_result(d[0].id, retry_after(429, 5000.0), 100.0));
    assert_eq!(p.stats().failed, 0);
    // A new batch for the same endpoint is not sent before the pause ends either.
    p.process(&impression(&c, "v2", "b"), 200.0).unwrap();
    assert!(drain(&mut p, 200.0).is_empty());
    assert_eq!(p.poll_timeout(), Some(5100.0));
    p.handle_timeout(5099.0);
    assert!(drain(&mut p, 5099.0).is_empty());
    p.handle_timeout(5100.0);
    let sent: Vec<Vec<String>> = drain(&mut p, 5100.0)
        .iter()
        .map(|d| uuids(&d.body))
        .collect();
    assert_eq!(sent, [vec!["a".to_string()], vec!["b".to_string()]]);
    assert_eq!(p.stats().retried, 1, "the Retry-After wait used a retry");
}

#[test]
fn retry_disabled_and_max_retries_0_hold_for_retry_after_too() {
    for policy in [
        RetryPolicy::DISABLED,
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        },
    ] {
        let mut p = Processor::new(Config {
            batch_size: 1,
            retry: policy,
            ..Config::default()
        });
        p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
            .unwrap();
        let d = drain(&mut p, 0.0);
        assert!(p.on_dispatch_result(d[0].id, retry_after(503, 1000.0), 0.0));
        let s = p.stats();
        assert_eq!(
            (s.failed, s.in_flight, s.queued),
            (1, 0, 0),
            "given up at once"
        );
        let f = p.poll_failure().expect("reported");
        assert_eq!(
            (f.status, f.reason),
            (Some(503), FailReason::RetriesExhausted)
        );
        assert_eq!(p.poll_timeout(), None, "nothing waits");
    }
}

#[test]
fn retry_after_waits_count_toward_giving_up() {
    let mut p = Processor::new(Config {
        batch_size: 1,
        retry: RetryPolicy {
            max_retries: 3,
            ..RetryPolicy::default()
        },
        ..Config::default()
    });
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let mut now = 0.0;
    let mut sends = 0;
    while let Some(d) = common::poll(&mut p, now) {
        sends += 1;
        assert!(sends <= 4, "sent more than 1 + max_retries times");
        p.on_dispatch_result(d.id, retry_after(429, 1000.0), now);
        if let Some(wake) = p.poll_timeout() {
            now = wake;
            p.handle_timeout(now);
        }
    }
    assert_eq!(sends, 4);
    let s = p.stats();
    assert_eq!((s.failed, s.retried, s.in_flight), (1, 3, 0));
}

#[test]
fn a_retry_after_of_0_or_in_the_past_waits_at_least_the_backoff() {
    // The backoff the processor would have used: the same jitter sequence.
    let seed = Config::default().jitter_seed;
    let policy = RetryPolicy::default();
    let mut jitter = batch_event_processor::core::retry::Jitter::new(seed);
    let mut p = processor(1);
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let mut now = 0.0;
    for (retry, asked) in [0.0, -60_000.0, 0.0, 0.0].into_iter().enumerate() {
        let d = drain(&mut p, now);
        assert_eq!(d.len(), 1, "retry {retry}");
        p.on_dispatch_result(d[0].id, retry_after(503, asked), now);
        let backoff = policy.backoff_ms(retry as u32, jitter.next_unit());
        assert!(backoff > 0.0);
        assert_eq!(p.poll_timeout(), Some(now + backoff), "retry {retry}");
        assert!(drain(&mut p, now).is_empty(), "not re-sent at once");
        now += backoff;
        p.handle_timeout(now);
    }
    // A Retry-After longer than the backoff wins.
    let d = drain(&mut p, now);
    p.on_dispatch_result(d[0].id, retry_after(429, 120_000.0), now);
    assert_eq!(p.poll_timeout(), Some(now + 120_000.0));
}

#[test]
fn retry_after_is_capped() {
    let mut p = processor(1);
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let d = drain(&mut p, 0.0);
    let outcome = Outcome::Failed {
        status: Some(503),
        retry_after_ms: Some(86_400_000.0),
    };
    p.on_dispatch_result(d[0].id, outcome, 0.0);
    assert_eq!(p.poll_timeout(), Some(300_000.0));
}

#[test]
fn a_413_splits_the_batch_recursively_and_a_single_event_fails() {
    let mut p = processor(4);
    let c = Ctx::default();
    for (i, u) in ["a", "b", "c", "d"].iter().enumerate() {
        p.process(&impression(&c, &format!("v{i}"), u), 0.0)
            .unwrap();
    }
    let mut delivered = Vec::new();
    let mut failures = 0;
    while let Some(d) = common::poll(&mut p, 0.0) {
        if d.events == 1 && uuids(&d.body) == ["a"] {
            p.on_dispatch_result(d.id, fail(413), 0.0);
            failures += 1;
        } else if d.events > 1 {
            p.on_dispatch_result(d.id, fail(413), 0.0);
        } else {
            delivered.extend(uuids(&d.body));
            p.on_dispatch_result(d.id, Outcome::Delivered, 0.0);
        }
    }
    assert_eq!(failures, 1);
    assert_eq!(delivered, ["b", "c", "d"], "halves keep the order");
    let f = p.poll_failure().unwrap();
    assert_eq!(
        (f.status, f.reason, f.events),
        (Some(413), FailReason::TooLarge, 1)
    );
    let s = p.stats();
    assert_eq!((s.dispatched, s.failed, s.in_flight), (3, 1, 0));
}

#[test]
fn a_retrying_batch_does_not_block_other_visitors_but_keeps_a_visitors_order() {
    let mut p = processor(1);
    let c = Ctx::default();
    p.process(&impression(&c, "alice", "a1"), 0.0).unwrap();
    let a1 = drain(&mut p, 0.0);
    p.on_dispatch_result(a1[0].id, fail(500), 0.0);
    p.process(&impression(&c, "bob", "b1"), 1.0).unwrap();
    p.process(&impression(&c, "alice", "a2"), 1.0).unwrap();
    let now_sent: Vec<Vec<String>> = drain(&mut p, 1.0).iter().map(|d| uuids(&d.body)).collect();
    assert_eq!(
        now_sent,
        [vec!["b1".to_string()]],
        "bob goes, alice's a2 waits behind a1"
    );
    let wake = p.poll_timeout().unwrap();
    p.handle_timeout(wake);
    let retry = drain(&mut p, wake);
    assert_eq!(uuids(&retry[0].body), ["a1"]);
    assert_eq!(retry.len(), 1, "a2 still waits for a1 to settle");
    p.on_dispatch_result(retry[0].id, Outcome::Delivered, wake);
    assert_eq!(uuids(&drain(&mut p, wake)[0].body), ["a2"]);
}

#[test]
fn batches_in_flight_at_once_do_not_wait_for_each_other() {
    let mut p = processor(1);
    let c = Ctx::default();
    p.process(&impression(&c, "alice", "a1"), 0.0).unwrap();
    p.process(&impression(&c, "alice", "a2"), 0.0).unwrap();
    assert_eq!(drain(&mut p, 0.0).len(), 2);
}

#[test]
fn what_order_is_not_kept_two_sends_of_a_visitor_in_flight_together_are_independent() {
    // The README's "Order" paragraph, precisely: a retry never lets a visitor's later
    // batch go first, but two batches of one visitor already in flight together are
    // independent requests: if the first fails and the second succeeds, the second's
    // events arrive first (events carry their timestamps).
    let mut p = processor(1);
    let c = Ctx::default();
    p.process(&impression(&c, "alice", "a1"), 0.0).unwrap();
    p.process(&impression(&c, "alice", "a2"), 0.0).unwrap();
    let sent = drain(&mut p, 0.0);
    assert_eq!(sent.len(), 2);
    p.on_dispatch_result(sent[0].id, fail(500), 0.0);
    p.on_dispatch_result(sent[1].id, Outcome::Delivered, 0.0);
    assert_eq!(p.stats().dispatched, 1, "a2 arrived before a1");
    // From here on the failed a1 holds back alice's later batches until it settles.
    p.process(&impression(&c, "alice", "a3"), 0.0).unwrap();
    assert!(drain(&mut p, 0.0).is_empty());
}

#[test]
fn events_waiting_for_a_retry_count_against_max_queue_size() {
    let mut p = Processor::new(Config {
        batch_size: 2,
        max_queue_size: 2,
        ..Config::default()
    });
    let c = Ctx::default();
    p.process(&impression(&c, "v1", "a"), 0.0).unwrap();
    p.process(&impression(&c, "v2", "b"), 0.0).unwrap();
    let d = drain(&mut p, 0.0);
    p.on_dispatch_result(d[0].id, fail(500), 0.0);
    assert_eq!(p.process(&impression(&c, "v3", "c"), 0.0), Ok(false));
    assert_eq!(p.stats().dropped, 1);
}

#[test]
fn flush_does_not_cut_a_retry_wait_short() {
    let mut p = processor(1);
    p.process(&impression(&Ctx::default(), "v", "a"), 0.0)
        .unwrap();
    let d = drain(&mut p, 0.0);
    p.on_dispatch_result(d[0].id, fail(500), 0.0);
    let wake = p.poll_timeout().unwrap();
    p.flush();
    if wake > 0.0 {
        assert!(drain(&mut p, 0.0).is_empty());
    }
    p.close();
    assert_eq!(p.poll_timeout(), Some(wake));
}

#[test]
fn unload_hands_out_everything_at_once_in_bodies_under_the_limit() {
    let mut p = processor(100);
    let c = Ctx::default();
    p.process(&common::conversion(&c, "zed", "failed", ""), 0.0)
        .unwrap();
    p.flush();
    let first = drain(&mut p, 0.0);
    p.on_dispatch_result(first[0].id, fail(500), 0.0); // waits for a retry
    for i in 0..40 {
        p.process(
            &common::conversion(&c, "alice", &format!("u{i}"), &"x".repeat(300)),
            0.0,
        )
        .unwrap();
    }
    p.flush();
    let in_flight = drain(&mut p, 0.0);
    assert_eq!(in_flight.len(), 1, "sent, no answer yet when the page goes");
    p.process(&common::conversion(&c, "bob", "late", ""), 1.0)
        .unwrap(); // pending
    let big = common::conversion(&c, "carol", "huge", &"y".repeat(70_000));
    p.process(&big, 1.0).unwrap();
    let out = common::unload(&mut p, 4000);
    let mut seen: Vec<String> = out.iter().flat_map(|d| uuids(&d.body)).collect();
    for d in &out {
        assert!(d.body.len() <= 4000, "{}", d.body.len());
    }
    assert!(out.iter().all(|d| d.first_attempt));
    seen.sort();
    assert_eq!(
        seen,
        ["late"],
        "only what was never sent goes; the batch in flight keeps its request"
    );
    let many = common::unload(&mut p, 4000);
    assert!(many.is_empty(), "nothing is handed out twice");
    // The failed batch stays for a later attempt (it is persisted in a browser), and
    // the event too large for a beacon is left to a normal send.
    assert!(p.on_dispatch_result(in_flight[0].id, Outcome::Delivered, 1.0));
    let wake = p.poll_timeout().unwrap();
    p.handle_timeout(wake);
    let rest = drain(&mut p, wake);
    let mut rest_ids: Vec<String> = rest.iter().flat_map(|d| uuids(&d.body)).collect();
    rest_ids.sort();
    assert_eq!(rest_ids, ["failed", "huge"]);
    for d in out.iter().chain(&rest) {
        p.on_dispatch_result(d.id, Outcome::Delivered, wake);
    }
    assert_eq!(p.stats().dispatched, 43);
    assert!(p.is_idle());
}

#[test]
fn unload_splits_what_is_queued_into_bodies_under_the_limit() {
    let mut p = processor(30);
    let c = Ctx::default();
    for i in 0..40 {
        p.process(
            &common::conversion(&c, "alice", &format!("u{i}"), &"x".repeat(300)),
            0.0,
        )
        .unwrap();
    }
    // 30 sealed by size (ready, not handed out yet) and 10 pending.
    let out = common::unload(&mut p, 4000);
    assert!(out.len() > 2);
    for d in &out {
        assert!(d.body.len() <= 4000, "{}", d.body.len());
    }
    let seen: Vec<String> = out.iter().flat_map(|d| uuids(&d.body)).collect();
    assert_eq!(
        seen,
        (0..40).map(|i| format!("u{i}")).collect::<Vec<_>>(),
        "all, in order"
    );
}

#[test]
fn unload_keeps_batches_queued_behind_a_failed_batch_or_a_paused_endpoint() {
    // Regression: a batch stalled behind its visitor's failed batch was never sent,
    // so it was neither "failed before" nor in flight, and went out in a beacon to the
    // failing collector: lost (the beacon counts as delivered) and ahead of a1.
    let mut p = processor(1);
    let c = Ctx::default();
    p.process(&impression(&c, "alice", "a1"), 0.0).unwrap();
    let a1 = drain(&mut p, 0.0);
    p.on_dispatch_result(a1[0].id, fail(503), 0.0); // waits for a retry
    p.process(&impression(&c, "alice", "a2"), 1.0).unwrap(); // stalled behind a1
    p.process(&impression(&c, "bob", "b1"), 1.0).unwrap(); // free to go
    let out = common::unload(&mut p, 4000);
    let seen: Vec<String> = out.iter().flat_map(|d| uuids(&d.body)).collect();
    assert_eq!(seen, ["b1"], "only bob's batch goes in a beacon");
    for d in &out {
        p.on_dispatch_result(d.id, Outcome::Delivered, 1.0);
    }
    // The page stayed: a1 is retried first, then a2, in order; nothing is lost.
    let wake = p.poll_timeout().unwrap();
    p.handle_timeout(wake);
    let retry = drain(&mut p, wake);
    assert_eq!(retry.len(), 1);
    assert_eq!(uuids(&retry[0].body), ["a1"]);
    p.on_dispatch_result(retry[0].id, Outcome::Delivered, wake);
    let next = drain(&mut p, wake);
    assert_eq!(uuids(&next[0].body), ["a2"]);
    p.on_dispatch_result(next[0].id, Outcome::Delivered, wake);
    assert_eq!(p.stats().dispatched, 3);
    assert!(p.is_idle());

    // Behind a `Retry-After` pause, a batch of another visitor that was never sent
    // stays too: its collector asked for a pause.
    let mut p = processor(1);
    p.process(&impression(&c, "alice", "a1"), 0.0).unwrap();
    let a1 = drain(&mut p, 0.0);
    p.on_dispatch_result(a1[0].id, retry_after(503, 60_000.0), 0.0);
    p.process(&impression(&c, "bob", "b1"), 1.0).unwrap();
    assert!(common::unload(&mut p, 4000).is_empty());
    assert_eq!(p.stats().in_flight, 2, "both kept, unsettled");
}
