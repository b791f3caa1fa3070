//! The flags every topic shares, as clap `Args` to `#[command(flatten)]` into a topic's own.

use std::os::fd::RawFd;

use clap::builder::TypedValueParser as _;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the seed's two sides, a third model beside them (async tasks), or a baseline with no
/// concurrency.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Two (or more) processes, talking through the kernel.
    Process,
    /// Two (or more) threads of one process, sharing its memory.
    Thread,
    /// One thread alone: a baseline with no concurrency.
    Serial,
    /// Async tasks on a runtime's threads, switched in user space (they run with the thread
    /// side: `--variant thread` runs them too).
    Task,
}

impl Variant {
    /// The name used in Reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Process => "process",
            Variant::Thread => "thread",
            Variant::Serial => "serial",
            Variant::Task => "task",
        }
    }
}

/// Where the two sides of an exchange run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Both placements in turn, `same` then `split`, each judged on its own (the default).
    #[default]
    Each,
    /// Leave placement to the scheduler: figures shown, no verdict (it changes from block to
    /// block).
    None,
    /// Both sides on one CPU: every hand-off is a context switch.
    Same,
    /// The two sides on two different CPUs: every hand-off is a cross-CPU wake-up.
    Split,
}

impl Pin {
    /// The name used in Reports and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Pin::Each => "each",
            Pin::None => "none",
            Pin::Same => "same",
            Pin::Split => "split",
        }
    }

    /// The placements a run with this flag measures, in order.
    pub fn placements(self) -> Vec<Pin> {
        match self {
            Pin::Each => vec![Pin::Same, Pin::Split],
            one => vec![one],
        }
    }

    /// Whether claims are judged at this placement: at `same` and `split`, never at the
    /// scheduler's, which may put the two sides on one CPU in one block and on two in the next.
    pub fn judged(self) -> bool {
        matches!(self, Pin::Same | Pin::Split)
    }
}

// The flags of docs/ARCHITECTURE.md that every topic accepts. (A `///` comment here would replace the
// topic's own `about` in `--help`, since clap reads doc comments of flattened structs.)
#[derive(Args, Clone, Debug, Default)]
pub struct CommonArgs {
    /// Print only the Report, as one JSON document on stdout (e.g. `--json | jq .claims`).
    #[arg(long)]
    pub json: bool,

    /// Use the smallest sizes that still exercise every path (for tests and `cargo xtask verify`).
    #[arg(long)]
    pub quick: bool,

    /// Run one side only, `process` or `thread` (to profile it under `perf record` or
    /// `strace`); findings that compare the two sides are then skipped, with a note.
    #[arg(
        long,
        value_name = "SIDE",
        // Two sides only: a baseline such as `serial` always runs where a topic has one, since
        // the findings are ratios against it.
        value_parser = clap::builder::PossibleValuesParser::new(["process", "thread"])
            .try_map(|side| Variant::from_str(&side, false))
    )]
    pub variant: Vec<Variant>,
}

impl CommonArgs {
    /// Whether `variant` should run: every variant runs unless `--variant` picked some (a
    /// baseline always runs).
    pub fn wants(&self, variant: Variant) -> bool {
        let side = if variant == Variant::Task {
            Variant::Thread
        } else {
            variant
        };
        side == Variant::Serial || self.variant.is_empty() || self.variant.contains(&side)
    }

    /// The value of a size flag: the one given, else its default for this run.
    pub fn size(&self, given: Option<u64>, size: Size) -> u64 {
        given.unwrap_or(self.sized(size.full, size.quick))
    }

    /// Whether each side runs, `[process, thread]`: both, unless `--variant` picked one.
    pub fn sides(&self) -> [bool; 2] {
        [self.wants(Variant::Process), self.wants(Variant::Thread)]
    }

    /// `full` by default, `quick` under `--quick`.
    pub fn sized(&self, full: u64, quick: u64) -> u64 {
        if self.quick { quick } else { full }
    }

    /// Alternating blocks per contender: enough pairs for a 95% interval in one run, or the
    /// fewest the verdict accepts under `--quick` (see [`crate::verdict`]).
    pub fn blocks(&self) -> u64 {
        use crate::verdict::{MIN_PAIRS, PAIRS_FOR_CONFIDENCE};
        self.sized(PAIRS_FOR_CONFIDENCE as u64, MIN_PAIRS as u64)
    }

    /// Whether both sides run, so that findings comparing them can be made.
    pub fn both_sides(&self) -> bool {
        self.wants(Variant::Process) && self.wants(Variant::Thread)
    }
}

/// A size flag's three numbers: its default, its default under `--quick`, and the most it
/// accepts (say so in its help, where `testkit::assert_stated_limits_refused` reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub full: u64,
    pub quick: u64,
    pub max: u64,
}

impl Size {
    /// `Size::new(default, default under --quick, most accepted)`.
    pub const fn new(full: u64, quick: u64, max: u64) -> Size {
        Size { full, quick, max }
    }
}

// `--pin`, for the topics that place their two sides on CPUs. (Plain comment: see `CommonArgs`.)
#[derive(Args, Clone, Debug, Default)]
pub struct PinArgs {
    /// Placement of the two sides: `each` (`same`, then `split`, each judged), `same` (one
    /// CPU), `split` (two CPUs, chosen from the CPUs this process may use) or `none` (the
    /// scheduler decides: figures shown, no verdict).
    #[arg(long, value_enum, default_value_t = Pin::Each, value_name = "PLACEMENT")]
    pub pin: Pin,
}

// Hidden flags by which a topic re-executes itself as the other side of an exchange. A learner
// never types these; a topic writes them when it starts its child (`child::Peer::start`). (Plain comment: see `CommonArgs`.)
#[derive(Args, Clone, Debug, Default)]
pub struct RoleArgs {
    /// Run as a child in this role (internal).
    #[arg(long, hide = true)]
    pub role: Option<String>,

    /// A file descriptor inherited from the parent (internal, repeatable, in order).
    #[arg(long = "fd", hide = true)]
    pub fds: Vec<RawFd>,

    /// Pin this child to this CPU (internal).
    #[arg(long, hide = true)]
    pub cpu: Option<usize>,

    /// Where the parent's nonce lies in the parent's memory (internal; see `probe`).
    #[arg(long, hide = true)]
    pub probe: Option<usize>,
}

/// A clap value parser for a size or count from `min` to `max`, so a bad value is refused with
/// the limit named. Accepts a plain number or one with a binary suffix: `64KiB`, `32M`, `1GiB`.
///
/// ```
/// # use clap::Parser;
/// #[derive(Parser, Debug)]
/// struct Args {
///     #[arg(long, value_parser = labkit::cli::bounded(1, 1 << 20))]
///     bytes: u64,
/// }
/// assert_eq!(Args::try_parse_from(["x", "--bytes", "4KiB"]).unwrap().bytes, 4096);
/// let err = Args::try_parse_from(["x", "--bytes", "2MiB"]).unwrap_err().to_string();
/// assert!(err.contains("at most 1048576"));
/// ```
pub fn bounded(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let limits = format!("from {min} to {max}");
        let value =
            parse_size(text).ok_or_else(|| format!("not a whole number (expected {limits})"))?;
        if value < min {
            Err(format!("{value} is too small: at least {min} ({limits})"))
        } else if value > max {
            Err(format!("{value} is too large: at most {max} ({limits})"))
        } else {
            Ok(value)
        }
    }
}

/// `123`, `64K`, `64KiB`, `32M`, `32MiB`, `1G`, `1GiB` (binary multiples).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let shift = match suffix {
        "" => 0,
        "K" | "KiB" | "k" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        _ => return None,
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// A topic's `--help` examples, each `cargo run --release -p <package><args>` with the package
/// name of the crate that expands it (a copied crate's help names the copy), then an optional
/// note after a `;`.
///
/// ```
/// const HELP: &str = labkit::examples!("", " -- --json"; "a note");
/// assert!(HELP.starts_with("Examples:\n  cargo run --release -p "));
/// assert!(HELP.ends_with(" -- --json\n\na note"));
/// ```
#[macro_export]
macro_rules! examples {
    ($($args:literal),+ $(,)? $(; $note:literal)?) => {
        concat!(
            "Examples:",
            $("\n  cargo run --release -p ", env!("CARGO_PKG_NAME"), $args,)+
            $("\n\n", $note)?
        )
    };
}

/// Bad input: the message names the problem and the limit. Exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A [`UsageError`] as an `anyhow::Error`, for `return Err(usage(...))`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("32M"), Some(32 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("abc"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("12 MB"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
    }

    #[test]
    fn bounds_are_named_in_the_error() {
        let p = bounded(8, 100);
        assert_eq!(p("8"), Ok(8));
        assert!(p("7").unwrap_err().contains("at least 8"));
        assert!(p("101").unwrap_err().contains("at most 100"));
        assert!(p("x").unwrap_err().contains("from 8 to 100"));
    }
}
