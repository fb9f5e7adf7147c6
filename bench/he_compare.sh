#!/usr/bin/env bash
# Paillier / OU operations per second side by side: Fedra (`fedra bench he`),
# python-paillier (phe + gmpy2) and SecretFlow HEU (sf-heu), then a comparison table.
#
#   bench/he_compare.sh [--bits 2048,3072] [--threads 1,2] [--seconds 1] [--out FILE] ...
#
# (arguments go to bench/he_compare.py; see its docstring). Needs `pip install phe gmpy2
# sf-heu`. The JSON lines are appended to target/he_compare.jsonl unless --out is given.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p fedra-cli >&2
out=target/he_compare.jsonl
for a in "$@"; do [[ "$a" == --out ]] && out=""; done
echo "# $(uptime)" >&2
python3 bench/he_compare.py --fedra target/release/fedra ${out:+--out "$out"} "$@"
echo "# $(uptime)" >&2
