"""`heapsight attach PID` and the other commands on a process that runs already.

`target` reads /proc to refuse early and clearly (not Python, unsupported version, no
permission to trace); `inject` loads the `run` agent into the process (PEP 768 on 3.14+,
gdb before); `live` runs inside the process and adds request counting to the servers it
finds; `commands` drives the same `Session` as `heapsight run` over the injected agents.
See docs/attach.md.
"""
