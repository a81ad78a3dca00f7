"""Bad data files on the default Ray engines end like the local engine: one ``error:`` line, exit 2, nothing else.

Every case runs the whole pipeline entry point (``rayjobs.pipeline``'s ``run_entry``)
in this process, on one shared Ray session that forwards worker output to the driver
(``log_to_driver``), and captures what reaches file descriptors 1 and 2: the console,
what Ray prints, and what the workers print through Ray's log monitor.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Callable

import polars as pl
import pytest

from rayjobs._common import CONFIG_DIR, run_entry
from recsys.pipeline import run_stages
from recsys.report.reader import load_tables

pytestmark = pytest.mark.ray

RATINGS_HEADER = "userId,movieId,rating,timestamp\n"
MOVIES = "movieId,title,genres\n1,Toy Story (1995),Comedy\n2,Heat (1995),Action\n"
GOOD_ROWS = "1,1,4.0,964982703\n1,2,3.0,964982704\n2,1,5.0,964982705\n"


def _movielens(ratings: str | bytes) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        data = root / "ml"
        data.mkdir()
        (data / "ratings.csv").write_bytes(ratings if isinstance(ratings, bytes) else ratings.encode())
        (data / "movies.csv").write_text(MOVIES)
        return ["dataset=movielens", f"dataset.path={data}"]

    return make


def _table(name: str, content: str | bytes | Callable[[Path], None], *extra: str) -> Callable[[Path], list[str]]:
    def make(root: Path) -> list[str]:
        path = root / name
        if callable(content):
            content(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return ["dataset=table", f"dataset.interactions={path}", *extra]

    return make


def _parquet(frame: pl.DataFrame, truncate: bool = False) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        frame.write_parquet(path)
        if truncate:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])

    return write


def _ml100k_with_commas(root: Path) -> list[str]:
    data = root / "ml-100k"
    data.mkdir()
    (data / "u.data").write_text("196,242,3,881250949\n186,302,3,891717742\n")
    flags = "|".join(["0"] * 19)
    (data / "u.item").write_bytes(f"242|Kolya (1996)|24-Jan-1997||http://x|{flags}\n".encode("latin-1"))
    return ["dataset=movielens", f"dataset.path={data}"]


TABLE_OK = pl.DataFrame({"user_id": ["u1", "u2"], "item_id": ["i1", "i2"], "timestamp": [1_600_000_000] * 2})

# case id -> (make the input and return its overrides, words the error line must hold)
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "movielens_missing_item_column": (_movielens("userId,rating,timestamp\n1,4.0,964982703\n"),
                                      ["ratings.csv", "movieId"]),
    "movielens_empty_ratings": (_movielens(""), ["ratings.csv"]),
    "movielens_header_only": (_movielens(RATINGS_HEADER), ["ratings.csv"]),
    "movielens_bad_timestamp": (_movielens(RATINGS_HEADER + "1,1,4.0,yesterday\n"), ["ratings.csv", "timestamp"]),
    "movielens_bad_rating": (_movielens(RATINGS_HEADER + "1,1,good,964982703\n"), ["ratings.csv", "rating"]),
    "movielens_binary_garbage": (_movielens(bytes(range(256)) * 4), ["ratings.csv"]),
    "movielens_rating_off_scale": (_movielens(RATINGS_HEADER + GOOD_ROWS + "2,2,9.0,964982706\n"),
                                   ["ratings.csv", "rating"]),
    "movielens_nan_rating": (_movielens(RATINGS_HEADER + GOOD_ROWS + "2,2,NaN,964982706\n"),
                             ["ratings.csv", "rating"]),
    "ml100k_wrong_delimiter": (_ml100k_with_commas, ["u.data"]),
    "table_missing_item_column": (_table("events.csv", "user_id,timestamp\nu1,1600000000\n"),
                                  ["events.csv", "item_id"]),
    "table_empty_file": (_table("events.csv", ""), ["events.csv"]),
    "table_header_only": (_table("events.csv", "user_id,item_id,timestamp\n"), ["events.csv"]),
    "table_bad_timestamp": (_table("events.csv", "user_id,item_id,timestamp\nu1,i1,not-a-time\n"),
                            ["events.csv", "timestamp"]),
    "table_binary_garbage_csv": (_table("events.csv", struct.pack("<64d", *range(64))), ["events.csv"]),
    "table_truncated_parquet": (_table("events.parquet", _parquet(TABLE_OK, truncate=True)), ["events.parquet"]),
    "table_parquet_missing_item_column": (_table("events.parquet", _parquet(TABLE_OK.drop("item_id"))),
                                          ["events.parquet", "item_id"]),
    "table_mapped_column_missing": (_table("events.parquet", _parquet(TABLE_OK), "+dataset.columns.rating=stars"),
                                    ["events.parquet", "stars"]),
    "table_file_missing": (lambda root: ["dataset=table", f"dataset.interactions={root}/nowhere.csv"],
                           ["nowhere.csv"]),
}

@pytest.fixture(scope="session")
def ray_forwarding_worker_output():
    """The shared Ray session, started here (before conftest's ``ray_session``, which then reuses it) when no
    earlier test started it: worker output forwarded to the driver, as a run has it, so a worker's traceback
    would reach the captured output unless the console sends it to the log file. Yields whether it forwards."""
    import ray

    from recsys.ray_output import capture_ray_output
    from recsys.runtime import RayConfig, init_ray

    started_here = not ray.is_initialized()
    init_ray(RayConfig(num_cpus=2, include_dashboard=False, log_to_driver=True))
    yield started_here or capture_ray_output()
    if started_here:
        ray.shutdown()


@pytest.fixture
def restore_logging():
    """run_entry routes the root logger for a run; put pytest's handlers back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def run_pipeline_entry(overrides: list[str]) -> int:
    """``python -m rayjobs.pipeline <overrides>`` in this process; returns the exit code."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    try:
        run_entry(lambda config: run_stages(config), cfg)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_data_file_ends_with_one_error_line(case, tmp_path, capfd, ray_forwarding_worker_output,
                                                  restore_logging):
    make, words = CASES[case]
    overrides = make(tmp_path) + [f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache",
                                  "ray.num_cpus=2", "tune.enabled=false"]
    code = run_pipeline_entry(overrides)
    out, err = capfd.readouterr()
    both = out + err
    errors = [line for line in both.splitlines() if line.startswith("error:")]
    assert code == 2, both[-3000:]
    assert len(errors) == 1, both[-3000:]
    assert all(word in errors[0] for word in words), errors[0]
    assert "Traceback" not in both, both[-3000:]
    tables = load_tables(str(tmp_path / "run"))
    runs = tables["runs"]
    assert runs.height == 1 and runs["status"][0] == "failed"
    assert {name for name, frame in tables.items() if name != "runs" and frame.height} == set()
    log = (tmp_path / "run" / "run.log").read_text()
    assert "Traceback" in log, "the error's full story is in the run's log file"


def test_an_unexpected_error_shows_its_traceback_once_and_the_log_path(tmp_path, capfd,
                                                                       ray_forwarding_worker_output,
                                                                       restore_logging):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from recsys.console import attach_run_log

    def failing(config) -> None:
        attach_run_log(tmp_path / "run")
        raise ZeroDivisionError("not a user error")

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=[])
    with pytest.raises(SystemExit) as stop:
        run_entry(failing, cfg)
    out, err = capfd.readouterr()
    assert stop.value.code == 1
    assert (out + err).count("Traceback") == 1 and "ZeroDivisionError: not a user error" in err
    assert f"{tmp_path / 'run' / 'run.log'}" in err.splitlines()[-1]


def _fail_in_worker(config: dict) -> None:
    from recsys.errors import DataError

    raise DataError("3 rows have no item id", file=config["file"], column="item_id", hint="fix the file")


def test_a_recsys_error_in_a_ray_train_worker_or_an_actor_is_found_behind_rays_wrappers(
        tmp_path, ray_forwarding_worker_output):
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from recsys.errors import DataError
    from recsys.runtime import user_error

    trainer = TorchTrainer(_fail_in_worker, train_loop_config={"file": "events.csv"},
                           scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                           run_config=RunConfig(name="fails", storage_path=str(tmp_path),
                                                failure_config=FailureConfig(max_failures=0)))
    with pytest.raises(Exception) as trained:
        trainer.fit()
    found = user_error(trained.value)
    assert isinstance(found, DataError) and found is not trained.value
    assert (found.file, found.column) == ("events.csv", "item_id")

    @ray.remote(num_cpus=0)
    class Reader:
        def read(self) -> None:
            _fail_in_worker({"file": "items.parquet"})

    with pytest.raises(Exception) as read:
        ray.get(Reader.remote().read.remote())
    found = user_error(read.value)
    assert isinstance(found, DataError) and found.file == "items.parquet"
    assert str(found) == "items.parquet, column 'item_id': 3 rows have no item id. What to do: fix the file"


def test_an_unexpected_error_in_a_ray_task_shows_one_traceback(tmp_path, capfd, ray_forwarding_worker_output,
                                                               restore_logging):
    import ray
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from recsys.console import attach_run_log

    @ray.remote(num_cpus=0)
    def divide(n: int) -> float:
        return n / 0

    def failing(config) -> None:
        attach_run_log(tmp_path / "run")
        ray.get(divide.remote(1))

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base=None):
        cfg = compose(config_name="config", overrides=[])
    with pytest.raises(SystemExit) as stop:
        run_entry(failing, cfg)
    out, err = capfd.readouterr()
    assert stop.value.code == 1
    assert (out + err).count("Traceback (most recent call last)") == 1, out + err
    assert "ZeroDivisionError: division by zero" in err and "in divide" in err     # the worker's own frame
    assert "run.log" in err.splitlines()[-1]


TINY_SYNTHETIC = ["dataset=synthetic", "dataset.synthetic.n_users=120", "dataset.synthetic.n_items=60",
                  "dataset.synthetic.n_topics=3", "dataset.synthetic.mean_interactions_per_user=8",
                  "train.epochs=1", "train.batch_size=256", "data.engine=local", "encoder.engine=local",
                  "train.engine=local", "eval.engine=local"]


def test_a_recsys_error_in_a_tune_trial_ends_with_one_error_line(tmp_path, capfd, ray_forwarding_worker_output,
                                                                 restore_logging):
    """A setting only a trial's model rejects (lightgcn's dim 0, from the search space) fails every trial:
    the run ends as a bad data file does, with the model's own ConfigError."""
    overrides = TINY_SYNTHETIC + [
        "models=[lightgcn]", "tune.model=lightgcn", "tune.mode=undirected", "tune.rounds=1", "tune.trials=2",
        "tune.epochs=1", "tune.space.model.lightgcn.dim={type:choice,values:[0]}", "diagnose.enabled=false",
        f"report.dir={tmp_path}/run", f"data.cache_dir={tmp_path}/cache", "ray.num_cpus=2"]
    code = run_pipeline_entry(overrides)
    out, err = capfd.readouterr()
    both = out + err
    errors = [line for line in both.splitlines() if line.startswith("error:")]
    assert code == 2, both[-3000:]
    assert len(errors) == 1 and "model.lightgcn" in errors[0], both[-3000:]
    assert "Traceback" not in both, both[-3000:]
    runs = load_tables(str(tmp_path / "run"))["runs"]
    assert runs.height == 1 and runs["status"][0] == "failed"
    assert "Traceback" in (tmp_path / "run" / "run.log").read_text()
