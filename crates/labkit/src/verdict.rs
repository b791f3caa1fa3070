//! Verdicts from measurements: one rule, inside a run and across the runs of a bench.
//!
//! The two contenders run in alternating blocks; each block gives one figure (its median
//! latency, or its throughput). A [`Test`] carries those figures, side by side, and what the
//! claim expects of them (which side should be lower or higher, by what margin). Each block
//! pair gives one ratio, oriented so that a ratio above 1 supports the claim.
//!
//! The rule ([`Test::judge`]): take the distribution-free confidence interval for the median
//! pair ratio, from the order statistics of Binomial(n, ½) (the sign-test interval): with `n`
//! pairs sorted, `[x(k), x(n+1-k)]` covers the median with probability `1 - 2·P(B ≤ k-1)`, and
//! `k` is the largest that keeps this at [`CONFIDENCE`] or more. Six pairs are the fewest that
//! reach 95% (`[min, max]`, 96.9%); with fewer (a `--quick` run), the interval is `[min, max]`
//! at the lower confidence it reaches, and the finding says so.
//!
//! * **holds** when the interval lies wholly above the margin (default [`MARGIN`], x1.03);
//! * **does not hold** when it lies wholly below the margin, saying where: *the opposite*
//!   (wholly below x1/1.03), *no difference* (wholly inside x1/1.03..x1.03), or *less than the
//!   margin* (otherwise);
//! * **inconclusive** otherwise, or with fewer than [`MIN_PAIRS`] pairs, saying why.
//!
//! A bench pools the block figures of every run that passed its checks ([`Test::pooled`]) and
//! applies the same function, so the evidence it prints comes from the very figures that decided.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The margin a ratio must clear, by default: x1.03.
pub const MARGIN: f64 = 1.03;

/// The confidence the interval aims for.
pub const CONFIDENCE: f64 = 0.95;

/// Fewer block pairs than this never decide (two pairs: `[min, max]` is a 50% interval).
pub const MIN_PAIRS: usize = 3;

/// Block pairs per contender that reach [`CONFIDENCE`] in one run: `[min, max]` of 6 is 96.9%.
pub const PAIRS_FOR_CONFIDENCE: usize = 6;

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

/// Which way the figures must go for the claim to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// Latency, cost, size: the favoured side's figures should be lower.
    Lower,
    /// Throughput, speed-up: the favoured side's figures should be higher.
    Higher,
}

/// One contender of a comparison: what it is, and one figure per block, in run order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    pub label: String,
    pub blocks: Vec<f64>,
}

/// The raw material of a measured finding: two sides' block figures and what the claim expects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    /// What was compared, e.g. "round trip of 64 B, both sides on one CPU".
    pub what: String,
    /// The unit of the block figures (`ns`, `MiB/s`, `KiB`, `req/s`).
    pub unit: String,
    pub better: Better,
    /// The word for "better" here: "faster", "cheaper", "smaller".
    pub word: String,
    /// The side the claim favours.
    pub favoured: Side,
    pub other: Side,
    /// The factor the median pair ratio must clear (x1.03 unless the topic sets its own).
    pub margin: f64,
}

/// Why a verdict came out as it did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Why {
    /// The interval lies wholly above the margin.
    AboveMargin,
    /// The interval lies wholly below x1/1.03: the other side is better.
    Opposite,
    /// The interval lies wholly inside x1/1.03..x1.03.
    NoDifference,
    /// The interval lies below the margin, but neither of the two above.
    LessThanMargin,
    /// The interval spans the margin.
    SpansMargin,
    /// Fewer than [`MIN_PAIRS`] pairs.
    TooFewPairs,
}

/// What the rule made of a [`Test`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub why: Why,
    /// The median of the oriented pair ratios (> 1 supports the claim).
    pub ratio: f64,
    /// The confidence interval for that median.
    pub interval: [f64; 2],
    /// The probability that the interval covers the median pair ratio.
    pub confidence: f64,
    /// How many block pairs were compared.
    pub pairs: usize,
}

impl Test {
    /// A comparison with the default margin.
    pub fn new(what: impl Into<String>, unit: &str, better: Better, word: &str) -> Test {
        Test {
            what: what.into(),
            unit: unit.to_owned(),
            better,
            word: word.to_owned(),
            favoured: Side::default(),
            other: Side::default(),
            margin: MARGIN,
        }
    }

    /// Sets the side the claim favours.
    pub fn favoured(mut self, label: impl Into<String>, blocks: &[f64]) -> Test {
        self.favoured = Side {
            label: label.into(),
            blocks: blocks.to_vec(),
        };
        self
    }

    /// Sets the side it is compared with.
    pub fn other(mut self, label: impl Into<String>, blocks: &[f64]) -> Test {
        self.other = Side {
            label: label.into(),
            blocks: blocks.to_vec(),
        };
        self
    }

    /// Sets a margin of the topic's own (parallel: half the ideal speed-up).
    pub fn margin(mut self, margin: f64) -> Test {
        self.margin = margin;
        self
    }

    /// The block-pair ratios, oriented so that > 1 supports the claim; pairs with a
    /// non-finite ratio (a zero figure) are left out.
    pub fn pairs(&self) -> Vec<f64> {
        self.oriented().map(|(r, ..)| r).collect()
    }

    /// Each block pair as (oriented ratio, favoured, other), without the non-finite ratios.
    fn oriented(&self) -> impl Iterator<Item = (f64, f64, f64)> + '_ {
        let (f, o) = (&self.favoured.blocks, &self.other.blocks);
        f.iter()
            .zip(o)
            .map(|(&f, &o)| match self.better {
                Better::Lower => (o / f, f, o),
                Better::Higher => (f / o, f, o),
            })
            .filter(|(r, ..)| r.is_finite() && *r > 0.0)
    }

    /// The verdict, by the one rule of this module.
    pub fn judge(&self) -> Judgement {
        judge_pairs(self.pairs(), self.margin)
    }

    /// The median block figure of each side: (favoured, other). These are the figures the
    /// evidence quotes.
    pub fn medians(&self) -> (f64, f64) {
        (median(&self.favoured.blocks), median(&self.other.blocks))
    }

    /// The block pair at the median of the pair ratios (the lower of the middle two for an even
    /// count): (favoured, other). Its ratio lies inside the interval, so the figures it shows
    /// always point the way the verdict does, pooled runs or not.
    pub fn median_pair(&self) -> Option<(f64, f64)> {
        let mut pairs: Vec<(f64, f64, f64)> = self.oriented().collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        pairs
            .get(pairs.len().saturating_sub(1) / 2)
            .map(|&(_, f, o)| (f, o))
    }

    /// Which side won, by the median pair ratio: "a was x3.00 faster than b".
    pub fn headline(&self) -> String {
        let ratio = self.judge().ratio;
        let (winner, loser, by) = if ratio >= 1.0 {
            (&self.favoured.label, &self.other.label, ratio)
        } else {
            (&self.other.label, &self.favoured.label, 1.0 / ratio)
        };
        format!("{winner} was x{by:.2} {} than {loser}", self.word)
    }

    /// The evidence, written from the figures that decide: which side won by the median pair
    /// ratio, the median block pair's own figures, the ratio in the claim's favour with its
    /// interval, and where the interval lies.
    pub fn evidence(&self) -> String {
        let j = self.judge();
        let Some((f, o)) = self.median_pair() else {
            return format!("{}: no block pair to compare", self.what);
        };
        let mut s = format!(
            "{}: {} per block pair (median of {} pairs; in the median pair, {} {} vs {} {}); the \
             ratio in the claim's favour is x{:.2}, {} interval x{:.2}..x{:.2}",
            self.what,
            self.headline(),
            j.pairs,
            self.favoured.label,
            format_figure(f, &self.unit),
            self.other.label,
            format_figure(o, &self.unit),
            j.ratio,
            percent(j.confidence),
            j.interval[0],
            j.interval[1],
        );
        if j.confidence < CONFIDENCE {
            let _ = write!(
                s,
                " (lower confidence: {PAIRS_FOR_CONFIDENCE} pairs reach {})",
                percent(CONFIDENCE)
            );
        }
        let _ = write!(s, "; {}", j.reason(self.margin));
        s
    }
}

impl Judgement {
    /// Where the interval lies against the margin, in words.
    pub fn reason(&self, margin: f64) -> String {
        let [lo, hi] = self.interval;
        let band = format!("x{:.2}..x{:.2}", 1.0 / MARGIN, MARGIN);
        match self.why {
            Why::AboveMargin => format!("the interval lies above the margin x{margin:.2}"),
            Why::Opposite => {
                format!("the interval lies below x{:.2}: the opposite", 1.0 / MARGIN)
            }
            Why::NoDifference => format!("the interval lies inside {band}: no difference"),
            Why::LessThanMargin => {
                format!("the interval lies below the margin x{margin:.2}: less than the margin")
            }
            Why::SpansMargin => format!(
                "inconclusive: the interval x{lo:.2}..x{hi:.2} spans the margin x{margin:.2}"
            ),
            Why::TooFewPairs => format!(
                "inconclusive: {} block pair(s), too few to judge (at least {MIN_PAIRS})",
                self.pairs
            ),
        }
    }
}

/// The rule itself, on ratios already oriented so that > 1 supports the claim.
pub fn judge_pairs(mut pairs: Vec<f64>, margin: f64) -> Judgement {
    pairs.retain(|r| r.is_finite() && *r > 0.0);
    pairs.sort_by(f64::total_cmp);
    let n = pairs.len();
    // No pair at all: an interval of x1.00 at no confidence, and too few pairs (below).
    let (ratio, interval, confidence) = if n == 0 {
        (1.0, [1.0, 1.0], 0.0)
    } else {
        let (k, confidence) = interval_rank(n);
        (median(&pairs), [pairs[k - 1], pairs[n - k]], confidence)
    };
    let [lo, hi] = interval;
    let (verdict, why) = if n < MIN_PAIRS {
        (Verdict::Inconclusive, Why::TooFewPairs)
    } else if lo > margin {
        (Verdict::Holds, Why::AboveMargin)
    } else if hi < 1.0 / MARGIN {
        (Verdict::DoesNotHold, Why::Opposite)
    } else if hi < margin && lo > 1.0 / MARGIN && hi < MARGIN {
        (Verdict::DoesNotHold, Why::NoDifference)
    } else if hi < margin {
        (Verdict::DoesNotHold, Why::LessThanMargin)
    } else {
        (Verdict::Inconclusive, Why::SpansMargin)
    };
    Judgement {
        verdict,
        why,
        ratio,
        interval,
        confidence,
        pairs: n,
    }
}

/// The rank `k` (1-based) of the sign-test interval `[x(k), x(n+1-k)]` for `n` pairs, and its
/// confidence `1 - 2·P(B ≤ k-1)` with B ~ Binomial(n, ½): the largest `k` that reaches
/// [`CONFIDENCE`], or `[min, max]` (k = 1) at whatever it reaches when none does.
pub fn interval_rank(n: usize) -> (usize, f64) {
    let mut best = (1, 1.0 - 2.0 * binomial_cdf(n, 0));
    for k in 2..=n.div_ceil(2) {
        let confidence = 1.0 - 2.0 * binomial_cdf(n, k - 1);
        if confidence < CONFIDENCE {
            break;
        }
        best = (k, confidence);
    }
    best
}

/// P(B ≤ j) for B ~ Binomial(n, ½), summed in log space (no overflow for large n).
fn binomial_cdf(n: usize, j: usize) -> f64 {
    let ln2 = std::f64::consts::LN_2;
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut sum = (ln_choose - n as f64 * ln2).exp();
    for i in 1..=j.min(n) {
        ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        sum += (ln_choose - n as f64 * ln2).exp();
    }
    sum.min(1.0)
}

/// The median of some figures (the mean of the middle two for an even count); NaN for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `96.9%`, `75%`.
fn percent(p: f64) -> String {
    let v = 100.0 * p;
    let decimals = if (v - v.round()).abs() < 0.05 { 0 } else { 1 };
    format!("{v:.decimals$}%")
}

/// A duration in nanoseconds, in the unit that keeps three significant figures readable.
pub fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

/// A block figure in its unit, as people read it: `5.07 us`, `8704 MiB/s`, `1.52 KiB`.
pub fn format_figure(v: f64, unit: &str) -> String {
    if unit == "ns" {
        return format_ns(v);
    }
    let decimals = if v.abs() >= 100.0 { 0 } else { 2 };
    format!("{v:.decimals$} {unit}")
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

    fn latency(favoured: &[f64], other: &[f64]) -> Test {
        Test::new("round trip", "ns", Better::Lower, "faster")
            .favoured("a", favoured)
            .other("b", other)
    }

    #[test]
    fn the_interval_ranks_are_the_sign_test_ones() {
        // [min, max] of 5 pairs is 93.75%, of 6 is 96.875%; [x(4), x(12)] of 15 is 96.5%.
        assert_eq!(interval_rank(5).0, 1);
        assert!((interval_rank(5).1 - 0.9375).abs() < 1e-9);
        assert_eq!(interval_rank(6).0, 1);
        assert!((interval_rank(6).1 - 0.96875).abs() < 1e-9);
        let (k, c) = interval_rank(15);
        assert_eq!(k, 4);
        assert!((c - 0.96484375).abs() < 1e-6, "{c}");
        // Large pools neither overflow nor lose the interval.
        let (k, c) = interval_rank(2000);
        assert!(k > 900 && (CONFIDENCE..1.0).contains(&c), "{k} {c}");
    }

    #[test]
    fn one_distribution_twice_never_holds() {
        // Many seeds and sizes, so the test is about the rule, not one lucky draw.
        for seed in 0..200 {
            for n in [3, 6, 15, 30] {
                let a = samples(seed, n, 10_000.0, 0.10);
                let b = samples(seed + 1000, n, 10_000.0, 0.10);
                let j = latency(&a, &b).judge();
                assert_ne!(j.verdict, Verdict::Holds, "seed {seed} n {n}: {j:?}");
            }
        }
    }

    #[test]
    fn clearly_separated_samples_hold() {
        let j = latency(
            &samples(1, 6, 4_000.0, 0.10),
            &samples(2, 6, 12_000.0, 0.10),
        )
        .judge();
        assert_eq!((j.verdict, j.why), (Verdict::Holds, Why::AboveMargin));
        assert!(j.ratio > 2.0 && j.interval[0] <= j.ratio && j.ratio <= j.interval[1]);
        assert!(j.confidence >= CONFIDENCE);
    }

    #[test]
    fn does_not_hold_says_where_the_interval_lies() {
        let fast = samples(3, 6, 900.0, 0.05);
        let slow = samples(4, 6, 300.0, 0.05);
        let higher = |f: &[f64], o: &[f64]| {
            Test::new("stream", "MiB/s", Better::Higher, "faster")
                .favoured("f", f)
                .other("o", o)
                .judge()
        };
        assert_eq!(higher(&slow, &fast).why, Why::Opposite);
        assert_eq!(higher(&fast, &slow).verdict, Verdict::Holds);
        // The same figures on both sides: no difference.
        let same = latency(&[100.0; 6], &[100.5; 6]).judge();
        assert_eq!(
            (same.verdict, same.why),
            (Verdict::DoesNotHold, Why::NoDifference)
        );
        // Faster, but not by the margin a topic set.
        let less = latency(&[100.0; 6], &[120.0; 6]).margin(1.5).judge();
        assert_eq!(
            (less.verdict, less.why),
            (Verdict::DoesNotHold, Why::LessThanMargin)
        );
    }

    #[test]
    fn one_pair_on_the_other_side_of_six_makes_it_inconclusive() {
        let j = latency(
            &[1.0, 1.0, 1.0, 1.0, 1.0, 1.2],
            &[2.0, 2.0, 2.0, 2.0, 2.0, 1.0],
        )
        .judge();
        assert_eq!(
            (j.verdict, j.why),
            (Verdict::Inconclusive, Why::SpansMargin)
        );
        // With fifteen pairs, the sign-test interval leaves out three at each end.
        let mut f = vec![1.0; 15];
        let mut o = vec![2.0; 15];
        f[0] = 3.0;
        o[1] = 0.5;
        assert_eq!(latency(&f, &o).judge().verdict, Verdict::Holds);
    }

    #[test]
    fn too_few_pairs_never_decide_and_few_say_their_confidence() {
        let j = latency(&[1.0, 1.0], &[10.0, 10.0]).judge();
        assert_eq!(
            (j.verdict, j.why, j.pairs),
            (Verdict::Inconclusive, Why::TooFewPairs, 2)
        );
        assert_eq!(latency(&[], &[]).judge().verdict, Verdict::Inconclusive);
        let quick = latency(&[1.0; 3], &[3.0; 3]);
        assert_eq!(quick.judge().verdict, Verdict::Holds);
        assert!((quick.judge().confidence - 0.75).abs() < 1e-9);
        assert!(
            quick.evidence().contains("75% interval"),
            "{}",
            quick.evidence()
        );
        assert!(
            quick.evidence().contains("lower confidence"),
            "{}",
            quick.evidence()
        );
    }

    #[test]
    fn the_evidence_quotes_the_deciding_figures_the_right_way_round() {
        let holds = latency(&[1000.0; 6], &[3000.0; 6]);
        let text = holds.evidence();
        assert!(
            text.contains("in the median pair, a 1.00 us vs b 3.00 us"),
            "{text}"
        );
        assert!(
            text.contains("a was x3.00 faster than b per block pair"),
            "{text}"
        );
        assert!(text.contains("median of 6 pairs"), "{text}");
        assert!(
            text.contains("claim's favour is x3.00, 96.9% interval x3.00..x3.00"),
            "{text}"
        );
        // The other way round: the winner is named, the ratio stays the claim's own.
        let not = latency(&[4000.0; 6], &[2000.0; 6]).evidence();
        assert!(not.contains("b was x2.00 faster than a"), "{not}");
        assert!(not.contains("claim's favour is x0.50"), "{not}");
        assert!(not.contains("the opposite"), "{not}");
    }

    /// Pooled runs at two levels: the sides' medians fall between the levels and could point
    /// the other way; the median pair's own figures always agree with the verdict.
    #[test]
    fn the_median_pair_agrees_with_the_verdict_where_side_medians_do_not() {
        let mut f = vec![100.0; 6];
        f.extend([150.0, 150.0, 150.0, 150.0, 150.0, 140.0]);
        let mut o = vec![101.0, 101.0, 101.0, 101.0, 101.0, 115.0];
        o.extend([151.5; 6]);
        let t = latency(&f, &o);
        let j = t.judge();
        assert_eq!(j.verdict, Verdict::DoesNotHold, "{j:?}");
        let (mf, mo) = t.medians();
        assert!(
            mo / mf > MARGIN,
            "the side medians alone say x{:.2}",
            mo / mf
        );
        let (pf, po) = t.median_pair().unwrap();
        assert!(po / pf < MARGIN, "{pf} vs {po}");
    }
}
