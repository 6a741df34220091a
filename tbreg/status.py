"""A run's status, as run.json's `status` says it (pure: no TensorFlow).

`Status` members are `str`s: they compare equal to, and are written to run.json as, their values.
"""

import enum


class Status(enum.StrEnum):
    RUNNING = "running"  # training now, or killed while training (no outcome recorded)
    COMPLETED = "completed"  # trained every epoch
    EARLY_STOPPED = "early_stopped"  # early stopping ended it
    INTERRUPTED = "interrupted"  # Ctrl-C / SIGTERM; resumable when run.json says so
    DIVERGED = "diverged"  # its loss blew up (a result, not an error: not retried)
    FAILED = "failed"  # an error ended it
    AGGREGATE = "aggregate"  # a `mean` run over seed runs, not a training

    def __repr__(self) -> str:  # as the plain string: printed results look as they did
        return repr(self.value)


class TrialState(enum.StrEnum):
    """Where a sweep's trial stands when it has no run status (yet): `tbreg sweep`'s table and sweep.json."""

    QUEUED = "queued"  # waiting for a worker
    NOT_STARTED = "not started"  # the sweep was interrupted before it ran

    def __repr__(self) -> str:
        return repr(self.value)


# A training that reached its end: skipped by --resume and by a re-run of a sweep.
FINISHED = (Status.COMPLETED, Status.EARLY_STOPPED, Status.DIVERGED)  # a tuple: `x in` takes any run.json value

# What the training scripts count as a good outcome (anything else makes their exit status 1).
ENDED_WELL = (Status.COMPLETED, Status.EARLY_STOPPED, Status.AGGREGATE)
