# Sourced by the compare-*.sh scripts: strict mode, the repository root as the working
# directory, $pairs (the script's first argument, 5 by default) and $out, a scratch directory
# removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
pairs=${1:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
