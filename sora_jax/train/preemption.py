"""SIGTERM / SIGINT turned into a flag the training loop checks between steps, so a preempted run
saves a checkpoint and exits cleanly."""

from __future__ import annotations

import signal


class Preemption:
    """Turns SIGTERM / SIGINT into a flag the loop checks between steps.

    With several processes, SIGTERM is left to JAX's preemption service (started by
    `jax.distributed.initialize`): a signal reaching any one process makes every process agree
    on the step to save at (`CheckpointManager.reached_preemption`), so no process waits in a
    collective for one that left. A Python handler here would replace the service's."""

    def __init__(self, multihost: bool = False):
        self.requested = None
        self._previous = {}
        for sig in (signal.SIGINT,) if multihost else (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave signals alone
                pass

    def _handle(self, signum, frame):
        del frame
        self.requested = signal.Signals(signum).name

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
