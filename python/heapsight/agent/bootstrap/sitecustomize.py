"""heapsight run's bootstrap: starts the agent, then runs any other `sitecustomize`.

This directory is put first on PYTHONPATH by `heapsight run`, so this module shadows the
environment's own `sitecustomize`; it removes itself from the path and imports that one,
so the app sees the interpreter start it would have had without heapsight.
"""

import os
import sys


def _heapsight_chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        sys.path.insert(0, here)
        import _heapsight_boot

        _heapsight_boot.boot()
    except BaseException:  # noqa: BLE001
        pass
    finally:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    ours = sys.modules.pop("sitecustomize", None)
    try:
        import sitecustomize  # noqa: F401 - the environment's own, if any
    except ImportError as exc:
        if exc.name != "sitecustomize" and ours is not None:
            sys.modules["sitecustomize"] = ours
            raise
        if ours is not None:
            sys.modules["sitecustomize"] = ours


_heapsight_chain()
