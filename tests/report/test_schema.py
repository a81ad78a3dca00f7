"""The report schemas: every table of DESIGN.md, documented column by column, and docs/report.md in step."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from recsys.errors import ConfigError
from recsys.report.schema import (
    TABLE_DOCS,
    TABLES,
    UTC_TIMESTAMP,
    column_docs,
    json_columns,
    required_columns,
    schema_for,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "report.md"

DESIGN_TABLES = [
    "runs", "datasets", "metrics", "user_metrics", "recommendations", "comparisons",
    "curves", "grad_stats", "findings", "feature_importance", "embedding_health", "trials", "rankings", "insights",
    "external_lists",
]


def test_every_design_table_is_defined_once():
    assert list(TABLES) == DESIGN_TABLES
    assert list(TABLE_DOCS) == DESIGN_TABLES


@pytest.mark.parametrize("table", DESIGN_TABLES)
def test_every_table_starts_with_a_required_run_id(table):
    field = TABLES[table].field(0)
    assert (field.name, field.type, field.nullable) == ("run_id", pa.string(), False)


@pytest.mark.parametrize("table", DESIGN_TABLES)
def test_every_column_has_a_one_line_doc(table):
    docs = column_docs(table)
    assert list(docs) == TABLES[table].names
    for name, doc in docs.items():
        assert doc.strip() and "\n" not in doc and "|" not in doc, (table, name, doc)


@pytest.mark.parametrize("table", DESIGN_TABLES)
def test_ids_are_text(table):
    for name in ("user_id", "item_id", "trial_id", "run_id"):
        if name in TABLES[table].names:
            assert TABLES[table].field(name).type == pa.string(), (table, name)


def test_runs_table_has_the_lifecycle_columns():
    runs = TABLES["runs"]
    assert runs.names == ["run_id", "status", "started_at", "ended_at", "config", "versions",
                          "host", "cluster", "stages", "error"]
    assert runs.field("started_at").type == UTC_TIMESTAMP == pa.timestamp("us", tz="UTC")
    assert not runs.field("started_at").nullable
    assert runs.field("ended_at").nullable and runs.field("error").nullable
    assert json_columns("runs") == ["config", "versions", "cluster", "stages"]


def test_datasets_table_counts_are_int64():
    counts = ["n_rows", "n_users", "n_items", "n_catalog_items", "n_cold_users", "n_cold_items",
              "n_cold_rows", "n_leakage_rows", "n_leakage_users", "n_timestamp_ties"]
    schema = TABLES["datasets"]
    assert schema.names == ["run_id", "dataset", "stage", *counts, "details"]
    assert all(schema.field(name).type == pa.int64() for name in counts)
    assert required_columns("datasets") == ["run_id", "dataset", "stage", "n_rows"]
    assert json_columns("datasets") == ["details"]


def test_tables_filled_later_have_their_keys():
    assert {"dataset", "model", "split", "segment", "metric", "k", "value", "ci_low", "ci_high",
            "n_users"} <= set(TABLES["metrics"].names)
    assert TABLES["metrics"].field("k").type == pa.int32() and TABLES["metrics"].field("k").nullable
    assert {"step", "epoch", "layer", "grad_norm", "weight_norm", "update_ratio", "nan_count",
            "inf_count", "rows_touched_share"} <= set(TABLES["grad_stats"].names)
    assert json_columns("findings") == ["location", "evidence", "remedy"]
    assert json_columns("trials") == ["config", "metrics", "remedies", "val_curve"]
    assert {"round", "trial_id", "status", "stopped_at", "origin_remedy"} <= set(TABLES["trials"].names)


def test_unknown_table_error_lists_the_known_tables():
    with pytest.raises(ConfigError, match="unknown report table 'metric'.*use one of: runs, datasets, metrics"):
        schema_for("metric")


# ------------------------------------------------------------- docs/report.md


def _arrow_type_name(dtype: pa.DataType) -> str:
    return "timestamp[us, UTC]" if dtype == UTC_TIMESTAMP else str(dtype)


def _doc_sections() -> dict[str, list[str]]:
    """Table name -> the column rows of its markdown table in docs/report.md."""
    text = DOC.read_text(encoding="utf-8")
    tables_part = text.split("\n## Tables\n", 1)[1].split("\n## ", 1)[0]
    sections = {}
    for block in re.split(r"\n### ", "\n" + tables_part)[1:]:
        name, body = block.split("\n", 1)
        sections[name.strip()] = [line for line in body.splitlines() if line.startswith("| `")]
    return sections


def test_docs_document_every_table():
    assert list(_doc_sections()) == list(TABLES)


@pytest.mark.parametrize("table", DESIGN_TABLES)
def test_docs_document_every_column_with_type_and_meaning(table):
    expected = [
        f"| `{field.name}` | {_arrow_type_name(field.type)} | {'' if field.nullable else 'yes'} | "
        f"{column_docs(table)[field.name]} |"
        for field in TABLES[table]
    ]
    assert _doc_sections()[table] == expected, "docs/report.md is out of step with recsys/report/schema.py"

