"""Loading heapsight's agent into a running CPython process.

Python 3.14+: PEP 768 `sys.remote_exec(pid, script)`. Older versions: gdb, the way
pyrasite and `memray attach` do it, with one more precaution: gdb only queues a pending
call (`Py_AddPendingCall(PyCallable_Check, NULL)`, which takes no lock the app may hold and
allocates nothing) and breaks when the main thread runs it. There the interpreter is
between two bytecodes with the GIL held, the same safe point where PEP 768 runs its
scripts and where signal handlers run, and gdb calls `PyRun_SimpleString` on a one-line
`exec` of the payload file. The payload starts the agent and writes a status file; it
catches everything, so nothing is raised into the app and `__main__` gets no new name.

Both ways need the main thread to run Python code: a process blocked in one long C call
(`time.sleep(3600)`, `input()`) is not attached until it returns; heapsight gives up after
`--inject-timeout` and leaves it as it was (the queued `PyCallable_Check(NULL)` runs later
and does nothing).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

import heapsight
from heapsight.agent.protocol import ENV_RUN_DIR, AgentClient
from heapsight.attach.target import AttachError, Target, alive, ptrace_refused
from heapsight.run.launcher import PACKAGE_DIR, AgentInfo

ENV_ATTACH_DIR = "HEAPSIGHT_ATTACH_DIR"

_PAYLOAD = '''\
def _heapsight_attach(run_dir, fallback, status, trace_alloc, claim, script):
    import json, os, sys
    if claim is not None:
        # sys.remote_exec cannot be withdrawn: whichever side creates `claim` first decides
        # whether the agent starts (this loader) or not (heapsight, which gave up waiting).
        try:
            os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError:
            for path in (claim, script):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            return
    before = set(sys.modules)
    try:
        try:
            import heapsight.agent as agent
        except ImportError:
            # No heapsight of its own: the attaching heapsight's copy, which loads when the
            # interpreter version matches its compiled extension.
            for name in [m for m in sys.modules if m == "heapsight" or m.startswith("heapsight.")]:
                del sys.modules[name]
            sys.path.append(fallback)
            try:
                import heapsight.agent as agent
            finally:
                if fallback in sys.path:
                    sys.path.remove(fallback)
        result = agent.start_attached(run_dir, trace_alloc)
        import heapsight
        result["heapsight"] = heapsight.__version__
    except BaseException as exc:
        result = {{"ok": False, "error": type(exc).__name__ + ": " + str(exc),
                  "python": sys.version.split()[0]}}
        # Leave no half-imported heapsight behind: the process stays as it was.
        for name in [m for m in sys.modules if m not in before and m.split(".")[0] == "heapsight"]:
            del sys.modules[name]
    try:
        tmp = status + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f)
        os.replace(tmp, status)
    except BaseException:
        pass  # heapsight times out and says so; the app must not see an error


# sys.remote_exec (3.14) runs this file in __main__'s namespace: no name may stay behind.
try:
    _heapsight_attach({run_dir!r}, {fallback!r}, {status!r}, {trace_alloc!r}, {claim!r},
                      {script!r})
finally:
    del _heapsight_attach
'''


def attach_dir(uid: int) -> str:
    """The directory of attached agents for processes of `uid` (0700, owned by `uid`)."""
    base = os.environ.get(ENV_ATTACH_DIR) or "/tmp"
    return os.path.join(os.path.realpath(base), f"heapsight-attach-{uid}")


def _private_dir(path: str, uid: int) -> None:
    """Creates `path` for `uid`, or checks that the existing one is a real directory that
    only `uid` can use (anything else in a shared /tmp may be a trap)."""
    try:
        os.mkdir(path, 0o700)
        if os.geteuid() != uid:
            # Not following a symlink: the parent may belong to `uid`, who could swap the
            # new directory for a link to something of ours in between.
            os.chown(path, uid, -1, follow_symlinks=False)
    except FileExistsError:
        pass
    except OSError as exc:
        raise AttachError(f"cannot create {path}: {exc}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        raise AttachError(
            f"{path} exists but is not a private directory of uid {uid} (mode "
            f"{oct(st.st_mode & 0o777)}, owner {st.st_uid}); remove it or set "
            f"{ENV_ATTACH_DIR} to another base directory")


def _check_reachable(path: str, uid: int) -> None:
    """The injected loader runs as `uid` and must reach the directory root prepared."""
    parent = os.path.dirname(path)
    while True:
        try:
            st = os.stat(parent)
        except OSError as exc:
            raise AttachError(f"cannot use {path}: {exc}") from None
        if not (st.st_mode & 0o001 or (st.st_uid == uid and st.st_mode & 0o100)):
            raise AttachError(
                f"the process runs as uid {uid}, which cannot enter {parent}, so it could not "
                f"reach {path}; set {ENV_ATTACH_DIR} to a directory every user can enter "
                "(the default is /tmp)")
        if parent == os.path.dirname(parent):
            return
        parent = os.path.dirname(parent)


_PREPARE_LOCK = threading.Lock()


def prepare_dir(uid: int) -> str:
    # `--all-workers` prepares from one thread per worker at once.
    with _PREPARE_LOCK:
        run_dir = attach_dir(uid)
        if os.geteuid() != uid:
            _check_reachable(run_dir, uid)
        _private_dir(run_dir, uid)
        for sub in ("agents", "errors", "inject", "sessions"):
            _private_dir(os.path.join(run_dir, sub), uid)
        lib = os.path.join(run_dir, "lib")
        _private_dir(lib, uid)
        link = os.path.join(lib, "heapsight")
        if os.path.islink(link) and os.readlink(link) != PACKAGE_DIR:
            os.unlink(link)  # another heapsight install attached before
        if not os.path.lexists(link):
            os.symlink(PACKAGE_DIR, link)
        return run_dir


def _ping(socket_path: str, pid: int) -> bool:
    try:
        client = AgentClient(socket_path, timeout=5.0)
    except OSError:
        return False
    try:
        return int(client.request("ping").get("pid", -1)) == pid
    except (OSError, RuntimeError, ValueError):
        return False
    finally:
        client.close()


def _environ_run_dir(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            for item in f.read().split(b"\0"):
                key, _, value = item.partition(b"=")
                if key.decode(errors="replace") == ENV_RUN_DIR:
                    return value.decode(errors="replace")
    except OSError:
        return None
    return None


def existing_agent(pid: int, uid: int) -> tuple[AgentInfo, str] | None:
    """An agent already serving in process `pid` of `uid`: attached before, or started by
    `heapsight run`. Stale sockets (of a process that had the same pid) are removed."""
    candidates = [attach_dir(uid)]
    run_dir = _environ_run_dir(pid)
    if run_dir:
        candidates.append(os.path.realpath(run_dir))
    for directory in candidates:
        sock = os.path.join(directory, "agents", f"{pid}.sock")
        if not os.path.exists(sock):
            continue
        if _ping(sock, pid):
            how = "heapsight run" if directory != candidates[0] else "an earlier attach"
            return AgentInfo(pid, 0, [], sock), how
        if directory == candidates[0]:
            for stale in (sock, os.path.join(directory, "agents", f"{pid}.json")):
                try:
                    os.unlink(stale)
                except OSError:
                    pass
    return None


def _gdb_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _gdb_script(payload: str) -> str:
    inner = f"exec(open({payload!r}).read(), {{'__name__': '__heapsight_attach__'}})"
    # Fresh globals and a bare except: nothing lands in __main__, nothing is raised.
    guarded = f"try:\n {inner}\nexcept BaseException:\n pass"
    run = f"exec({guarded!r}, {{}})"
    # The pending call's argument is NULL; no real caller passes NULL to PyCallable_Check,
    # so the condition picks exactly our call where the ABI tells the first argument.
    arg = {"x86_64": "$rdi", "aarch64": "$x0", "arm64": "$x0"}.get(platform.machine())
    condition = f" if {arg} == 0" if arg else ""
    return "\n".join([
        "set pagination off",
        "set confirm off",
        "set breakpoint pending off",
        "set unwindonsignal on",
        "handle all nostop noprint pass",
        # Only the symbols needed (libpython, or the static interpreter, and libc for the
        # string gdb allocates): reading every library's would keep the process stopped
        # longer, and gunicorn kills a worker that misses its heartbeat.
        "sharedlibrary libpython",
        "sharedlibrary /libc[.-]",
        "set $hs_ready = (int)Py_IsInitialized()",
        "if $hs_ready == 0",
        "  echo HEAPSIGHT-NOT-INITIALIZED\\n",
        "  detach",
        "  quit",
        "end",
        f"break PyCallable_Check{condition}",
        "commands 1",
        "  delete breakpoints",
        "  set $hs_gil = (int)PyGILState_Ensure()",
        f"  print (int)PyRun_SimpleString({_gdb_string(run)})",
        "  call (void)PyGILState_Release($hs_gil)",
        "  echo HEAPSIGHT-INJECTED\\n",
        "  detach",
        "  quit",
        "end",
        "call (int)Py_AddPendingCall(&PyCallable_Check, (void*)0)",
        "continue",
        "",
    ])


def _run_gdb(target: Target, payload: str, timeout: float) -> str:
    gdb = shutil.which("gdb")
    if gdb is None:
        raise AttachError(
            f"gdb is needed to attach to Python {target.version_text} (sys.remote_exec, PEP "
            "768, arrives with 3.14) and it is not on PATH.\n"
            "  install it: `apt-get install gdb` (the Debian/Ubuntu package `gdb`), "
            "`dnf install gdb`, `apk add gdb`.\n"
            f"  process {target.pid} was not touched.")
    # gdb runs as us (maybe root): its script lives in our own private temp file, never in
    # the target user's directory, where that user could swap it.
    fd, script_path = tempfile.mkstemp(prefix="heapsight-", suffix=".gdb")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(_gdb_script(payload))
        return _gdb(gdb, target, script_path, timeout)
    finally:
        os.unlink(script_path)


def _gdb(gdb: str, target: Target, script_path: str, timeout: float,
         readnever: bool = True) -> str:
    # --readnever: the ELF symbols are all it needs; skipping the DWARF of a debug build
    # keeps the process stopped a third as long.
    argv = [gdb, *(["--readnever"] if readnever else []), "-p", str(target.pid), "-batch",
            "-nx", "-iex", "set auto-load off", "-iex", "set auto-solib-add off",
            "-x", script_path]
    # Its own session: a Ctrl-C meant for heapsight must not reach gdb mid-call.
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGINT stops the target, gdb gives up its command file, then detaches (which
        # takes its breakpoint out) and exits.
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.terminate()
            out, _ = proc.communicate(timeout=15)
        raise AttachError(
            f"process {target.pid} ran no Python code within {timeout:.0f} s (its main "
            "thread is blocked in a long call: sleep, input, a C extension?), so the agent "
            "was not loaded and the process was left as it was. Try again while it is "
            f"serving, or with a longer --inject-timeout. gdb said: {_tail(out)}") from None
    if "HEAPSIGHT-INJECTED" in out:
        return out
    if readnever and "readnever" in out and ("unrecognized" in out or "invalid" in out):
        return _gdb(gdb, target, script_path, timeout, readnever=False)  # gdb before 8.2
    if "HEAPSIGHT-NOT-INITIALIZED" in out:
        raise AttachError(f"the interpreter in process {target.pid} is not running (starting "
                          "up or shutting down); it was not touched. Try again in a moment.")
    if "ptrace: Operation not permitted" in out:
        raise ptrace_refused(target.pid, "gdb: ptrace: Operation not permitted")
    if not alive(target.pid) or "exited" in out or "No such process" in out:
        raise AttachError(f"process {target.pid} exited while heapsight was attaching")
    if "No symbol" in out:
        raise AttachError(
            f"process {target.pid} has no CPython C API symbols gdb can call "
            f"(PyCallable_Check, Py_AddPendingCall); it was not touched. gdb said: {_tail(out)}")
    raise AttachError(f"gdb could not inject into process {target.pid}: {_tail(out)}")


def _tail(text: str | None) -> str:
    lines = [ln for ln in (text or "").splitlines() if ln.strip() and not ln.startswith("[")]
    return " | ".join(lines[-3:]) or "(no output)"


_REMOTE_EXEC = "import sys; sys.remote_exec({pid}, {path!r})"


def _remote_exec(target: Target, payload: str) -> None:
    """PEP 768 (tested on 3.14 by scripts/test-py314.sh)."""
    if sys.version_info >= (3, 14):
        try:
            sys.remote_exec(target.pid, payload)  # type: ignore[attr-defined]
            return
        except (OSError, RuntimeError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, PermissionError):
                raise ptrace_refused(target.pid, detail) from None
            raise AttachError(f"sys.remote_exec into process {target.pid} failed: {detail} "
                              "(PYTHON_DISABLE_REMOTE_DEBUG or -X disable_remote_debug in the "
                              "target turn it off)") from None
    # This heapsight runs on an older Python: the target's own interpreter asks for it.
    try:
        proc = subprocess.run([target.exe, "-I", "-S", "-c",
                               _REMOTE_EXEC.format(pid=target.pid, path=payload)],
                              capture_output=True, text=True, timeout=60, env={})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AttachError(f"cannot run {target.exe} for sys.remote_exec: {exc}") from None
    if proc.returncode != 0:
        detail = _tail(proc.stderr)
        if "PermissionError" in detail or "Operation not permitted" in detail:
            raise ptrace_refused(target.pid, detail)
        raise AttachError(f"sys.remote_exec into process {target.pid} failed: {detail}")


def _wait_status(target: Target, status: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not os.path.exists(status):
        if not alive(target.pid):
            raise AttachError(f"process {target.pid} exited while heapsight was attaching")
        if time.monotonic() > deadline:
            raise AttachError(
                f"process {target.pid} did not run the agent's loader within {timeout:.0f} s "
                "(its main thread is blocked in a long call?); it will run it when its main "
                "thread next runs Python code")
        time.sleep(0.05)
    try:
        with os.fdopen(os.open(status, os.O_RDONLY | os.O_NOFOLLOW)) as f:
            return dict(json.load(f))
    except (OSError, ValueError, TypeError) as exc:
        raise AttachError(f"unreadable status from the agent's loader in process "
                          f"{target.pid}: {exc}") from None


class _Withdrawn(Exception):
    """heapsight gave up on a queued sys.remote_exec before the target ran it."""


def _wait_remote_status(target: Target, status: str, claim: str, timeout: float) -> dict:
    """`_wait_status` for a sys.remote_exec request, which stays queued in the target after
    a timeout: heapsight then takes the claim, so that the loader, when it finally runs,
    leaves the process as it was. If the loader took it first, it is starting the agent."""
    try:
        return _wait_status(target, status, timeout)
    except AttachError as late:
        if not alive(target.pid):
            raise
        try:
            os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        except FileExistsError:
            return _wait_status(target, status, timeout)  # claimed by the loader just now
        except OSError:
            raise late from None
        raise _Withdrawn(
            f"process {target.pid} ran no Python code within {timeout:.0f} s (its main "
            "thread is blocked in a long call?), so the agent was not loaded. The request "
            "stays queued in the process: when its main thread next runs Python code, the "
            "loader sees that heapsight gave up and does nothing.") from None


def inject(target: Target, timeout: float,
           trace_alloc: bool = False) -> tuple[AgentInfo, str, bool]:
    """Loads the agent into `target`; returns its AgentInfo, a note for the user, and
    whether it was loaded now (False: an agent that was there already is reused)."""
    found = existing_agent(target.pid, target.uid)
    if found is not None:
        agent, how = found
        return agent, (f"process {target.pid} already has a heapsight agent (from {how}); "
                       f"reusing it: {agent.socket}"), False
    run_dir = prepare_dir(target.uid)
    token = f"{target.pid}-{secrets.token_hex(4)}"
    payload = os.path.join(run_dir, "inject", f"{token}.py")
    status = os.path.join(run_dir, "inject", f"{token}.json")
    remote_exec = target.version >= (3, 14)
    claim = os.path.join(run_dir, "inject", f"{token}.claim") if remote_exec else None
    # O_EXCL | O_NOFOLLOW: nothing planted under that name in the target user's directory
    # is followed or overwritten.
    fd = os.open(payload, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(_PAYLOAD.format(run_dir=run_dir, fallback=os.path.join(run_dir, "lib"),
                                status=status, trace_alloc=trace_alloc, claim=claim,
                                script=payload))
    os.chmod(payload, 0o644)  # whatever our umask: the target's user reads it
    withdrawn = False
    try:
        if remote_exec:
            _remote_exec(target, payload)
            result = _wait_remote_status(target, status, claim or "", timeout)
        else:
            _run_gdb(target, payload, timeout)
            result = _wait_status(target, status, timeout)
    except _Withdrawn as gave_up:
        withdrawn = True
        raise AttachError(str(gave_up)) from None
    finally:
        # A withdrawn sys.remote_exec script is still read by the target later; its loader
        # removes it and the claim then.
        if not withdrawn:
            for path in (payload, claim):
                if path is not None:
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
    try:
        os.unlink(status)
    except OSError:
        pass
    if not result.get("ok"):
        error = result.get("error", "unknown error")
        advice = ""
        if "start_attached" in error:
            advice = (f"\n  the process's own heapsight is older than this one ("
                      f"{heapsight.__version__}) and cannot be attached; upgrade it: "
                      f"python{target.version_text} -m pip install "
                      f"'heapsight=={heapsight.__version__}'")
        elif "heapsight" in error and ("No module" in error or "ImportError" in error):
            advice = (f"\n  the process has no heapsight of its own, and this heapsight's "
                      f"extension is built for Python {sys.version_info[0]}."
                      f"{sys.version_info[1]}; install it in the process's environment: "
                      f"python{target.version_text} -m pip install "
                      f"'heapsight=={heapsight.__version__}'")
        raise AttachError(f"the agent did not start in process {target.pid} (Python "
                          f"{result.get('python', target.version_text)}): {error}{advice}\n"
                          "  the process keeps running as before.")
    sock = str(result["socket"])
    agent = AgentInfo(target.pid, 0, target.argv, sock)
    wrapped = result.get("wrapped") or []
    how = "sys.remote_exec" if target.version >= (3, 14) else "gdb"
    note = f"attached to process {target.pid} (Python {target.version_text}) with {how}"
    if wrapped:
        note += "; counting requests of " + ", ".join(wrapped)
    return agent, note, True
