"""``recsys evaluate --lists FILE --dataset DIR``: lists from outside evaluated without a pipeline run.

The lists are evaluated on a prepared dataset (a directory ``python -m rayjobs.prepare``
left, with ``manifest.json``) by the rules of :mod:`recsys.evaluate.external`, and
written as a normal report directory (``runs``, ``datasets``, ``metrics``,
``user_metrics``, ``recommendations``, ``comparisons`` between the lists,
``external_lists``), so ``recsys report show`` / ``html`` / ``query`` work on it.
Without item vectors there is no ``diversity``; everything else a list can have is there.

>>> args = build_parser().parse_args(["--lists", "prod=a.csv", "--lists", "b.run", "--dataset", "d", "--k", "5"])
>>> [(e.name, e.path) for e in list_configs(args.lists, "auto", "test")], args.k
([('prod', 'a.csv'), ('b', 'b.run')], [5])
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import PurePosixPath

from recsys.errors import ConfigError
from recsys.evaluate.config import EvalConfig, check_eval_config
from recsys.evaluate.external_files import FORMATS, LIST_SPLITS, ExternalListConfig

DEFAULT_ROOT = "reports"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``recsys evaluate`` on ``parser``."""
    parser.add_argument("--lists", action="append", required=True, metavar="[NAME=]FILE",
                        help="a list file (Parquet/CSV/TSV user_id,item_id,score[,rank] or a TREC run); "
                             "repeatable; NAME defaults to the file name without extension")
    parser.add_argument("--dataset", required=True, metavar="DIR", help="a prepared dataset directory (manifest.json)")
    parser.add_argument("--k", type=int, nargs="+", default=None, metavar="K",
                        help="cut-offs (default: those of eval.k, 5 10 20)")
    parser.add_argument("--split", choices=LIST_SPLITS, default="test",
                        help="the split the lists recommend for (default: test)")
    parser.add_argument("--format", choices=FORMATS, default="auto", help="format of every list (default: auto)")
    parser.add_argument("--out", metavar="DIR", help=f"report directory (default: {DEFAULT_ROOT}/<run_id>)")
    parser.add_argument("--bootstrap-samples", type=int, default=None, metavar="N",
                        help="resamples for confidence intervals (default: eval.bootstrap_samples)")
    parser.set_defaults(handler=cmd_evaluate)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the options of ``recsys evaluate`` (the console script adds the same)."""
    return add_arguments(argparse.ArgumentParser(prog="recsys evaluate"))


def list_configs(specs: list[str], fmt: str, split: str) -> list[ExternalListConfig]:
    """``[NAME=]FILE`` arguments as :class:`ExternalListConfig` (a name is given once).

    >>> list_configs(["x/a.csv", "y/a.tsv"], "auto", "test")
    Traceback (most recent call last):
    ...
    recsys.errors.ConfigError: setting '--lists': two lists are named 'a'. What to do: name them: --lists NAME=FILE
    """
    out, names = [], set()
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = PurePosixPath(spec).stem, spec
        if not name or not path:
            raise ConfigError(f"cannot read {spec!r}", setting="--lists", hint="write FILE or NAME=FILE")
        if name in names:
            raise ConfigError(f"two lists are named {name!r}", setting="--lists", hint="name them: --lists NAME=FILE")
        names.add(name)
        out.append(ExternalListConfig(name=name, path=path, format=fmt, split=split))
    return out


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate the lists and write the report directory; print the summary and the directory."""
    from recsys.data.prepared import PreparedDataset
    from recsys.evaluate.context import EvalContext
    from recsys.evaluate.external import check_lists_have_users, evaluate_lists
    from recsys.evaluate.stage import evaluation_segments, summary_table, write_evaluation
    from recsys.report.writer import RunWriter, new_run_id

    lists = list_configs(args.lists, args.format, args.split)
    cfg = EvalConfig(splits=[args.split], engine="local", external=lists)
    if args.k is not None:
        cfg.k = list(args.k)
    if args.bootstrap_samples is not None:
        cfg.bootstrap_samples = args.bootstrap_samples
    check_eval_config(cfg)
    prepared = PreparedDataset.open(args.dataset)
    ctx = EvalContext.from_prepared(prepared, None, cfg)
    rows, counts = evaluate_lists(lists, ctx, cfg)        # every file is read and checked before a report exists
    check_lists_have_users(rows)
    run_id = new_run_id()
    out = args.out or f"{DEFAULT_ROOT}/{run_id}"
    config = {"command": "recsys evaluate", "dataset": str(args.dataset), "eval": asdict(cfg)}
    segments, groups = evaluation_segments(ctx, cfg)
    with RunWriter(out, run_id=run_id, config=config) as writer:
        with writer.transaction():
            writer.write("datasets", [dict(row, dataset=ctx.dataset) for row in prepared.audit_rows()])
            writer.write("external_lists", [dict(found.row(), dataset=ctx.dataset) for found in counts])
            summaries = write_evaluation(writer, rows, ctx, cfg, segments, groups)
        writer.mark_stage_done("evaluate")
    for found in counts:
        if found.warnings():
            print(f"list {found.model}: {found.warnings()}")
    print(f"evaluation of {len(rows)} list(s) on {ctx.dataset}/{args.split} (no auc: lists rank only their own items):")
    print(summary_table(summaries, list(cfg.k)))
    print(f"report: {out}")
    return 0

