"""A run's log file: while a run trains, log records (absl's and Python's, Orbax's included) and
exceptions raised in background threads go to `<workdir>/train.log`, not to the terminal — a
checkpoint write failing on a full disk once filled the terminal with 264 tracebacks from Orbax's
threads. The terminal keeps the run's printed lines and progress bar, and gets one line per kind
of thread failure, naming the file.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import sys
import threading
import traceback

from absl import logging as absl_logging


@contextlib.contextmanager
def to_workdir(workdir: str | pathlib.Path, name: str = "train.log"):
    path = pathlib.Path(workdir) / name
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(threadName)s: %(message)s"))
    root = logging.getLogger()
    terminal = [h for h in root.handlers if isinstance(h, absl_logging.ABSLHandler)]
    for h in terminal:
        root.removeHandler(h)
    root.addHandler(handler)
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)  # everything to the file; the terminal sees none of it
    previous_hook = threading.excepthook
    reported: set[str] = set()

    def hook(args: threading.ExceptHookArgs) -> None:
        text = "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
        logging.getLogger("sora_jax.threads").error("thread %s failed:\n%s", getattr(args.thread, "name", "?"), text)
        kind = args.exc_type.__name__
        if kind not in reported:
            reported.add(kind)
            print(f"a background thread failed: {kind}: {args.exc_value} (tracebacks in {path})", file=sys.stderr,
                  flush=True)

    threading.excepthook = hook
    try:
        yield path
    finally:
        threading.excepthook = previous_hook
        absl_logging.set_verbosity(verbosity)
        root.removeHandler(handler)
        handler.close()
        for h in terminal:
            root.addHandler(h)
