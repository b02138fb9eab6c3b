#!/usr/bin/env bash
# Assembles build/lambda, the CodeUri of every function in infra/aws/template.yaml: the Lambda code
# (aws_lambda/, without the local-stack runner) and the core it imports (migration/), with
# aws_lambda/requirements.txt as the requirements sam build installs (arm64 wheels).
#   infra/aws/stage.sh && sam build -t infra/aws/template.yaml
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="$ROOT/build/lambda"

rm -rf "$OUT"
mkdir -p "$OUT"
cp -R "$ROOT/aws_lambda" "$ROOT/migration" "$OUT/"
mv "$OUT/aws_lambda/requirements.txt" "$OUT/requirements.txt"
find "$OUT" -name __pycache__ -type d -prune -exec rm -rf {} +
echo "staged $(find "$OUT" -name '*.py' | wc -l) Python files in ${OUT#"$ROOT"/}"
