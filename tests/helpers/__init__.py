"""Everything the tests share that is not a pytest fixture (fixtures are in ``conftest.py``):
paths, command-line helpers (:mod:`helpers.cli`), one conformance check run as a test
(:mod:`helpers.checks`), results datasets built without fitting (:mod:`helpers.datasets`),
estimators that misbehave on purpose (:mod:`helpers.misbehaving`, named by
``_target_: helpers.misbehaving.<Class>`` in the tests' configs), closed-form power
(:mod:`helpers.closed_form`) and lme4's cbpp for two-column binomial responses (:mod:`helpers.trials`)."""
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
REFERENCE = TESTS / "reference"
