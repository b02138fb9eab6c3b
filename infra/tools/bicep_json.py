"""Print the parse of Bicep files as JSON (pycep's document model), for tests that compare names.

Runs inside .venv-infra:  .venv-infra/bin/python infra/tools/bicep_json.py FILE [FILE ...]
Prints one JSON object: {"<file as given>": <parsed document>, ...}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from pycep import BicepParser  # type: ignore[import-not-found]  # in .venv-infra only

    parser = BicepParser()
    documents = {name: parser.parse(file_path=Path(name)) for name in argv}
    json.dump(documents, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
