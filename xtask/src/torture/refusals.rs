//! Refused flags: each topic's flag fuzzing in-process, then refused flag sets from outside.

use super::*;

/// Runs each topic's in-process flag fuzzing (its `flag_tests` unit test) with `cases` cases.
pub(super) fn fuzz_parsers(topics: &[Topic], cases: u32) -> Result<()> {
    let mut cmd = workspace::cargo();
    cmd.args(["test", "--quiet", "--bins"])
        .current_dir(workspace::root())
        .env("LAB_FUZZ_CASES", cases.to_string());
    for t in topics {
        cmd.args(["-p", &t.name]);
    }
    cmd.args(["flag_tests"]);
    eprintln!("xtask torture: {cases} parser cases per topic (cargo test --bins flag_tests)");
    if !cmd.status().context("cargo test")?.success() {
        bail!("the flag fuzzing failed (see above)");
    }
    say(&format!(
        "torture: {} in-process parser cases ({cases} per topic): no panic, every refusal named its limit",
        cases as u64 * topics.len() as u64
    ));
    Ok(())
}

/// The long flags a topic's `--help` lists, and whether each takes a value.
pub(super) fn flags_of(topic: &Topic) -> Result<Vec<(String, bool)>> {
    let out = Command::new(&topic.binary)
        .arg("--help")
        .output()
        .with_context(|| format!("{} --help", topic.name))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut flags = Vec::new();
    for line in text
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
    {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            let w = w.trim_end_matches(',');
            if let Some(name) = w.strip_prefix("--") {
                if name != "help" && !name.is_empty() {
                    let takes = words.get(i + 1).is_some_and(|n| n.starts_with('<'));
                    flags.push((format!("--{name}"), takes));
                }
                break;
            }
        }
    }
    Ok(flags)
}

/// Flag sets no topic accepts, run end to end: exit 2 with a short message, never a panic or a
/// hang, nothing left.
pub(super) fn refused_flags(
    topic: &Topic,
    rng: &mut Rng,
    count: u32,
    mq: &MqueueView,
    t: &mut Tally,
) -> Result<()> {
    const BAD: &[&str] = &["abc", "-1", "99999999999999999999999", "1.5", "", "bogus"];
    let with_value: Vec<String> = flags_of(topic)?
        .into_iter()
        .filter(|(_, takes)| *takes)
        .map(|(f, _)| f)
        .collect();
    for _ in 0..count {
        let before = everything(mq);
        let mut args = vec!["--quick".to_owned(), "--json".to_owned()];
        if with_value.is_empty() || rng.between(0, 5) == 0 {
            args.push("--no-such-flag".to_owned());
        } else {
            args.push(with_value[rng.between(0, with_value.len() as u64 - 1) as usize].clone());
            args.push(BAD[rng.between(0, BAD.len() as u64 - 1) as usize].to_owned());
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let e = finish(start(topic, &argv)?)?;
        t.refused += 1;
        let what = format!("flags {:?}", &args[2..]);
        judge_common(topic, &e, &what, t);
        let lines = e.stderr.lines().filter(|l| !l.trim().is_empty()).count();
        if e.code != Some(2) || lines == 0 || lines > 6 {
            t.fail(
                topic,
                format!(
                    "{what}: exit {:?} with {lines} line(s): {}",
                    e.code,
                    last_line(&e.stderr)
                ),
            );
        }
        fail_if_left(topic, mq, &before, &what, t);
    }
    Ok(())
}
