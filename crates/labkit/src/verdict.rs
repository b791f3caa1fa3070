//! Verdicts from measurements, as DESIGN.md defines them.
//!
//! The two variants run in alternating blocks; each block gives one figure (its median latency,
//! or its throughput). The ratio of the two figures is taken pair by pair, oriented so that a
//! ratio above 1 supports the claim. The claim **holds** only when every pair's ratio lies above
//! `1 + MARGIN`, **does not hold** when every pair's lies below `1 / (1 + MARGIN)`, and is
//! **inconclusive** otherwise, or with fewer than [`MIN_PAIRS`] pairs. Noise on a shared machine
//! therefore makes a verdict inconclusive rather than wrong.

use serde::{Deserialize, Serialize};

/// How far from 1 every pair's ratio must lie for a decided verdict.
pub const MARGIN: f64 = 0.03;

/// Fewer block pairs than this can never decide a claim.
pub const MIN_PAIRS: usize = 3;

/// A finding about a claim on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Holds,
    DoesNotHold,
    Inconclusive,
}

impl Verdict {
    /// The name used in Reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Holds => "holds",
            Verdict::DoesNotHold => "does-not-hold",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The outcome of comparing two variants block by block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    pub verdict: Verdict,
    /// The median of the per-pair ratios (> 1 supports the claim).
    pub ratio: f64,
    /// The smallest and largest per-pair ratio.
    pub range: [f64; 2],
    /// How many block pairs were compared.
    pub pairs: usize,
}

impl Comparison {
    /// The claim is that `favoured` figures are *lower* than `other` (e.g. latency): ratio
    /// `other / favoured` per pair.
    pub fn expect_lower(favoured: &[f64], other: &[f64]) -> Comparison {
        Self::from_ratios(favoured.iter().zip(other).map(|(f, o)| o / f).collect())
    }

    /// The claim is that `favoured` figures are *higher* than `other` (e.g. throughput): ratio
    /// `favoured / other` per pair.
    pub fn expect_higher(favoured: &[f64], other: &[f64]) -> Comparison {
        Self::from_ratios(favoured.iter().zip(other).map(|(f, o)| f / o).collect())
    }

    /// The finding in words: "`favoured` was x3.10 `better` than `other` (all 5 block pairs
    /// agree)", the other way round, or why there is no verdict.
    pub fn describe(&self, favoured: &str, other: &str, better: &str) -> String {
        let pairs = self.pairs;
        match self.verdict {
            Verdict::Holds => {
                format!(
                    "{favoured} was x{:.2} {better} than {other} (all {pairs} block pairs agree)",
                    self.ratio
                )
            }
            Verdict::DoesNotHold => format!(
                "{other} was x{:.2} {better} than {favoured} (all {pairs} block pairs agree)",
                1.0 / self.ratio
            ),
            Verdict::Inconclusive if pairs < MIN_PAIRS => {
                format!(
                    "too few block pairs ({pairs}) to say whether {favoured} or {other} was {better}"
                )
            }
            Verdict::Inconclusive => format!(
                "neither {favoured} nor {other} was {better} in every block pair (pairs from x{:.2} to x{:.2})",
                self.range[0], self.range[1]
            ),
        }
    }

    /// The comparison of ratios already oriented so that > 1 supports the claim (per block
    /// pair, or per run of a bench).
    pub fn from_ratios(mut ratios: Vec<f64>) -> Comparison {
        ratios.retain(|r| r.is_finite());
        ratios.sort_by(f64::total_cmp);
        let pairs = ratios.len();
        if pairs == 0 {
            return Comparison {
                verdict: Verdict::Inconclusive,
                ratio: 1.0,
                range: [1.0, 1.0],
                pairs,
            };
        }
        let ratio = if pairs % 2 == 1 {
            ratios[pairs / 2]
        } else {
            (ratios[pairs / 2 - 1] + ratios[pairs / 2]) / 2.0
        };
        let (lo, hi) = (ratios[0], ratios[pairs - 1]);
        let verdict = if pairs < MIN_PAIRS {
            Verdict::Inconclusive
        } else if lo > 1.0 + MARGIN {
            Verdict::Holds
        } else if hi < 1.0 / (1.0 + MARGIN) {
            Verdict::DoesNotHold
        } else {
            Verdict::Inconclusive
        };
        Comparison {
            verdict,
            ratio,
            range: [lo, hi],
            pairs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator: figures around `centre` with ±`spread` relative noise.
    fn samples(seed: u64, n: usize, centre: f64, spread: f64) -> Vec<f64> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let unit = (state >> 11) as f64 / (1u64 << 53) as f64; // in [0, 1)
                centre * (1.0 + spread * (2.0 * unit - 1.0))
            })
            .collect()
    }

    #[test]
    fn one_distribution_twice_is_inconclusive() {
        // Many seeds, so the test is about the rule, not one lucky draw.
        for seed in 0..50 {
            let a = samples(seed, 7, 10_000.0, 0.10);
            let b = samples(seed + 1000, 7, 10_000.0, 0.10);
            let c = Comparison::expect_lower(&a, &b);
            assert_eq!(c.verdict, Verdict::Inconclusive, "seed {seed}: {c:?}");
        }
    }

    #[test]
    fn clearly_separated_samples_hold() {
        let threads = samples(1, 5, 4_000.0, 0.10);
        let processes = samples(2, 5, 12_000.0, 0.10);
        let c = Comparison::expect_lower(&threads, &processes);
        assert_eq!(c.verdict, Verdict::Holds, "{c:?}");
        assert!(c.ratio > 2.0 && c.range[0] <= c.ratio && c.ratio <= c.range[1]);
    }

    #[test]
    fn the_other_way_round_does_not_hold() {
        let fast = samples(3, 5, 900.0, 0.05);
        let slow = samples(4, 5, 300.0, 0.05);
        // Claimed: `fast` has the higher throughput; the figures say the opposite.
        assert_eq!(
            Comparison::expect_higher(&slow, &fast).verdict,
            Verdict::DoesNotHold
        );
        assert_eq!(
            Comparison::expect_higher(&fast, &slow).verdict,
            Verdict::Holds
        );
    }

    #[test]
    fn the_finding_reads_the_right_way_round() {
        let holds = Comparison::expect_lower(&[1.0; 5], &[3.0; 5]);
        assert_eq!(
            holds.describe("a", "b", "faster"),
            "a was x3.00 faster than b (all 5 block pairs agree)"
        );
        let not = Comparison::expect_lower(&[4.0; 5], &[2.0; 5]);
        assert_eq!(
            not.describe("a", "b", "faster"),
            "b was x2.00 faster than a (all 5 block pairs agree)"
        );
        assert!(
            Comparison::expect_lower(&[1.0], &[3.0])
                .describe("a", "b", "faster")
                .contains("too few")
        );
    }

    #[test]
    fn too_few_pairs_never_decide() {
        let c = Comparison::expect_lower(&[1.0, 1.0], &[10.0, 10.0]);
        assert_eq!(c.verdict, Verdict::Inconclusive);
        assert_eq!(c.pairs, 2);
        assert_eq!(
            Comparison::expect_lower(&[], &[]).verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn one_pair_on_the_other_side_makes_it_inconclusive() {
        let favoured = [1.0, 1.0, 1.0, 1.0, 1.2];
        let other = [2.0, 2.0, 2.0, 2.0, 1.0];
        assert_eq!(
            Comparison::expect_lower(&favoured, &other).verdict,
            Verdict::Inconclusive
        );
    }
}
