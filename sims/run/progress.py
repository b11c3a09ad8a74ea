"""A progress bar for long studies: replicates per second, ETA and failures so far (tqdm).

Quiet when stderr is not a terminal or when ``runner.progress=false``.
"""
from __future__ import annotations

import sys

import numpy as np

from estimators.result import Status

COUNTED_VALID = (int(Status.ok), int(Status.singular))


class Progress:
    def __init__(self, total_reps: int, done_reps: int = 0, enabled: bool = True):
        self.failures = 0
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total_reps, initial=done_reps, unit="rep", dynamic_ncols=True,
                            desc="replicates", file=sys.stderr)

    def update(self, chunk) -> None:
        """Count a finished chunk's replicates and its fits that did not give a valid result."""
        self.failures += sum(int(np.isin(part.status, COUNTED_VALID, invert=True).sum())
                             for part in chunk.estimators.values())
        if self.bar is not None:
            self.bar.set_postfix(failed_fits=self.failures, refresh=False)
            self.bar.update(len(chunk.reps))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
