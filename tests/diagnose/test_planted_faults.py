"""The diagnosis test matrix: a real run per planted fault, and the findings it must (and must not) cause.

Scenarios live in ``tests/diagnose/scenarios.py``; ``python -m benchmarks.diagnosis_matrix``
prints the same matrix. Every run shares one preparation and embedding cache for the
session (each synthetic dataset is prepared and embedded once) and the session's Ray.
The whole matrix takes 65-105 s on 2 shared CPUs.
"""

from __future__ import annotations

import pytest

from tests.diagnose.scenarios import SCENARIOS, Found, Scenario, check, describe, missing_stages, run_scenario


@pytest.fixture(scope="session")
def scenario_cache(tmp_path_factory):
    """Preparation and embedding cache shared by every scenario of the session."""
    return tmp_path_factory.mktemp("planted-faults-cache")


@pytest.mark.ray
@pytest.mark.timeout(300)
@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_planted_fault_is_diagnosed(sc: Scenario, tmp_path, scenario_cache):
    missing = missing_stages(sc)
    if missing:
        pytest.skip(f"stage(s) {', '.join(missing)} not available in this build")
    outcome = run_scenario(sc, tmp_path, scenario_cache)
    assert outcome.passed, (f"scenario {sc.name} ({sc.fault}):\n  " + "\n  ".join(outcome.problems)
                            + "\nall findings:\n" + describe(outcome.found))


def test_the_matrix_plants_at_least_eight_faults_and_a_healthy_baseline():
    faults = [s for s in SCENARIOS if not s.healthy]
    assert len(faults) >= 8 and all(s.expect for s in faults)
    assert any(s.healthy and s.full for s in SCENARIOS)
    assert len({s.name for s in SCENARIOS}) == len(SCENARIOS)


def test_the_judge_reads_severity_forbidden_codes_and_health():
    fault = Scenario("x", "", (), ("mf",), expect=("OVERFITTING", "TEXT_DOMINANT:info"), forbid=("LR_TOO_LOW",))
    info = Found("mf", "TEXT_DOMINANT", "info", "")
    assert check(fault, [Found("mf", "OVERFITTING", "critical", ""), info]) == []
    assert check(fault, [Found("mf", "OVERFITTING", "info", ""), info]) == [
        "expected OVERFITTING at warning or worse, found it at info"]
    assert check(fault, [Found("other", "OVERFITTING", "warning", ""), info]) == ["expected OVERFITTING, not found"]
    assert check(fault, [Found("mf", "OVERFITTING", "warning", ""), info, Found("mf", "LR_TOO_LOW", "warning", "")]) \
        == ["LR_TOO_LOW must not appear, found it (warning) for mf"]
    healthy = Scenario("h", "", (), ("mf",), healthy=True)
    assert check(healthy, [Found("mf", "TEXT_DOMINANT", "info", ""), Found("pop", "UNDERFITTING", "warning", "")]) == []
    assert check(healthy, [Found("text_encoder", "ANISOTROPIC_TEXT_VECTORS", "warning", "")]) == [
        "healthy run has ANISOTROPIC_TEXT_VECTORS (warning) for text_encoder"]
