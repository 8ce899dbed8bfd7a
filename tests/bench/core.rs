//! Criterion benchmark of the sans-IO core alone (no wasm, no JS): packed events in,
//! log-tier bodies out.
//!
//! Run with `cargo bench --bench core`. The `bench` profile inherits the release
//! profile (`opt-level = 3`, LTO), the same settings as the shipped wasm.
//!
//! Groups (every throughput is in events):
//! - `process`: `Processor::process` of 1 000 packed events into one open batch
//!   (validation, context lookup, byte accounting, copy); nothing is sealed.
//! - `pipeline/{10,100}`: steady state. After each `process`, every sealed batch is
//!   taken with `poll_dispatch`, its JSON body written with `body` and the batch
//!   settled at once, as the wasm shell does when the dispatcher answers quickly.
//! - `burst/{10,100}`: 1 000 events processed first, then `flush`, then every batch
//!   taken with `poll_dispatch` and its body written, then every batch settled: what
//!   happens when many batches are sealed before the dispatcher answers (a synchronous
//!   loop in JS, or a slow collector). Compare with `pipeline` to see what the number
//!   of batches held at once costs.
//! - `render/{10,100}`: `body` alone on one sealed batch: the body writer.

#[cfg(not(target_arch = "wasm32"))]
#[path = "../common/mod.rs"]
mod common;

#[cfg(not(target_arch = "wasm32"))]
mod benches {
    use std::hint::black_box;
    use std::time::Duration;

    use batch_event_processor::core::{Config, Outcome, Processor};
    use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};

    use super::common::s;

    const EVENTS: usize = 1_000;
    const NOW: f64 = 1_700_000_000_000.0;
    const SEP: &str = "\u{1}";
    const SUB: &str = "\u{2}";

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn digits(&mut self, len: usize) -> String {
            (0..len)
                .map(|i| char::from(b'0' + (self.below(9) as u8) + u8::from(i == 0)))
                .collect()
        }

        fn uuid(&mut self) -> String {
            let h = format!("{:016x}{:016x}", self.next(), self.next());
            format!(
                "{}-{}-4{}-a{}-{}",
                &h[0..8],
                &h[8..12],
                &h[13..16],
                &h[17..20],
                &h[20..32]
            )
        }
    }

    /// The context of `CONTEXTS[0]` in tests/support/events.mjs, packed.
    fn context() -> String {
        [
            String::new(),
            s("12133785640"),
            s("6460519658291200"),
            s("241"),
            s("node-sdk"),
            s("6.6.1"),
            "true".into(),
            "false".into(),
        ]
        .join(SEP)
    }

    const ATTRIBUTES: [(&str, &str); 6] = [
        ("10401066117", "plan"),
        ("10401066118", "device"),
        ("10401066119", "age"),
        ("10401066120", "is_vip"),
        ("10401066121", "country"),
        ("10401066122", "score"),
    ];

    /// 3 to 5 attributes: strings, numbers and booleans, as the JS glue packs them.
    fn attributes(r: &mut Rng) -> String {
        let n = 3 + r.below(3) as usize;
        let start = r.below(ATTRIBUTES.len() as u64) as usize;
        (0..n)
            .map(|i| {
                let (id, key) = ATTRIBUTES[(start + i) % ATTRIBUTES.len()];
                let value = match r.below(3) {
                    0 => s(["pro", "free", "Zürich", "mobile", "desktop"][r.below(5) as usize]),
                    1 => format!("{}", r.below(10_000)),
                    _ => (r.below(2) == 0).to_string(),
                };
                [s(id), s(key), value].join(SUB)
            })
            .collect::<Vec<_>>()
            .join(SUB)
    }

    /// Packed events in the layout of `src/wasm/js/packer.js`: 60 % impressions, 40 %
    /// conversions with tags and revenue, every one a different visitor.
    fn events(n: usize) -> Vec<String> {
        let mut r = Rng(0x9E37_79B9_7F4A_7C15);
        let ctx = context();
        (0..n)
            .map(|i| {
                let common = [
                    ctx.clone(),
                    s(if i % 5 < 3 { "impression" } else { "conversion" }),
                    s(&r.uuid()),
                    format!("{}", 1_700_000_000_000u64 + i as u64 * 1_000),
                    s(&format!("visitor-{}", r.digits(6))),
                    attributes(&mut r),
                ];
                let tail = if i % 5 < 3 {
                    let exp = format!("exp_{}", r.digits(3));
                    vec![
                        s(&r.digits(11)),
                        s(&r.digits(11)),
                        "1".into(),
                        s(&r.digits(11)),
                        s("treatment"),
                        s(&exp),
                        s(&format!("flag_{}", r.digits(3))),
                        s("feature-test"),
                        "true".into(),
                        String::new(),
                    ]
                } else {
                    let revenue = r.below(100_000);
                    vec![
                        s("15073540046"),
                        s("purchase"),
                        revenue.to_string(),
                        "12.5".into(),
                        format!(
                            "{{\"revenue\":{revenue},\"value\":12.5,\"category\":{},\"quantity\":{}}}",
                            s("shoes"),
                            1 + r.below(5)
                        ),
                    ]
                };
                common.into_iter().chain(tail).collect::<Vec<_>>().join(SEP)
            })
            .collect()
    }

    fn processor(batch_size: usize) -> Processor {
        Processor::new(Config {
            batch_size,
            flush_interval_ms: 3_600_000.0,
            max_queue_size: 1_000_000,
            max_queue_bytes: usize::MAX,
            ..Config::default()
        })
    }

    /// Takes every batch that may go now and settles it as delivered; returns the body
    /// bytes written.
    fn drain_and_settle(p: &mut Processor) -> usize {
        let mut bytes = 0;
        while let Some(d) = p.poll_dispatch(NOW) {
            bytes += black_box(p.body(d.id).map_or(0, |b| b.len()));
            p.on_dispatch_result(d.id, Outcome::Delivered, NOW);
        }
        bytes
    }

    pub fn bench(c: &mut Criterion) {
        let events = events(EVENTS);
        // The events must be valid, or the numbers measure error paths.
        let mut check = processor(10);
        for e in &events {
            assert_eq!(
                check.process(e, NOW),
                Ok(true),
                "invalid packed event: {e:?}"
            );
        }
        check.flush();
        let bytes = drain_and_settle(&mut check);
        assert_eq!(check.stats().dispatched, EVENTS as u64);
        let packed: usize = events.iter().map(String::len).sum();
        println!(
            "{EVENTS} packed events: {} B each on average, {} B of body per event at batch size 10",
            packed / EVENTS,
            bytes / EVENTS
        );

        let mut g = c.benchmark_group("process");
        g.throughput(Throughput::Elements(EVENTS as u64));
        g.bench_function("open batch", |b| {
            b.iter_batched(
                || processor(usize::MAX),
                |mut p| {
                    for e in &events {
                        black_box(p.process(e, NOW).ok());
                    }
                    p
                },
                BatchSize::SmallInput,
            )
        });
        g.finish();

        let mut g = c.benchmark_group("pipeline");
        g.throughput(Throughput::Elements(EVENTS as u64));
        for batch_size in [10, 100] {
            g.bench_with_input(
                BenchmarkId::from_parameter(batch_size),
                &batch_size,
                |b, &bs| {
                    b.iter_batched(
                        || processor(bs),
                        |mut p| {
                            for e in &events {
                                black_box(p.process(e, NOW).ok());
                                drain_and_settle(&mut p);
                            }
                            p.flush();
                            drain_and_settle(&mut p);
                            p
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
        }
        g.finish();

        let mut g = c.benchmark_group("burst");
        g.throughput(Throughput::Elements(EVENTS as u64));
        for batch_size in [10, 100] {
            g.bench_with_input(
                BenchmarkId::from_parameter(batch_size),
                &batch_size,
                |b, &bs| {
                    b.iter_batched(
                        || processor(bs),
                        |mut p| {
                            for e in &events {
                                black_box(p.process(e, NOW).ok());
                            }
                            p.flush();
                            let sent: Vec<u64> =
                                std::iter::from_fn(|| p.poll_dispatch(NOW).map(|d| d.id)).collect();
                            for &id in &sent {
                                black_box(p.body(id));
                            }
                            for id in sent {
                                p.on_dispatch_result(id, Outcome::Delivered, NOW);
                            }
                            p
                        },
                        BatchSize::SmallInput,
                    )
                },
            );
        }
        g.finish();

        let mut g = c.benchmark_group("render");
        for batch_size in [10, 100] {
            g.throughput(Throughput::Elements(batch_size as u64));
            g.bench_with_input(
                BenchmarkId::from_parameter(batch_size),
                &batch_size,
                |b, &bs| {
                    b.iter_batched(
                        || {
                            let mut p = processor(bs);
                            for e in &events[..bs] {
                                p.process(e, NOW).ok();
                            }
                            let id = p.poll_dispatch(NOW).map(|d| d.id);
                            (p, id)
                        },
                        |(p, id)| (id.and_then(|id| p.body(id)), p),
                        BatchSize::SmallInput,
                    )
                },
            );
        }
        g.finish();
    }

    pub fn config() -> Criterion {
        Criterion::default()
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .configure_from_args()
    }
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_group! {
    name = core;
    config = benches::config();
    targets = benches::bench
}

#[cfg(not(target_arch = "wasm32"))]
criterion::criterion_main!(core);

/// The bench needs criterion, a native-only dev-dependency; on wasm32 (compiled by
/// `cargo clippy --target wasm32-unknown-unknown --all-targets`) it is empty.
#[cfg(target_arch = "wasm32")]
fn main() {}
