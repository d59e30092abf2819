"""Commands of the `heapsight` CLI that need a Python interpreter.

The Rust CLI parses every command line; the ones listed in `_COMMANDS` land here.
"""

from __future__ import annotations

from typing import Callable


def _demo(args: list[str]) -> int:
    from heapsight.demo.hunt import main

    return main(args)


def _run(args: list[str]) -> int:
    from heapsight.run import main

    return main(args)


def _on_pid(name: str) -> Callable[[list[str]], int]:
    def command(args: list[str]) -> int:
        from heapsight.attach import commands

        main: Callable[[list[str]], int] = getattr(commands, f"{name}_main")
        return main(args)

    return command


_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "demo": _demo,
    "run": _run,
    **{name: _on_pid(name) for name in ("attach", "snapshot", "census", "detach")},
}


def run(name: str, args: list[str]) -> int:
    command = _COMMANDS.get(name)
    if command is None:
        raise ValueError(f"unknown Python-side command {name!r}")
    return command(args)
