//! The job: count the primes below a limit, and sum them, by trial division.
//!
//! CPU-bound, no shared state, and split into [`CHUNKS`] ranges of numbers, so any set of
//! workers can take any share of it and the partial results simply add up. The sum makes the
//! result a checksum too: every variant must produce the same `(count, sum)`.

/// How many ranges the numbers below the limit are cut into.
pub const CHUNKS: u64 = 512;

/// A partial or whole result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub sum: u64,
}

impl std::ops::Add for Tally {
    type Output = Tally;
    fn add(self, o: Tally) -> Tally {
        Tally {
            count: self.count + o.count,
            sum: self.sum.wrapping_add(o.sum),
        }
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    if n.is_multiple_of(2) {
        return n == 2;
    }
    let mut d = 3;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 2;
    }
    true
}

/// The primes in chunk `index` of the numbers below `limit`.
pub fn chunk(limit: u64, index: u64) -> Tally {
    let size = limit.div_ceil(CHUNKS);
    let (start, end) = ((index * size).min(limit), ((index + 1) * size).min(limit));
    (start..end)
        .filter(|&n| is_prime(n))
        .fold(Tally::default(), |t, n| t + Tally { count: 1, sum: n })
}

/// Worker `worker` of `workers`'s share: chunks `worker`, `worker + workers`, … (interleaved,
/// so every share holds small and large numbers alike and costs about the same).
pub fn share(limit: u64, worker: u64, workers: u64) -> Tally {
    (worker..CHUNKS)
        .step_by(workers as usize)
        .map(|i| chunk(limit, i))
        .fold(Tally::default(), |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_counts() {
        assert_eq!(
            share(100, 0, 1),
            Tally {
                count: 25,
                sum: 1060
            }
        );
        assert_eq!(share(1_000_000, 0, 1).count, 78_498);
    }

    #[test]
    fn shares_add_up_to_the_whole() {
        let whole = share(200_000, 0, 1);
        for workers in [2, 3, 7] {
            let parts = (0..workers)
                .map(|w| share(200_000, w, workers))
                .fold(Tally::default(), |a, b| a + b);
            assert_eq!(parts, whole, "{workers} workers");
        }
    }
}
