//! A tiny benchmark harness shared by the Flextime benchmarks.
//!
//! Each benchmark runs the Flextime path and the raw path it wraps (the raw
//! client, or plain `serde_json`) on the same input in the same process,
//! alternating rounds so both see the same machine state, and prints the
//! median time per operation of each and their ratio. Run them with
//! `cargo bench -p flextime-benches`.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// The result of one side of a comparison.
#[derive(Debug, Clone, Copy)]
pub struct Measurement {
    /// Median nanoseconds per operation over the rounds.
    pub ns_per_op: f64,
}

/// Time `op` for `iters` iterations, `rounds` times, and return the median.
pub fn measure(rounds: usize, iters: u32, mut op: impl FnMut()) -> Measurement {
    let mut samples: Vec<Duration> = (0..rounds.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            start.elapsed()
        })
        .collect();
    samples.sort();
    let median = samples[samples.len() / 2];
    Measurement {
        ns_per_op: median.as_secs_f64() * 1e9 / f64::from(iters.max(1)),
    }
}

/// Run `ours` and `raw` alternately and print a line with both medians and
/// the ratio `raw / ours` (above 1.0: Flextime is faster; the targets in the
/// README are stated as this ratio). Returns the ratio.
pub fn compare(name: &str, iters: u32, mut ours: impl FnMut(), mut raw: impl FnMut()) -> f64 {
    // Warm up both.
    measure(1, iters / 10 + 1, &mut ours);
    measure(1, iters / 10 + 1, &mut raw);
    let mut our_samples = Vec::new();
    let mut raw_samples = Vec::new();
    for _ in 0..7 {
        our_samples.push(measure(1, iters, &mut ours).ns_per_op);
        raw_samples.push(measure(1, iters, &mut raw).ns_per_op);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let o = median(&mut our_samples);
    let r = median(&mut raw_samples);
    let ratio = r / o;
    println!(
        "{name:<40} flextime {o:>10.0} ns/op   raw {r:>10.0} ns/op   ratio (raw/flextime) {ratio:.2}"
    );
    ratio
}

/// Keep a value alive so the optimiser cannot remove the work producing it.
pub fn keep<T>(value: T) {
    black_box(value);
}

/// Each paired round's ratio (two decimals, space separated) and their
/// median, for a line like `paired rounds (flextime/raw): 0.91 0.88 0.95
/// median 0.91`: a pair ran back to back, so a machine whose speed drifts
/// between rounds moves both sides of it together.
pub fn paired_ratios(ratios: &[f64]) -> String {
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    format!(
        "{}   median {:.2}",
        listed.join(" "),
        median(ratios.to_vec())
    )
}

/// The median of `values` (the upper one of an even count; 0 for none).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
