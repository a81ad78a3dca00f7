"""Bad settings through the real entry points: one ``error:`` line naming the setting, exit code 2, nothing run.

Most cases call ``rayjobs.prepare.main`` / ``rayjobs.pipeline.main`` in this process with the
command line in ``sys.argv`` (the check happens before Hydra composes anything, so no Ray and
no run directory); a few run ``python -m rayjobs.<stage>`` as a user would, including the
cross-checks that ``run_stages`` makes for the stages of the entry point.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rayjobs.diagnose
import rayjobs.pipeline
import rayjobs.prepare
import rayjobs.tune
from rayjobs._overrides import check_command_line
from recsys.config import RecsysConfig

REPO = Path(__file__).resolve().parents[1]

# (command line, the setting the error must name, words the line must hold)
CASES = [
    (["train.lrr=0.1"], "train.lrr", ["unknown setting", "did you mean 'train.lr'"]),
    (["+train.lrr=0.1"], "train.lrr", ["unknown setting", "did you mean 'train.lr'"]),
    (["++train.lrr=0.1"], "train.lrr", ["unknown setting", "did you mean 'train.lr'"]),
    (["+trian.lr=0.1"], "trian.lr", ["unknown setting", "did you mean 'train.lr'"]),
    (["trian.lr=0.1"], "trian.lr", ["unknown setting", "did you mean 'train.lr'"]),
    (["modles=[mf]"], "modles", ["did you mean 'models'"]),
    (["model.two_tower.dpeth=3"], "model.two_tower.dpeth", ["did you mean 'model.two_tower.depth'"]),
    (["+dataset.synthetic.n_userz=5"], "dataset.synthetic.n_userz", ["did you mean 'dataset.synthetic.n_users'"]),
    (["datasets=[{nmae:synthetic}]"], "datasets[0].nmae", ["did you mean 'datasets[0].name'"]),
    (["train.lr.x=1"], "train.lr.x", ["train.lr is a single value"]),
    (["train.epochs=abc"], "train.epochs", ["expected an integer, got 'abc'", "train.epochs=20"]),
    (["train.epochs=null"], "train.epochs", ["expected an integer, got null"]),
    (["train.lr=fast"], "train.lr", ["expected a number or null, got 'fast'"]),
    (["train.instrument=maybe"], "train.instrument", ["expected true or false"]),
    (["eval.k=[5,x]"], "eval.k", ["expected a list of integers"]),
    (["models=mf"], "models", ["expected a list"]),
    (["dataset=movielenz"], "dataset", ["unknown choice 'movielenz'", "did you mean 'movielens'"]),
    (["encoder=bert"], "encoder", ["unknown choice 'bert'", "bert-base"]),
    (["+train.lr=0.1"], "train.lr", ["already set", "train.lr=0.1"]),
    (["train.lr=="], "train.lr", ["cannot read the override"]),
    (["~train.epochs"], "train.epochs", ["cannot be composed", "does not support deletion"]),       # Hydra's refusal, reworded
    (["train.lr=${nothing.here}"], "train.lr", ["cannot be composed", "nothing.here"]),
    (["train.epochs=0"], "train.epochs", ["out of range", "at least one epoch"]),
    (["tune.trials=0"], "tune.trials", ["tune.trials=8"]),
    (["tune.rounds=-1"], "tune.rounds", ["impossible value -1"]),
    (["split.ratios=[0.5,0.1,0.1]"], "split.ratios", ["sum to 1"]),
    (["eval.confidence=1.5"], "eval.confidence", ["out of range"]),
    (["eval.k=[10,10]"], "eval.k", ["appears twice"]),
    (["ray.num_cpus=0"], "ray.num_cpus", ["out of range"]),
    (["model.mf.dim=0"], "model.mf.dim", ["must be > 0"]),
    (["model.two_tower.dropout=1.5"], "model.two_tower.dropout", ["[0, 1)"]),
    (["dataset.synthetic.n_users=0"], "dataset.synthetic.n_users", ["integer >= 1"]),
    (["encoder.batch_size=0"], "encoder.batch_size", ["at least 1"]),
    (["diagnose.importance.confidence=2"], "diagnose.importance.confidence", ["between 0 and 1"]),
    (["tune.model=foo"], "tune.model", ["unknown model 'foo'"]),
    (["models=[pop,mf]", "eval.baseline=two_tower"], "eval.baseline", ["not one of models"]),
    (["data.implicit_threshold=9", "dataset.rating_scale=[1,5]"], "data.implicit_threshold", ["outside"]),
]


def _assert_one_error_line(output: str, setting: str, words: list[str]) -> str:
    assert "Traceback" not in output and "HYDRA_FULL_ERROR" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    line = errors[0]
    assert f"setting '{setting}'" in line, line
    for word in words:
        assert word in line, line
    return line


@pytest.mark.parametrize("argv,setting,words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_a_bad_setting_is_one_error_line_and_exit_code_2(argv, setting, words, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["prepare.py", *argv, f"report.dir={tmp_path}/run", f"hydra.run.dir={tmp_path}/h"])
    with pytest.raises(SystemExit) as ended:
        rayjobs.prepare.main()
    assert ended.value.code == 2
    captured = capsys.readouterr()
    _assert_one_error_line(captured.out + captured.err, setting, words)
    assert list(tmp_path.iterdir()) == []                     # no run directory, no Hydra output directory


def test_the_pipeline_entry_point_checks_the_same_way(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["pipeline.py", "+trian.lr=0.1", f"report.dir={tmp_path}/run"])
    with pytest.raises(SystemExit) as ended:
        rayjobs.pipeline.main()
    assert ended.value.code == 2
    captured = capsys.readouterr()
    _assert_one_error_line(captured.err, "trian.lr", ["did you mean 'train.lr'"])


@pytest.mark.parametrize("argv", [
    [],
    ["train.lr=0.01", "train.epochs=3", "eval.k=[5,10]", "models=[pop,mf]", "train.grad_clip=null"],
    ["dataset=table", "dataset.interactions=events.parquet", "dataset.columns.user_id=uid",
     "dataset.columns.item_id=iid", "dataset.columns.timestamp=ts"],
    ["datasets=[{name:synthetic},{name:movielens,path:../shared/datasets/ml-latest-small}]"],
    ['encoder.template="{title}[. Genres: {genres}]"', '+encoder.templates.table="{name}[. {summary}]"'],
    ["dataset.synthetic={n_users:100,n_items:50}", "tune.space.train.lr={type:loguniform,low:0.001,high:0.1}"],
    ["split.protocol=leave_last", "train.lr=1", 'train.weight_decay="0.1"', "dataset.label=2024"],
    ["hydra.run.dir=somewhere", "ray.address=auto", 'report.dir="s3://bucket/x?endpoint_override=h:1"'],
])
def test_valid_command_lines_pass_the_check(argv):
    assert isinstance(check_command_line(argv), RecsysConfig)


def test_hydra_flags_are_left_to_hydra():
    assert check_command_line(["--cfg", "job", "train.lrr=1"]) is None
    assert check_command_line(["--help"]) is None


@pytest.mark.parametrize("entry,argv,setting,words", [
    (rayjobs.pipeline, ["eval.k=[5,20]"], "train.val_k", ["eval.k=[5, 20]"]),
    (rayjobs.diagnose, ["eval.k=[10]", "diagnose.k=20", "diagnose.val_metric=val/ndcg@10"], "diagnose.k",
     ["does not evaluate"]),
    (rayjobs.diagnose, ["diagnose.metric=recall"], "diagnose.k", ["val/recall@10", "val/ndcg@10"]),
    (rayjobs.tune, ["models=[pop,mf]", "tune.model=sasrec"], "tune.model", ["does not train"]),
    (rayjobs.tune, ["diagnose.enabled=false"], "tune.mode", ["needs the diagnosis"]),
    (rayjobs.pipeline, ["compare.metrics=[ndcg@15]"], "compare.metrics", ["not evaluated"]),
    (rayjobs.pipeline, ["eval.splits=[val]"], "compare.split", ["leaves out"]),
    (rayjobs.pipeline, ["ray.num_cpus=2", "train.num_workers=3", "train.cpus_per_worker=1"], "train.num_workers",
     ["do not fit"]),
])
def test_settings_that_disagree_for_the_entry_points_stages(entry, argv, setting, words, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setattr(sys, "argv", ["x.py", *argv, f"report.dir={tmp_path}/run", f"hydra.run.dir={tmp_path}/h"])
    with pytest.raises(SystemExit) as ended:
        entry.main()
    assert ended.value.code == 2
    captured = capsys.readouterr()
    _assert_one_error_line(captured.out + captured.err, setting, words)
    assert list(tmp_path.iterdir()) == []


def test_the_stages_decide_which_settings_must_agree():
    """``rayjobs.prepare`` runs no evaluation: cut-offs that disagree with it do not matter there."""
    assert check_command_line(["eval.k=[5,20]", "tune.model=sasrec", "models=[pop,mf]"], ["prepare"]) is not None


@pytest.mark.slow
def test_as_a_user_types_it(tmp_path):
    """``python -m rayjobs.prepare ...`` as typed, in a process of its own."""
    done = subprocess.run([sys.executable, "-m", "rayjobs.prepare", "train.lrr=0.1", f"report.dir={tmp_path}/run"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    _assert_one_error_line(done.stdout + done.stderr, "train.lrr", ["did you mean 'train.lr'"])
    assert not (tmp_path / "run").exists()                   # no run was started
