"""The diagnosis test matrix: every planted-fault scenario run for real, expected findings against found ones.

Runs the scenarios of ``tests/diagnose/scenarios.py`` (the same ones the test suite
asserts) one after another in this process, sharing one preparation and embedding
cache, and prints the Markdown matrix: scenario, planted fault, models judged,
expected codes, codes that must not appear, every finding with its severity,
pass/fail, seconds.

    .venv/bin/python -m benchmarks.diagnosis_matrix                   # print the matrix
    .venv/bin/python -m benchmarks.diagnosis_matrix --only healthy lr_too_high
    .venv/bin/python -m benchmarks.diagnosis_matrix --write           # and replace its section of RESULTS.md

``--write`` replaces the "Diagnosis: planted faults" section of benchmarks/RESULTS.md up to
its "### Calibration" subsection, which is kept as written by hand.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Diagnosis: planted faults"
KEEP = "### Calibration"


def run_matrix(names: list[str] | None, workdir: Path) -> list:
    from tests.diagnose.scenarios import SCENARIOS, missing_stages, run_scenario

    outcomes = []
    for sc in SCENARIOS:
        if names and sc.name not in names:
            continue
        missing = missing_stages(sc)
        if missing:
            print(f"skipping {sc.name}: stage(s) {', '.join(missing)} not available", file=sys.stderr)
            continue
        outcome = run_scenario(sc, workdir / "runs", workdir / "cache")
        print(f"{sc.name}: {'pass' if outcome.passed else 'FAIL'} in {outcome.seconds:.1f} s", file=sys.stderr)
        outcomes.append(outcome)
    return outcomes


def section(table: str, command: str, seconds: float, n_pass: int, n_all: int) -> str:
    return (f"{SECTION}\n\nCommand:\n\n```bash\n{command}\n```\n\n"
            f"{n_pass} of {n_all} scenarios pass; {seconds:.0f} s in all on this machine (2 shared CPUs, "
            "torch on one thread, Ray started once, each synthetic dataset prepared and embedded once with the "
            "all-MiniLM-L6-v2 encoder). Each scenario is one real run on the synthetic generator "
            "(300 users, 200 items in 4 topics, ~15 interactions per user) with one fault planted "
            "through configuration; *expected* codes must appear at warning or worse (or the named "
            "severity), *must not appear* codes must not appear at warning or worse, and a healthy run "
            "must have no warning or critical finding at all. The same scenarios are asserted by "
            "`tests/diagnose/test_planted_faults.py`.\n\n" + table + "\n")


def write_section(text: str) -> None:
    """Replace the section in RESULTS.md (re-read right before writing), keeping its Calibration part."""
    current = RESULTS.read_text()
    start = current.find(SECTION)
    if start < 0:
        RESULTS.write_text(current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")
        return
    end = current.find("\n## ", start + len(SECTION))
    end = len(current) if end < 0 else end
    body = text.rstrip("\n") + "\n"
    keep = current.find(KEEP, start, end)
    if keep >= 0:
        body += "\n" + current[keep:end].rstrip("\n") + "\n"
    rest = current[end:]
    RESULTS.write_text(current[:start] + body + ("\n" + rest.lstrip("\n") if rest else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--workdir", help="where runs and the shared cache go (default: a temporary directory)")
    parser.add_argument("--write", action="store_true", help="replace the section of benchmarks/RESULTS.md")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="diagnosis-matrix-"))
    started = time.perf_counter()
    try:
        outcomes = run_matrix(args.only, workdir)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    from tests.diagnose.scenarios import matrix_markdown

    table = matrix_markdown(outcomes)
    command = ".venv/bin/python -m benchmarks.diagnosis_matrix" + (f" --only {' '.join(args.only)}"
                                                                    if args.only else "")
    text = section(table, command, time.perf_counter() - started, sum(o.passed for o in outcomes), len(outcomes))
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
