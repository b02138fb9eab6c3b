#!/usr/bin/env bash
# Offline checks of the infrastructure templates (Bicep and SAM): Bicep parse, cfn-lint with the SAM
# transform, checkov on both clouds. Creates or refreshes .venv-infra when missing or when
# infra/requirements-check.txt changed, then runs infra/tools/check_templates.py.
#
#   infra/check.sh                      every check on the real templates
#   infra/check.sh --only checkov       one step (bicep | cfn-lint | sam-refs | iam | checkov), repeatable
#   infra/check.sh --cloud aws          one cloud's templates (azure | aws)
#   infra/check.sh --azure DIR --sam F  check other copies (the tests feed broken ones)
#   infra/check.sh --ensure-venv        only create the venv
#
# Exit status: 0 when every check passes, non-zero otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AWS2AZURE_INFRA_VENV:-$ROOT/.venv-infra}"
REQUIREMENTS="$ROOT/infra/requirements-check.txt"
PYTHON="${AWS2AZURE_INFRA_PYTHON:-$(command -v python3.11 || command -v python3)}"
STAMP="$VENV/.installed-$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
# Lock and install log live outside the work tree, so nothing but the venv itself appears in it.
SCRATCH="${TMPDIR:-/tmp}/aws2azure-infra-venv-$(printf %s "$VENV" | sha256sum | cut -c1-12)"

ensure_venv() {
    [ -f "$STAMP" ] && return 0
    echo "infra/check.sh: installing the IaC checkers into $VENV (once)" >&2
    local log="$SCRATCH.install.log"
    if ! { "$PYTHON" -m venv --clear "$VENV" \
        && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip \
        && "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"; } >"$log" 2>&1; then
        echo "infra/check.sh: could not create $VENV; last lines of $log:" >&2
        grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -n 20 >&2
        return 1
    fi
    # Hide the venv from git, ruff and every other tool that honours .gitignore.
    printf '*\n' >"$VENV/.gitignore"
    touch "$STAMP"
}

# Serialise venv creation when several checks start at once (parallel test runs).
if command -v flock >/dev/null 2>&1; then
    exec 9>"$SCRATCH.lock"
    flock 9
    ensure_venv
    flock -u 9
else
    ensure_venv
fi

if [ "${1:-}" = "--ensure-venv" ]; then
    exit 0
fi
exec "$VENV/bin/python" "$ROOT/infra/tools/check_templates.py" "$@"
