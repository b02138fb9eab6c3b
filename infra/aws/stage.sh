#!/usr/bin/env bash
# Assembles build/lambda, the CodeUri of every function in infra/aws/template.yaml: the Lambda code
# (aws_lambda/) and the core it imports (migration/), with aws_lambda/requirements.txt as the
# requirements sam build installs (arm64 wheels). `make package` does the same and builds the
# Function App zip; both run infra/tools/package.py.
#   infra/aws/stage.sh && sam build -t infra/aws/template.yaml
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PYTHON="${PYTHON:-$( [ -x "$ROOT/.venv/bin/python" ] && echo "$ROOT/.venv/bin/python" || command -v python3)}"
exec "$PYTHON" "$ROOT/infra/tools/package.py" lambda
