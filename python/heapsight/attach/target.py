"""What heapsight can tell about a process from /proc before touching it.

Every check here only reads: whether the process exists, who owns it, whether we may trace
it, whether it is CPython and which version, and its children. Each refusal is an
`AttachError` whose message says what happened and what to do.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess

# The interpreter versions whose layout the capture knows (see capture/shims.rs).
SUPPORTED = ((3, 9), (3, 14))
CAP_SYS_PTRACE = 19
YAMA = "/proc/sys/kernel/yama/ptrace_scope"


class AttachError(RuntimeError):
    """heapsight will not (or cannot) attach; the process was left untouched."""


@dataclasses.dataclass
class Target:
    pid: int
    uid: int
    exe: str
    version: tuple[int, int]
    argv: list[str]

    @property
    def version_text(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def _status(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/status") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise AttachError(f"no process {pid}: it does not exist (or has exited)") from None
    except OSError as exc:
        raise AttachError(f"cannot read /proc/{pid}/status: {exc}") from None
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def owner(pid: int) -> int:
    """The effective uid of `pid` (readable for any process, no ptrace needed)."""
    try:
        return int(_status(pid)["Uid"].split()[1])
    except (KeyError, IndexError, ValueError):
        raise AttachError(f"cannot tell who owns process {pid} from /proc/{pid}/status") from None


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _has_ptrace_capability() -> bool:
    try:
        caps = int(_status(os.getpid()).get("CapEff", "0"), 16)
    except (AttachError, ValueError):
        return False
    return bool(caps & (1 << CAP_SYS_PTRACE))


def _ptrace_scope() -> int:
    try:
        with open(YAMA) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0  # no Yama: classic ptrace permissions


def _is_descendant(pid: int) -> bool:
    me = os.getpid()
    seen = 0
    current: int | None = pid
    while current and current > 1 and seen < 64:
        if current == me:
            return True
        current = parent(current)
        seen += 1
    return False


_PTRACE_HELP = (
    "  heapsight attaches like a debugger (ptrace), which Linux allows when:\n"
    "  - you run heapsight as the same user as the process (or as root), and\n"
    f"  - {YAMA} is 0, or is 1 and you have CAP_SYS_PTRACE (root has it outside containers);\n"
    "    `sudo sysctl kernel.yama.ptrace_scope=0` relaxes it until the next boot;\n"
    "  - in a container, it was started with `--cap-add=SYS_PTRACE` (docker run) or\n"
    "    `securityContext.capabilities.add: [SYS_PTRACE]` (Kubernetes)."
)


def check_permission(pid: int, uid: int) -> None:
    """Refuses early when the kernel would refuse ptrace, with the reason and the fix."""
    me = os.geteuid()
    cap = _has_ptrace_capability()
    scope = _ptrace_scope()
    problem = None
    if uid != me and not cap:
        problem = (f"process {pid} belongs to uid {uid} and heapsight runs as uid {me} "
                   "without CAP_SYS_PTRACE")
    elif scope >= 3:
        problem = f"{YAMA} is 3: no process may be traced until the next reboot"
    elif scope == 2 and not cap:
        problem = f"{YAMA} is 2: only a process with CAP_SYS_PTRACE may trace"
    elif scope == 1 and not cap and not _is_descendant(pid):
        problem = (f"{YAMA} is 1: without CAP_SYS_PTRACE only a process's ancestors may "
                   "trace it")
    if problem:
        raise AttachError(f"no permission to attach to process {pid}: {problem}.\n"
                          f"{_PTRACE_HELP}\n  process {pid} was not touched.")


def ptrace_refused(pid: int, detail: str) -> AttachError:
    return AttachError(f"the kernel refused to let heapsight trace process {pid} ({detail}).\n"
                       f"{_PTRACE_HELP}\n  process {pid} was not touched.")


_LIBPYTHON = re.compile(r"libpython(\d+)\.(\d+)(t?)[^/]*\.so")
_EXE = re.compile(r"python(\d+)\.(\d+)(t?)$")


def _version_from_maps(pid: int) -> tuple[int, int, bool] | None:
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                found = _LIBPYTHON.search(line)
                if found:
                    return int(found.group(1)), int(found.group(2)), found.group(3) == "t"
    except OSError:
        return None
    return None


def _ask_interpreter(exe: str) -> tuple[int, int, bool] | None:
    """Runs the process's own executable (a fresh interpreter, not the process) when its
    name is a plain `python` or `python3`."""
    try:
        out = subprocess.run(
            [exe, "-I", "-S", "-c", "import sys; print(*sys.version_info[:2], "
             "int(not getattr(sys, '_is_gil_enabled', lambda: True)()))"],
            capture_output=True, text=True, timeout=20, env={},
        )
        major, minor, free = out.stdout.split()
        return int(major), int(minor), free == "1"
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def _argv(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def inspect_process(pid: int) -> Target:
    """The target, or AttachError when it is gone, not ours to trace, not CPython, or a
    version heapsight does not support."""
    if pid <= 0:
        raise AttachError(f"{pid} is not a process id")
    if pid == os.getpid():
        raise AttachError("heapsight cannot attach to itself; use heapsight.snapshot() in code")
    status = _status(pid)
    if status.get("State", "").startswith(("Z", "X")):
        raise AttachError(f"process {pid} has exited (it is a zombie waiting for its parent)")
    try:
        uid = int(status["Uid"].split()[1])  # effective uid
    except (KeyError, IndexError, ValueError):
        raise AttachError(f"cannot tell who owns process {pid} from /proc/{pid}/status") from None
    check_permission(pid, uid)
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except FileNotFoundError:
        raise AttachError(f"process {pid} has exited (or is a kernel thread)") from None
    except PermissionError:
        raise ptrace_refused(pid, f"reading /proc/{pid}/exe was refused") from None
    except OSError as exc:
        raise AttachError(f"cannot read /proc/{pid}/exe: {exc}") from None
    name = os.path.basename(exe.removesuffix(" (deleted)"))
    found = _version_from_maps(pid)
    if found is None:
        match = _EXE.search(name)
        if match:
            found = int(match.group(1)), int(match.group(2)), match.group(3) == "t"
        elif re.fullmatch(r"python3?", name) and os.path.exists(exe):
            found = _ask_interpreter(exe)
    if found is None:
        raise AttachError(
            f"process {pid} ({name}) is not a CPython process: its executable is not a python "
            "interpreter and it maps no libpython. heapsight attaches to CPython 3.9-3.14 "
            f"only; `heapsight watch {pid}` follows the memory of any process.")
    major, minor, free_threaded = found
    low, high = SUPPORTED
    if free_threaded:
        raise AttachError(f"process {pid} runs free-threaded CPython {major}.{minor}t, which "
                          "heapsight does not support yet; it was not touched.")
    if not low <= (major, minor) <= high:
        raise AttachError(
            f"process {pid} runs Python {major}.{minor}; heapsight supports CPython "
            f"{low[0]}.{low[1]} to {high[0]}.{high[1]}. It was not touched.")
    return Target(pid=pid, uid=uid, exe=exe, version=(major, minor), argv=_argv(pid))


def children(pid: int) -> list[int]:
    """Direct children of `pid` (the workers of a gunicorn or uvicorn master)."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    readable = False
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found.update(int(c) for c in f.read().split())
            readable = True
        except (OSError, ValueError):
            continue
    if not readable:  # kernels without CONFIG_PROC_CHILDREN
        for entry in os.listdir("/proc"):
            if entry.isdigit() and parent(int(entry)) == pid:
                found.add(int(entry))
    return sorted(c for c in found if alive(c))
