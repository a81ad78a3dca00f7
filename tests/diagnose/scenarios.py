"""Planted faults for the diagnosis rules: each fault as configuration, and the findings it must cause.

A :class:`Scenario` is a real run of the pipeline on a tiny synthetic dataset
(:data:`BASE`) with one fault planted through Hydra-style overrides: a learning
rate 100x too high, a deep MLP with a tiny init and no normalisation, text that says nothing
about the items, ... It names the models judged, the finding codes that must
appear (at ``warning`` or worse unless a minimum is given: ``"TEXT_DOMINANT:info"``)
and the codes that must not. A *healthy* scenario must produce no warning or
critical finding for any judged model at all.

Training-telemetry scenarios run ``prepare, embed, train`` and diagnose the run's
tables with :func:`recsys.diagnose.engine.diagnose`; outcome and feature
scenarios also run ``evaluate`` and ``diagnose`` and read the ``findings`` table the
diagnose stage wrote. Every run shares one preparation and embedding cache
(``data.cache_dir``), so a dataset is prepared and embedded once per session.

``tests/diagnose/test_planted_faults.py`` asserts every scenario;
``python -m benchmarks.diagnosis_matrix`` prints the expected-vs-found matrix.

>>> SCENARIOS[0].name, SCENARIOS[0].healthy
('healthy', True)
>>> check(scenario("lr_too_low"), [Found("mf", "LR_TOO_LOW", "warning", "..."),
...                                Found("mf", "LOSS_PLATEAU", "warning", "...")])
[]
>>> check(scenario("lr_too_low"), [Found("mf", "LR_TOO_LOW", "info", "...")])
['expected LR_TOO_LOW at warning or worse, found it at info', 'expected LOSS_PLATEAU, not found']
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SHARED_COMPONENTS = ("text_encoder",)          # findings about what every model shares are always judged
TELEMETRY_STAGES = ("prepare", "embed", "train")
FULL_STAGES = ("prepare", "embed", "train", "evaluate", "diagnose")

# A tiny synthetic world (300 users, 200 items in 4 topics, ~15 interactions each), every engine in
# this process, a small batch so an epoch has ~28 steps, dense loss and gradient probes.
BASE = (
    "dataset.synthetic.n_users=300", "dataset.synthetic.n_items=200", "dataset.synthetic.n_topics=4",
    "dataset.synthetic.mean_interactions_per_user=15",
    "data.engine=local", "encoder.engine=local", "train.engine=local", "eval.engine=local",
    "ray.num_cpus=2", "ray.log_to_driver=false",
    "train.batch_size=128", "train.epochs=6", "train.lr=0.01", "train.patience=0",
    "train.log_every=2", "train.probe_every=5",
    # models pinned, so tuning the defaults elsewhere does not move the scenarios
    "model.mf.dim=32", "model.mf.init_std=0.1",
    "model.two_tower.dim=32", "model.two_tower.width=64", "model.two_tower.depth=1", "model.two_tower.norm=layer",
    "model.two_tower.dropout=0.1", "model.two_tower.history_dropout=0.0", "model.two_tower.use_item_id=true",
    "model.two_tower.use_text=true", "model.content.projection=linear", "model.content.dim=32",
    "model.sasrec.dim=32", "model.sasrec.layers=1", "model.sasrec.heads=2", "model.sasrec.dropout=0.2",
    "model.sasrec.max_len=50", "model.sasrec.use_text=true", "model.sasrec.use_item_id=true",
    "model.lightgcn.dim=32", "model.lightgcn.layers=2", "model.textgraph.dim=32", "model.textgraph.width=64",
)

# finetune scenarios: 16 tokens per item text and 32 shared sampled negatives per step; the model's defaults
# (32 and 128) take ~1.5x the time and prove nothing more on these short synthetic texts
FINETUNE = ("models=[finetune]", "model.finetune.max_tokens=16", "model.finetune.negatives=32")
# a smaller world (100 users, 80 items, ~10 steps an epoch) for the fine-tuning scenarios that need many epochs
SMALL_WORLD = ("dataset.synthetic.n_users=100", "dataset.synthetic.n_items=80")


@dataclass(frozen=True)
class Scenario:
    """One planted fault (or none), the models judged, and the codes that must and must not appear."""

    name: str
    fault: str                                   # what was planted, in words
    overrides: tuple[str, ...]                   # on top of BASE
    models: tuple[str, ...]                      # models judged
    expect: tuple[str, ...] = ()                 # "CODE" (warning or worse) or "CODE:severity" (at least that)
    forbid: tuple[str, ...] = ()                 # codes that must not appear at warning or worse
    healthy: bool = False                        # no warning or critical finding for any judged model
    full: bool = False                           # needs the evaluate and diagnose stages
    note: str = ""                               # what else the matrix shows, and why

    @property
    def stages(self) -> tuple[str, ...]:
        return FULL_STAGES if self.full else TELEMETRY_STAGES

    def config_overrides(self, report_dir: Path, cache_dir: Path) -> list[str]:
        return [*BASE, *self.overrides, f"report.dir={report_dir}", f"data.cache_dir={cache_dir}"]


@dataclass(frozen=True)
class Found:
    """One finding as the matrix shows it."""

    model: Optional[str]
    code: str
    severity: str
    message: str

    def label(self) -> str:
        return f"{self.code} ({self.severity})"


@dataclass
class Outcome:
    scenario: Scenario
    found: list[Found]
    seconds: float
    report_dir: Path
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems


SCENARIOS: list[Scenario] = [
    Scenario(
        "healthy", "none: sensible settings for every learned model, trained until early stopping ends them",
        ("models=[pop,mf,content,two_tower,sasrec,lightgcn,textgraph]", "train.epochs=12", "train.patience=3"),
        ("mf", "content", "two_tower", "sasrec", "lightgcn"), healthy=True,
        full=True,
        note="textgraph runs but is not judged: on this synthetic world its propagation pulls the vectors "
             "towards the average user (validation ndcg@10 0.216 against popularity's 0.200; 0.29 with layers=0 "
             "in 6 epochs), and its findings say so (UNDERFITTING, NOT_BEATING_POPULARITY, STOPPED_TOO_EARLY, "
             "SEGMENT_WEAKNESS for cold-start users). With 6 epochs content was still "
             "rising (STOPPED_TOO_EARLY, +9% over its last 3 epochs), hence 12 epochs with patience 3. "
             "sasrec's output item norms follow popularity (Spearman 0.70) while it recommends items 1.27x as "
             "popular as the held-out ones with 2.9x popularity's coverage: NORM_POPULARITY_COUPLING is info, "
             "a coupling without consequence"),
    Scenario(
        "healthy_telemetry", "none: sensible settings, training telemetry only",
        ("models=[mf,two_tower]",), ("mf", "two_tower"), healthy=True),
    Scenario(
        "lr_too_high", "learning rate 1.0, 100x the healthy 0.01 (Adam)",
        ("models=[mf]", "train.lr=1.0"), ("mf",),
        expect=("LOSS_DIVERGENCE",), forbid=("LR_TOO_LOW", "LOSS_PLATEAU", "VANISHING_GRADIENTS")),
    Scenario(
        "lr_50x", "learning rate 0.5, 50x the healthy 0.01 (Adam)",
        ("models=[mf]", "train.lr=0.5"), ("mf",),
        expect=("LOSS_DIVERGENCE",), forbid=("LR_TOO_LOW", "LOSS_PLATEAU", "VANISHING_GRADIENTS")),
    Scenario(
        "lr_20x", "learning rate 0.2, 20x the healthy 0.01 (Adam): the loss never falls below its start",
        ("models=[mf]", "train.lr=0.2"), ("mf",),
        expect=("LOSS_DIVERGENCE",), forbid=("LR_TOO_LOW", "LOSS_PLATEAU", "VANISHING_GRADIENTS"),
        note="the rise over the minimum is 0.06 (the minimum is the first point); the smoothed loss ends "
             "3.8% above its start, caught by curves.divergence_above_start (1%); the update ratio, 0.068, "
             "stays below LR_TOO_HIGH's 0.1"),
    Scenario(
        "exploding", "two_tower without any normalisation (no LayerNorm, unnormalised outputs) at lr 0.5, "
                     "50x the healthy 0.01",
        ("models=[two_tower]", "model.two_tower.normalize=false", "model.two_tower.norm=none",
         "model.two_tower.depth=2", "train.lr=0.5"), ("two_tower",),
        expect=("EXPLODING_GRADIENTS",), forbid=("LR_TOO_LOW", "LOSS_PLATEAU"),
        note="the same architecture at lr 0.1 or 0.001 has no finding; after the spike the output layer's "
             "gradient collapses (VANISHING_GRADIENTS) and the validation metric falls (OVERFITTING)"),
    Scenario(
        "lr_too_low", "learning rate 1e-6, 10,000x below the healthy 0.01",
        ("models=[mf]", "train.lr=1e-6"), ("mf",),
        expect=("LR_TOO_LOW", "LOSS_PLATEAU"),
        forbid=("LR_TOO_HIGH", "LOSS_DIVERGENCE", "EXPLODING_GRADIENTS", "OVERFITTING")),
    Scenario(
        "vanishing", "two_tower with 12 hidden layers per tower, weights drawn at std 0.01 (tiny init) and no "
                     "normalisation, no ID vectors",
        ("models=[two_tower]", "model.two_tower.depth=12", "model.two_tower.norm=none",
         "model.two_tower.mlp_init_std=0.01", "model.two_tower.use_item_id=false", "train.epochs=3",
         "train.lr=0.005"), ("two_tower",),
        expect=("VANISHING_GRADIENTS",),
        forbid=("LR_TOO_HIGH", "LR_TOO_LOW", "LOSS_DIVERGENCE", "EXPLODING_GRADIENTS"),
        note="the user tower's first bias gets 2e-12 of its output layer's gradient (PyTorch's default init: "
             "6e-6); the item tower's first layer starts near zero (2e-10) and recovers to 2.5e-4, a rise of "
             "1e6x that stays far below its peers' level (0.02), so EXPLODING_GRADIENTS does not count it"),
    Scenario(
        "overfitting", "mf with 128-dim vectors on ~3,600 training interactions, 15 epochs",
        ("models=[mf]", "model.mf.dim=128", "model.mf.init_std=0.01", "train.epochs=15"),
        ("mf",), expect=("OVERFITTING",),
        forbid=("UNDERFITTING", "LOSS_PLATEAU", "LR_TOO_LOW", "LOSS_DIVERGENCE")),
    Scenario(
        "underfitting", "one epoch at lr 1e-4: training stops long before the model learns",
        ("models=[pop,mf]", "train.lr=1e-4", "train.epochs=1"), ("mf",),
        expect=("UNDERFITTING", "NOT_BEATING_POPULARITY"), forbid=("OVERFITTING", "LOSS_DIVERGENCE"), full=True),
    Scenario(
        "stopped_too_early", "two epochs at lr 0.002 for a model that needs about twenty: the budget runs out "
                             "while the validation metric still rises",
        ("models=[pop,mf]", "train.lr=0.002", "train.epochs=2"), ("mf",),
        expect=("STOPPED_TOO_EARLY",), forbid=("OVERFITTING", "LOSS_DIVERGENCE", "EARLY_STOP_UNSTABLE")),
    Scenario(
        "popularity_users", "90% of the users pick items by global popularity only",
        ("models=[pop,mf]", "dataset.synthetic.popularity_user_fraction=0.9"), ("mf",),
        expect=("POPULARITY_BIAS",), forbid=("UNDERFITTING",), full=True),
    Scenario(
        "hard_segment", "a quarter of the users pick items uniformly at random (segment user_behaviour=random)",
        ("models=[pop,two_tower]", "dataset.synthetic.random_user_fraction=0.25"), ("two_tower",),
        expect=("SEGMENT_WEAKNESS",), forbid=("UNDERFITTING", "LOSS_DIVERGENCE"), full=True),
    Scenario(
        "text_ignored", "uninformative text: each item's text is its genre list, drawn at random "
                        "(text_informative=false, template {genres})",
        ("models=[pop,two_tower]", "dataset.synthetic.text_informative=false", 'encoder.template="{genres}"'),
        ("two_tower",), expect=("TEXT_IGNORED",), forbid=("TEXT_DOMINANT",), full=True,
        note="with the full template, random words still give every item a distinct vector, which the item "
             "tower uses as an ID: removing it then costs 22% of ndcg@10 and the text is not ignored"),
    Scenario(
        "text_important", "informative text, temporal split with 20% late-released (cold) items, "
                          "half the ID vectors dropped in training",
        ("models=[pop,two_tower]", "split.protocol=temporal", "dataset.synthetic.cold_item_fraction=0.2",
         "model.two_tower.id_dropout=0.5"),
        ("two_tower",), expect=("TEXT_DOMINANT:info",), forbid=("TEXT_IGNORED",), full=True),
    Scenario(
        "finetune_healthy", "none: finetune trains MiniLM's top layer at the default encoder learning rate 5e-5",
        FINETUNE, ("finetune",), healthy=True,
        note="the item text vectors keep a mean cosine of 0.97-0.98 to the pretrained ones; their anisotropy "
             "goes 0.33 -> 0.44; 86-97% of |score| comes from the text part; validation ndcg@10 peaks at epoch 4 "
             "(0.294) and ends at 0.290. With the model's default 32 tokens and 128 negatives the same run took "
             "165 s instead of 112 s here (one measurement each, load ~16 on 2 cores) and found nothing either"),
    Scenario(
        "finetune_encoder_lr_too_low", "finetune: its trained encoder layer at learning rate 1e-12",
        (*FINETUNE, "model.finetune.encoder_lr=1e-12", "train.epochs=2"), ("finetune",),
        expect=("ENCODER_NOT_LEARNING",),
        forbid=("ENCODER_FORGETTING", "TEXT_COLLAPSE", "FINETUNE_OVERFITTING", "LR_TOO_LOW"),
        note="16 of the model's 28 parameter tensors are the encoder block's, so the median update ratio is "
             "below LR_TOO_LOW's level; the other layers' median is healthy, so LR_TOO_LOW stays at info, "
             "explained by ENCODER_NOT_LEARNING, instead of advising a higher train.lr"),
    Scenario(
        "finetune_forgetting", "finetune: its top two encoder layers at learning rate 0.05, 1,000x the default, where "
                               "the pretrained text matters: a temporal split with 20% late-released (cold) items, "
                               "which have no ID vector and are scored from their text only",
        (*FINETUNE, *SMALL_WORLD, "split.protocol=temporal", "dataset.synthetic.cold_item_fraction=0.2",
         "model.finetune.train_layers=2", "model.finetune.encoder_lr=0.05", "train.epochs=8"), ("finetune",),
        expect=("ENCODER_FORGETTING",), forbid=("ENCODER_NOT_LEARNING",),
        note="in the first epoch the text vectors turn away from the pretrained ones (cosine -0.12) and collapse "
             "(anisotropy 1.00, pretrained 0.33: TEXT_COLLAPSE too); validation ndcg@10 peaks at 0.327 (epoch 5) "
             "and ends at 0.265 (-19%), while the same run at the default encoder rate 5e-5 keeps rising to "
             "0.379 (cosine 0.91 at the end). The all-layer version of this fault took 59 min "
             "(benchmarks/RESULTS.md); at k=2 on 100 users and 80 items it takes about a minute"),
    Scenario(
        "finetune_overfitting", "finetune without item ID vectors: its top two encoder layers at learning rate 3e-4 "
                                "(6x the default, 3x the rest of the model's 1e-4) on a small sparse world "
                                "(100 users, 80 items, ~6 interactions each), 10 epochs",
        (*FINETUNE, *SMALL_WORLD, "dataset.synthetic.mean_interactions_per_user=6", "model.finetune.use_item_id=false",
         "model.finetune.train_layers=2", "model.finetune.encoder_lr=3e-4", "train.lr=1e-4", "train.batch_size=64",
         "train.epochs=10", "train.seed=1"), ("finetune",),
        expect=("FINETUNE_OVERFITTING",), forbid=("ENCODER_NOT_LEARNING", "TEXT_COLLAPSE"),
        note="validation ndcg@10 goes 0.252 -> 0.373 (epoch 2) -> 0.242, the smoothed curve 25% below its best, "
             "while block 5's CKA to its pretrained output keeps falling after the best (0.90 -> 0.78; the drift "
             "cosine 0.54 -> 0.50). The control, the same settings at train_layers=0, rises to its last epoch "
             "(0.067 -> 0.292: STOPPED_TOO_EARLY only). At train.seed=0 the plant falls 12% (best 0.291) and its "
             "control 2.5% (no finding); that control run for 20 epochs falls 8.6%, so the frozen model overfits "
             "too, later: fine-tuning overfits sooner and further. ENCODER_FORGETTING (warning) fires beside it "
             "(first-epoch cosine 0.58 and the same fall), OVERFITTING (critical) too"),
    Scenario(
        "finetune_text_collapse", "finetune: its top two encoder layers at learning rate 0.05, 1,000x the default",
        (*FINETUNE, "model.finetune.encoder_lr=0.05", "model.finetune.train_layers=2", "train.epochs=2"),
        ("finetune",),
        expect=("TEXT_COLLAPSE",), forbid=("ENCODER_NOT_LEARNING",),
        note="two epochs keep it inside the matrix's 300 s (6 epochs: 234-300+ s here); measured over 6 at the "
             "model's default 32 tokens and 128 negatives: "
             "in the first epoch the text vectors turn away from the pretrained ones (cosine -0.04) and all "
             "point one way (anisotropy 1.00, pretrained 0.31); the ID vectors carry the ranking, so validation "
             "keeps rising and ENCODER_FORGETTING stays silent. With every layer trained at this rate validation "
             "falls 13% from its best and ENCODER_FORGETTING is critical too (benchmarks/RESULTS.md; 59 min here)"),
]


def scenario(name: str) -> Scenario:
    """The scenario called ``name``."""
    for sc in SCENARIOS:
        if sc.name == name:
            return sc
    raise KeyError(f"no scenario {name!r}; scenarios are {', '.join(s.name for s in SCENARIOS)}")


def _code_and_level(entry: str) -> tuple[str, str]:
    code, _, level = entry.partition(":")
    return code, level or "warning"


def check(sc: Scenario, found: list[Found]) -> list[str]:
    """What is wrong with ``found`` for scenario ``sc`` (empty when it passes)."""
    judged = [f for f in found if f.model is None or f.model in (*sc.models, *SHARED_COMPONENTS)]
    problems = []
    for entry in sc.expect:
        code, level = _code_and_level(entry)
        hits = [f for f in judged if f.code == code]
        if not hits:
            problems.append(f"expected {code}, not found")
        elif max(SEVERITY_RANK[f.severity] for f in hits) < SEVERITY_RANK[level]:
            worst = max(hits, key=lambda f: SEVERITY_RANK[f.severity])
            problems.append(f"expected {code} at {level} or worse, found it at {worst.severity}")
    serious = [f for f in judged if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["warning"]]
    for code in sc.forbid:
        for f in serious:
            if f.code == code:
                problems.append(f"{code} must not appear, found it ({f.severity}) for {f.model}")
    if sc.healthy:
        problems += [f"healthy run has {f.code} ({f.severity}) for {f.model}" for f in serious]
    return problems


def describe(found: list[Found]) -> str:
    """Every finding, one line each, for a failure message."""
    if not found:
        return "  (no findings)"
    return "\n".join(f"  {f.model or '-'}: {f.code} ({f.severity}) {f.message}" for f in found)


def missing_stages(sc: Scenario) -> list[str]:
    """Stages ``sc`` needs that this build cannot run (the diagnose stage may also run on the finished run)."""
    from recsys.pipeline import STAGES

    missing = [s for s in sc.stages if s not in STAGES]
    if "diagnose" in missing:
        try:
            from recsys.diagnose.stage import diagnose_run  # noqa: F401
            missing.remove("diagnose")
        except ImportError:
            pass
    return missing


@contextmanager
def single_threaded() -> Iterator[None]:
    """Torch on one intra-op thread: tiny models only lose time to thread hand-offs on a shared 2-CPU machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _findings(report_dir: Path, cfg, ran_diagnose: bool) -> list[Found]:
    from recsys.diagnose.engine import diagnose
    from recsys.diagnose.inputs import DiagnosisInputs
    from recsys.report.reader import load_tables

    tables = load_tables(str(report_dir))
    if ran_diagnose:
        rows = tables["findings"]
        return [Found(r["model"], r["code"], r["severity"], r["message"]) for r in rows.iter_rows(named=True)]
    return [Found(f.model, f.code, f.severity, f.message)
            for f in diagnose(DiagnosisInputs.from_tables(tables), cfg.diagnose)]


def run_scenario(sc: Scenario, workdir: Path, cache_dir: Path) -> Outcome:
    """Run ``sc`` under ``workdir/<name>`` with the shared ``cache_dir`` and judge its findings."""
    from rayjobs._common import compose
    from recsys.pipeline import STAGES, run_stages

    started = time.perf_counter()
    report_dir = Path(workdir) / sc.name
    cfg = compose(sc.config_overrides(report_dir, Path(cache_dir)))
    stages = [s for s in sc.stages if s in STAGES]
    with single_threaded():
        run_stages(cfg, stages)
        if "diagnose" in sc.stages and "diagnose" not in stages:
            from recsys.diagnose.stage import diagnose_run

            diagnose_run(report_dir, cfg)
    found = _findings(report_dir, cfg, "diagnose" in sc.stages)
    outcome = Outcome(sc, found, time.perf_counter() - started, report_dir)
    outcome.problems = check(sc, found)
    logging.getLogger(__name__).info("scenario %s: %s in %.1f s", sc.name, "pass" if outcome.passed else "FAIL",
                                     outcome.seconds)
    return outcome


def _cell(found: list[Found], models: tuple[str, ...]) -> str:
    shown = [f for f in found if f.model is None or f.model in (*models, *SHARED_COMPONENTS)]
    if not shown:
        return "none"
    many = len({f.model for f in shown}) > 1
    return ", ".join(f"{f.model}: {f.label()}" if many else f.label() for f in shown)


def matrix_markdown(outcomes: list[Outcome]) -> str:
    """The expected-vs-found matrix as a Markdown table, then the notes of the scenarios that have one."""
    lines = ["| scenario | planted fault | judged | expected | must not appear | found | result | s |",
             "|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        sc = o.scenario
        expected = "no warning or critical finding" if sc.healthy else ", ".join(sc.expect)
        result = "pass" if o.passed else "FAIL: " + "; ".join(o.problems)
        lines.append(f"| {sc.name} | {sc.fault} | {', '.join(sc.models)} | {expected} | "
                     f"{', '.join(sc.forbid) or '-'} | {_cell(o.found, sc.models)} | {result} | {o.seconds:.0f} |")
    notes = [f"- `{o.scenario.name}`: {o.scenario.note}" for o in outcomes if o.scenario.note]
    return "\n".join(lines + ([""] + notes if notes else []))
