# Thin aliases for `cargo xtask`; nothing here that the README requires.

# Run every topic and print the claims ledger for this machine.
report *topics:
    cargo xtask report {{topics}}

# The test command: fmt, clippy, tests, verify.
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
