"""The typed run state: what each stage sets, and the error a stage gives when an earlier one did not run."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import recsys
from recsys.errors import ConfigError
from recsys.pipeline import STAGES
from recsys.run_state import PRODUCERS, STAGE_ORDER, Evaluation, RunState, TrainedModelRecord, missing

ROOT = Path(recsys.__file__).parent


def empty_run() -> RunState:
    return RunState(cfg=None, writer=None)


@pytest.mark.parametrize("name, stage, producer", [
    ("prepared", "embed", "prepare"),
    ("models", "evaluate", "train"),
    ("models", "diagnose", "train"),
    ("evaluation", "tune", "evaluate"),
    ("diagnosis", "tune", "diagnose"),
])
def test_a_missing_field_names_the_stage_that_sets_it(name, stage, producer):
    with pytest.raises(ConfigError) as caught:
        empty_run().require(name, stage)
    err = caught.value
    assert err.setting == "stages"
    assert err.problem.startswith(f"the {stage} stage needs ")
    assert f"run the {producer} stage before {stage}" in err.hint
    assert err.hint.endswith(f"(stages: {', '.join(STAGE_ORDER[: STAGE_ORDER.index(stage) + 1])})")


def test_an_empty_models_dict_counts_as_missing_and_a_set_field_is_returned():
    run = empty_run()
    with pytest.raises(ConfigError, match="train stage"):
        run.require("models", "evaluate")
    run.models = {"mf": TrainedModelRecord(Path("ck/mf/best_model.pt"), status="completed")}
    assert run.require("models", "evaluate") is run.models
    evaluation = Evaluation(context=None, rows={"mf": {}, "external-list": {}})
    run.evaluation = evaluation
    assert run.require("evaluation", "tune") is evaluation
    assert run.model_paths() == {"mf": Path("ck/mf/best_model.pt")}    # a list evaluated beside it has no model


def test_an_unknown_field_is_a_programming_error_not_a_config_error():
    with pytest.raises(ValueError, match="no stage output 'modles'"):
        empty_run().require("modles", "tune")


def test_a_stage_outside_the_per_dataset_order_still_gets_a_hint():
    err = missing("evaluation", "compare")
    assert "run the evaluate stage before compare" in err.hint and err.hint.endswith("tune, compare)")


def test_every_stage_output_is_a_field_and_the_order_is_the_pipelines():
    names = {f.name for f in dataclasses.fields(RunState)}
    assert set(PRODUCERS) <= names
    assert tuple(STAGES) == STAGE_ORDER
    assert {producer for producer, _ in PRODUCERS.values()} == set(STAGE_ORDER)


def test_state_types_are_importable_from_the_pipeline_too():
    from recsys import pipeline, run_state

    assert pipeline.RunState is run_state.RunState and pipeline.RunLevelState is run_state.RunLevelState


def _runtime_imports(path: Path) -> set[str]:
    """Modules ``path`` imports outside ``if TYPE_CHECKING:`` blocks (function bodies included)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
               for stmt in block.body for node in ast.walk(stmt)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_state_module_imports_no_stage_and_no_stage_imports_the_pipeline():
    assert {m for m in _runtime_imports(ROOT / "run_state.py") if m.startswith("recsys")} == {"recsys.errors"}
    for stage in ("embed", "train", "evaluate", "diagnose", "tune"):
        assert "recsys.pipeline" not in _runtime_imports(ROOT / stage / "stage.py"), stage
