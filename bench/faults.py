"""The fault-injection suite at full scale, and its figures: rows per second sustained, the
longest time from a write to its vector during the faults, jobs retried, jobs dead.

    python bench/faults.py [-k EXPRESSION] [--short]

Runs `pytest tests/faults --faults-long` (5,000-row loads, a 20,000-row backlog, 30-second
outages; several minutes on two cores) and prints the table the scenarios recorded. Extra
arguments after `--` go to pytest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.faults.figures import FIGURES_ENV, load, table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="expression", help="only the scenarios matching this pytest -k expression")
    parser.add_argument("--short", action="store_true", help="the short scale `make test` uses")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="embedq-faults-") as scratch:
        figures_file = Path(scratch) / "figures.json"
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/faults",
            "-q",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "3600",
            *([] if args.short else ["--faults-long"]),
            *(["-k", args.expression] if args.expression else []),
            *args.pytest_args,
        ]
        print("$", " ".join(command), flush=True)
        completed = subprocess.run(command, cwd=ROOT, env={**os.environ, FIGURES_ENV: str(figures_file)})
        if not figures_file.exists():
            print("no scenario recorded figures", file=sys.stderr)
            return completed.returncode or 1
        print()
        print(table(load(figures_file)))
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
