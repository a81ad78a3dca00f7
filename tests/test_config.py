"""Hydra configuration: every group composes against its dataclass schema; mistakes are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from rayjobs._common import CONFIG_DIR, compose
from recsys.config import GROUP_SCHEMAS, RecsysConfig

REPO = Path(__file__).resolve().parents[1]


def test_defaults_compose_to_the_dataclass_tree():
    cfg = compose()
    assert isinstance(cfg, RecsysConfig)
    assert cfg.dataset.name == "synthetic"
    assert cfg.ray.address is None
    assert cfg.split.ratios == [0.8, 0.1, 0.1]


@pytest.mark.parametrize("group", ["dataset", "encoder", "model", "train", "eval", "compare", "diagnose", "tune", "report",
                                   "ray"])
def test_every_group_has_configs_that_compose(group):
    files = sorted((Path(CONFIG_DIR) / group).glob("*.yaml"))
    assert files, f"configs/{group}/ is empty"
    for file in files:
        cfg = compose([f"{group}={file.stem}"])
        assert cfg is not None


def test_group_schemas_cover_the_documented_groups():
    assert set(GROUP_SCHEMAS) >= {"dataset", "encoder", "train", "eval", "diagnose", "tune", "report", "ray"}


def test_dataset_choices_set_their_loader():
    assert compose(["dataset=movielens", "dataset.path=x"]).dataset.name == "movielens"
    assert compose(["dataset=amazon", "dataset.path=x"]).dataset.name == "amazon"
    table = compose(["dataset=table", "dataset.interactions=f.parquet", "dataset.columns.user_id=uid"])
    assert table.dataset.columns["user_id"] == "uid"


def test_overrides_reach_nested_settings():
    cfg = compose(["split.protocol=temporal", "split.ratios=[0.7,0.15,0.15]", "data.min_user_interactions=5",
                   "dataset.synthetic.n_users=77", "ray.address=auto", "report.dir=/tmp/r"])
    assert cfg.split.protocol == "temporal"
    assert cfg.split.ratios == [0.7, 0.15, 0.15]
    assert cfg.data.min_user_interactions == 5
    assert cfg.dataset.synthetic.n_users == 77
    assert cfg.ray.address == "auto"


def test_misspelt_key_is_an_error_that_names_it():
    with pytest.raises(ConfigCompositionException, match="split.protocl"):
        compose(["split.protocl=random"])


def test_wrong_type_is_an_error_that_names_the_key():
    with pytest.raises(ConfigCompositionException) as info:
        compose(["split.seed=abc"])
    cause = info.value.__cause__
    assert isinstance(cause, ValidationError)
    assert "split.seed" in str(cause) and "abc" in str(cause)


def test_unknown_key_in_a_group_file_is_rejected(tmp_path):
    bad = tmp_path / "configs"
    subprocess.run(["cp", "-r", CONFIG_DIR, str(bad)], check=True)
    (bad / "dataset" / "typo.yaml").write_text("defaults:\n  - base_dataset\n  - _self_\nnmae: oops\n")
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(bad), version_base=None):
        with pytest.raises(Exception, match="nmae"):
            hydra_compose(config_name="config", overrides=["dataset=typo"])
    GlobalHydra.instance().clear()


def test_command_line_reports_a_bad_override_without_running(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "rayjobs.prepare", "split.protocl=x", f"report.dir={tmp_path}/r"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0
    assert "split.protocl" in result.stderr
    assert not (tmp_path / "r").exists()


def test_model_settings_are_typed_per_model():
    cfg = compose(["model.two_tower.depth=3", "models=[mf,two_tower]"])
    assert cfg.model.two_tower.depth == 3 and cfg.models == ["mf", "two_tower"]
    assert cfg.model.sasrec.max_len == 200                      # the other models keep their defaults
    with pytest.raises(ConfigCompositionException, match="model.two_tower.dpeth"):
        compose(["model.two_tower.dpeth=3"])
    with pytest.raises(ConfigCompositionException) as info:
        compose(["model.mf.dim=big"])
    assert "model.mf.dim" in str(info.value.__cause__)
