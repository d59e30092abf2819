"""Loads heapsight's agent from `sitecustomize` without ever breaking interpreter start.

The interpreter's own heapsight is preferred; when it has none, the launcher's copy
(`HEAPSIGHT_FALLBACK_PATH`) is tried, which works when the interpreter version matches the
compiled extension. `heapsight run` calls `import_agent()` in the target interpreter before
starting the app, to say in advance when neither works.
"""

import os
import sys


def import_agent():  # type: ignore[no-untyped-def]
    try:
        import heapsight.agent as agent

        return agent
    except ImportError:
        fallback = os.environ.get("HEAPSIGHT_FALLBACK_PATH")
        if not fallback:
            raise
    for name in [m for m in sys.modules if m == "heapsight" or m.startswith("heapsight.")]:
        del sys.modules[name]
    sys.path.append(fallback)
    import heapsight.agent as agent

    return agent


def boot() -> None:
    run_dir = os.environ.get("HEAPSIGHT_RUN_DIR")
    if not run_dir:
        return
    try:
        import_agent().start()
    except BaseException as exc:  # noqa: BLE001 - never stop the app from starting
        try:
            errors = os.path.join(run_dir, "errors")
            os.makedirs(errors, mode=0o700, exist_ok=True)
            with open(os.path.join(errors, f"{os.getpid()}.txt"), "w") as f:
                f.write(f"heapsight: cannot load the agent: {type(exc).__name__}: {exc}\n")
        except OSError:
            pass
