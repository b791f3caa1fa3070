# Thin aliases for `cargo xtask`; nothing here that the README requires.

# Bench every topic (3 runs), print the claims ledger, write report.md/.html/.png.
report *flags:
    cargo xtask report {{flags}}

# Every topic R times, saved under target/lab/<timestamp>/.
bench *flags:
    cargo xtask bench {{flags}}

# Two saved benches side by side.
compare *args:
    cargo xtask compare {{args}}

# One topic as a standalone Cargo project.
eject topic dir:
    cargo xtask eject {{topic}} {{dir}}

# The test command: fmt, clippy, tests, loom, verify, eject, torture, report checks.
ci:
    cargo xtask ci

# Run every topic --quick --json and check the Reports and leftovers.
verify *topics:
    cargo xtask verify {{topics}}

# Remove what dead runs left behind (only what their ledgers list).
clean:
    cargo xtask clean

# One topic, human output.
run topic *flags:
    cargo run --release --quiet -p {{topic}} -- {{flags}}
