//! The browser test of the report: headless Chromium loads `report.html` from disk, with the
//! network unused, and must find it loaded with no error and every plot laid out; then it
//! saves a screenshot beside the report.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::{leftovers, workspace};

/// Longer than this and the browser is hung.
const GUARD: Duration = Duration::from_secs(90);

/// The browser on PATH: Debian's `chromium`, or another name of the same program.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Runs the browser headless on `page` with `extra` flags; its stdout. As root it needs
/// `--no-sandbox`; the other flags keep it from reaching for the network or a GPU.
fn chromium(page: &Path, extra: &[String]) -> Result<String> {
    let browser = find()
        .context("no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)")?;
    // A fresh private profile (mode 0700, random name), removed when this returns.
    let profile = tempfile::Builder::new()
        .prefix("xtask-chromium-")
        .tempdir()
        .context("create a temporary browser profile")?;
    let page = page
        .canonicalize()
        .with_context(|| format!("find {}", page.display()))?;
    let mut child = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: on a hang the browser and all its helpers are killed at once.
        .process_group(0)
        .spawn()
        .with_context(|| format!("run {}", browser.display()))?;
    let group = Pid::from_raw(-(child.id() as i32));
    let out = workspace::drain(child.stdout.take().expect("piped"));
    let err = workspace::drain(child.stderr.take().expect("piped"));
    let waited = labkit::child::wait_timeout(&mut child, GUARD);
    // Whatever happened, none of the browser's processes outlives this call.
    let _ = kill(group, Signal::SIGKILL);
    let status = match waited {
        Ok(Some(s)) => s,
        Ok(None) | Err(_) => {
            let _ = child.wait();
            bail!(
                "chromium hung or could not be waited for: killed after at most {} s",
                GUARD.as_secs()
            );
        }
    };
    // Its helper processes that left the group, should one linger (ours when xtask is a
    // subreaper).
    let _ = leftovers::reap_leftovers(Duration::from_secs(2));
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("chromium exited with {status}: {last}");
    }
    // Page console messages (errors included) come on stderr as `CONSOLE` lines.
    if let Some(line) = stderr.lines().find(|l| l.contains(":CONSOLE")) {
        bail!("the page wrote to the console: {line}");
    }
    Ok(stdout)
}

/// The body's data attributes after load, as the page's own script set them.
pub struct Loaded {
    pub plots: usize,
    pub plots_shown: usize,
    /// Derived figures on the page, and those laid out with their formula and inputs.
    pub decisions: usize,
    pub decisions_shown: usize,
    pub errors: usize,
    /// The page's full height in CSS pixels, for a screenshot of all of it.
    pub height: usize,
}

/// Loads the page and reads back what its script saw: ready, errors, plots laid out.
pub fn load(page: &Path) -> Result<Loaded> {
    let dom = chromium(
        page,
        &[
            "--enable-logging=stderr".to_owned(),
            "--v=0".to_owned(),
            "--dump-dom".to_owned(),
        ],
    )?;
    let body = dom
        .find("<body")
        .map(|i| &dom[i..])
        .and_then(|b| b.split_once('>').map(|(tag, _)| tag.to_owned()))
        .context("no <body> in the dumped DOM")?;
    let attr = |name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let start = body.find(&key)? + key.len();
        Some(body[start..].split('"').next()?.to_owned())
    };
    if attr("data-ready").as_deref() != Some("yes") {
        bail!("the page's load handler never ran: {body}");
    }
    let number = |name: &str| attr(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Ok(Loaded {
        plots: number("data-plots"),
        plots_shown: number("data-plots-shown"),
        decisions: number("data-decisions"),
        decisions_shown: number("data-decisions-shown"),
        errors: number("data-errors"),
        height: number("data-height"),
    })
}

/// A PNG of the whole page (`height` CSS pixels, as the page measured itself), `png`.
pub fn screenshot(page: &Path, png: &Path, height: usize) -> Result<PathBuf> {
    let _ = std::fs::remove_file(png);
    chromium(
        page,
        &[
            format!("--window-size=1100,{}", height.clamp(600, 30_000)),
            format!("--screenshot={}", png.display()),
        ],
    )?;
    let size = std::fs::metadata(png)
        .with_context(|| format!("chromium wrote no {}", png.display()))?
        .len();
    if size < 10_000 {
        bail!("{} is only {size} bytes", png.display());
    }
    Ok(png.to_owned())
}

/// The browser test: the page loads with no error, every plot shows, and every derived figure
/// with its formula and inputs; then a screenshot.
pub fn test(page: &Path) -> Result<String> {
    let loaded = load(page)?;
    if loaded.errors > 0 {
        bail!(
            "{} error(s) while loading {}",
            loaded.errors,
            page.display()
        );
    }
    if loaded.plots_shown != loaded.plots {
        bail!(
            "{} of {} plots laid out in {}",
            loaded.plots_shown,
            loaded.plots,
            page.display()
        );
    }
    if loaded.decisions_shown != loaded.decisions {
        bail!(
            "{} of {} derived figures shown with their formula and inputs in {}",
            loaded.decisions_shown,
            loaded.decisions,
            page.display()
        );
    }
    let png = screenshot(page, &page.with_file_name("report.png"), loaded.height + 40)?;
    Ok(format!(
        "loaded with no error, {} of {} plots shown, {} of {} derived figures with their \
         formula and inputs, screenshot {}",
        loaded.plots_shown,
        loaded.plots,
        loaded.decisions_shown,
        loaded.decisions,
        png.display()
    ))
}
