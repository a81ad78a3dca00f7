"""The README's shell blocks that are meant to run here, run as written.

A block is marked by an HTML comment on the line before its fence: ``<!-- runs-in-test -->``
(each command must exit 0) or ``<!-- runs-in-test: exit 2 -->`` (each must end with one
``error:`` line and exit code 2). Commands run in bash, one at a time, in a temporary working
directory (so ``reports/`` and ``data_cache/`` land there) with this checkout on ``PYTHONPATH``,
and with these substitutions, nothing else:

- ``.venv/bin/`` -> the bin directory of the interpreter running the tests;
- ``<run_id>``, ``<run_a>``, ``<run_b>`` -> the ids of two small runs the test made under ``reports/``;
- ``BROWSER=true``, so ``report html --open`` opens nothing.

The local job-submission recipe (``ray start --head`` ... ``ray job submit``) is not marked: it
starts a head on fixed ports and stops with ``ray stop``, which would end every Ray of this user.
``tests/cluster/test_job_submit.py`` runs its lines once (``RecipeHead`` in tests/cluster/raycluster.py)
with only the ports, ``HOME`` (the token file), the head's lifetime (``--block``, its own process
group), a marker resource and the job's data size and ``report.dir`` changed, and checks that
the job succeeds and what it leaves; here only the order of its lines is checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
MARKED = re.compile(r"<!-- runs-in-test(?::\s*exit (\d+))?[^>]*-->\n```bash\n(.*?)```", re.S)
TINY = ["dataset.synthetic.n_users=150", "dataset.synthetic.n_items=80", "dataset.synthetic.n_topics=3",
        "dataset.synthetic.mean_interactions_per_user=10", "dataset.synthetic.chunk_users=100", "train.epochs=2",
        "eval.bootstrap_samples=50"]


def commands(block: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, blank lines dropped.

    >>> commands("a x \\\\\\n    y   # note\\n\\nb\\n")
    ['a x y   # note', 'b']
    """
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip()]


def marked_blocks(text: str) -> list[tuple[int, str]]:
    """``(expected exit code, block)`` of every marked block of ``text``."""
    return [(int(code or 0), block) for code, block in MARKED.findall(text)]


def _env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO), BROWSER="true", RAY_DATA_DISABLE_PROGRESS_BARS="1")
    env.pop("RAY_ADDRESS", None)
    env.update(extra)
    return env


def run_command(command: str, cwd: Path, runs: dict[str, str] | None = None, timeout: float = 600):
    for placeholder, value in (runs or {}).items():
        command = command.replace(placeholder, value)
    command = command.replace(".venv/bin/", f"{BIN}/")
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_the_readme_marks_blocks_and_they_have_commands():
    blocks = marked_blocks(README.read_text())
    assert len(blocks) >= 3
    assert any("recsys report" in block for _, block in blocks)
    assert all(commands(block) for _, block in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(marked_blocks(README.read_text()))))
def test_a_marked_block_without_placeholders_runs_as_written(index, tmp_path):
    code, block = marked_blocks(README.read_text())[index]
    if "<run_" in block:
        pytest.skip("needs runs made by the test: test_the_report_commands_run_on_runs_of_our_own")
    for command in commands(block):
        done = run_command(command, tmp_path)
        output = done.stdout + done.stderr
        assert done.returncode == code, f"{command}\n{output[-4000:]}"
        assert "Traceback" not in output, output[-4000:]
        if code == 2:
            assert len([line for line in output.splitlines() if line.startswith("error:")]) == 1, output
    if code == 0 and "rayjobs.prepare" in block:
        from recsys.report.reader import load_tables

        runs = sorted((tmp_path / "reports").iterdir())
        assert len(runs) == 1
        tables = load_tables(str(runs[0]))
        assert tables["runs"]["status"][0] == "succeeded"
        assert set(tables["datasets"]["stage"]) >= {"loaded", "train", "test"}


def _small_run(root: Path, seed: int) -> str:
    from rayjobs._common import compose
    from recsys.pipeline import run_stages

    cfg = compose(TINY + ["models=[pop,mf]", f"train.seed={seed}", "data.engine=local", "train.engine=local",
                          "eval.engine=local", f"report.root={root}/reports", f"data.cache_dir={root}/cache"])
    return Path(run_stages(cfg, ["prepare", "train", "evaluate", "compare"])).name


@pytest.mark.ray
@pytest.mark.slow
def test_the_report_commands_run_on_runs_of_our_own(tmp_path, ray_session):
    ids = [_small_run(tmp_path, seed) for seed in (0, 7)]
    runs = {"<run_id>": ids[0], "<run_a>": ids[0], "<run_b>": ids[1]}
    block = next(block for _, block in marked_blocks(README.read_text()) if "recsys report" in block)
    ran = []
    for command in commands(block):
        done = run_command(command, tmp_path, runs, timeout=300)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"{command}\n{output[-4000:]}"
        assert "Traceback" not in output and output.strip(), f"{command}\n{output[-4000:]}"
        ran.append(command.split()[2])
    assert {"list", "show", "query", "compare", "export", "html"} <= set(ran)
    assert (tmp_path / "reports" / ids[0] / "report.html").exists()


def job_recipe(text: str) -> list[str]:
    """The commands of the README's local job-submission block (the one that starts a head)."""
    block = next(block for block in re.findall(r"```bash\n(.*?)```", text, re.S) if "ray start --head" in block)
    return commands(block)


def test_the_job_recipe_turns_token_authentication_on_before_any_ray_command():
    recipe = job_recipe(README.read_text())
    first_ray = next(i for i, c in enumerate(recipe) if c.startswith("ray "))
    assert any(c.startswith("export RAY_AUTH_MODE=token") for c in recipe[:first_ray])
    generate = next(i for i, c in enumerate(recipe) if c.startswith("ray get-auth-token --generate"))
    start = next(i for i, c in enumerate(recipe) if c.startswith("ray start --head"))
    submit = next(i for i, c in enumerate(recipe) if c.startswith("ray job submit"))
    assert generate < start < submit
