"""Console entry point: the CLI itself is Rust, inside the extension."""

from __future__ import annotations

import sys

from heapsight import _heapsight


def main() -> None:
    argv = ["heapsight", *sys.argv[1:]]
    try:
        code = _heapsight.run_cli(argv)
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
