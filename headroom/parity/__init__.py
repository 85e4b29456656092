"""Golden-fixture parity: replay recorded inputs through our transforms, compare the bytes.

A fixture is one JSON file ``<root>/<transform>/<case>.json`` holding
``{transform, input, config, output, recorded_at, input_sha256}``. ``run`` recomputes every
output and reports each fixture as matched, diff or skipped (the transform cannot be
loaded); ``record`` rewrites outputs on purpose. Any behaviour change of a transform shows
up as a diff, so changes are made knowingly and re-recorded in the same commit.
"""

from headroom.parity.fixtures import Fixture, load_fixtures, make_fixture, save_fixture
from headroom.parity.runner import Outcome, record_all, run_all
from headroom.parity.transforms import TRANSFORMS, TransformUnavailable, apply

__all__ = [
    "TRANSFORMS",
    "Fixture",
    "Outcome",
    "TransformUnavailable",
    "apply",
    "load_fixtures",
    "make_fixture",
    "record_all",
    "run_all",
    "save_fixture",
]
