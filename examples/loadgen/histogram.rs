//! A latency histogram: log-linear buckets (64 per power of two, so about 1.5% precision),
//! fixed size, cheap to record into and to merge. Values are nanoseconds.

use std::time::Duration;

/// Sub-buckets per power of two, as a bit count.
const SUB_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BITS;
/// Enough buckets for any `u64`.
const BUCKETS: usize = (64 - SUB_BITS as usize + 1) * SUB_BUCKETS;

/// Counts of nanosecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: vec![0; BUCKETS], total: 0, max: 0 }
    }
}

fn index_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = ((value >> shift) as usize) & (SUB_BUCKETS - 1);
    (shift as usize + 1) * SUB_BUCKETS + sub
}

/// The smallest value that falls into bucket `index`.
fn lower_bound_of(index: usize) -> u64 {
    let (bucket, sub) = (index / SUB_BUCKETS, (index % SUB_BUCKETS) as u64);
    if bucket == 0 { sub } else { (SUB_BUCKETS as u64 + sub) << (bucket - 1) }
}

impl Histogram {
    pub fn record(&mut self, nanos: u64) {
        self.counts[index_of(nanos)] += 1;
        self.total += 1;
        self.max = self.max.max(nanos);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0.5 for the median), to the bucket's precision.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(lower_bound_of(index).min(self.max));
            }
        }
        Duration::from_nanos(self.max)
    }

    pub fn max(&self) -> Duration {
        Duration::from_nanos(self.max)
    }

    /// "p50 1.23 ms, p90 …, p99 …, max …".
    pub fn summary(&self) -> String {
        format!(
            "p50 {}, p90 {}, p99 {}, max {}",
            millis(self.quantile(0.50)),
            millis(self.quantile(0.90)),
            millis(self.quantile(0.99)),
            millis(self.max()),
        )
    }
}

/// A duration in milliseconds with three decimals.
pub fn millis(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut previous = 0;
        for value in (0..1_000_000u64).step_by(7).chain([u64::MAX / 2, u64::MAX]) {
            let index = index_of(value);
            assert!(index >= previous && index < BUCKETS);
            previous = index;
            let lower = lower_bound_of(index);
            assert!(lower <= value && value - lower <= value / 64 + 1, "{value} {lower}");
        }
    }

    #[test]
    fn quantiles() {
        let mut histogram = Histogram::default();
        for value in 1..=1000u64 {
            histogram.record(value * 1000);
        }
        let median = histogram.quantile(0.5).as_nanos() as u64;
        assert!((492_000..=500_000).contains(&median), "{median}");
        assert_eq!(histogram.max(), Duration::from_micros(1000));
    }
}
