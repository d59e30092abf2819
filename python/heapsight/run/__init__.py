"""`heapsight run -- APP_ARGV...`: hunt a leak in a live web server, per endpoint.

`options` parses the forwarded command line, `launcher` starts the app with the agent and
talks to its workers, `drive` sends the bounded load, `diagnose` turns census series and
snapshots into verdicts and suspects, `session` runs it all and prints the result.
"""

from __future__ import annotations


def main(argv: list[str]) -> int:
    from heapsight.run.session import main as run_main

    return run_main(argv)
