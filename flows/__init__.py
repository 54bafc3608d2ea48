"""Prefect flows and the ``proof`` command line: orchestration only."""

import os

# Prefect reads these when it is first imported; the CLI and the flows are the
# edge where the process environment is set (analysis/ never reads it).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_UI_ENABLED", "true")
# The first start of the temporary local server migrates its database, which
# takes longer than Prefect's 20 s default on a busy two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

# The temporary Prefect server runs this instead of `python -m uvicorn ...`: the same
# uvicorn, plus a watchdog thread that ends the server when its parent process is
# gone — killed (`kill -9`), terminated (SIGTERM skips Prefect's atexit `stop()`)
# or crashed. argv: <parent pid> <uvicorn arguments ...>.
_SERVER_WITH_WATCHDOG = """\
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))

def watch():
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down gracefully
    time.sleep(10)
    os._exit(1)

threading.Thread(target=watch, name="proof-parent-watchdog", daemon=True).start()
sys.argv[0] = "uvicorn"
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


class _ServerSubprocess:
    """``subprocess`` as Prefect's server module sees it: it starts uvicorn with the watchdog."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def Popen(self, args: list[str], *rest: object, **kwargs: object) -> object:  # noqa: N802
        args = list(args)
        if args[1:3] == ["-m", "uvicorn"]:
            args = [args[0], "-c", _SERVER_WITH_WATCHDOG, str(os.getpid()), *args[3:]]
        return self._real.Popen(args, *rest, **kwargs)  # type: ignore[attr-defined]


def end_temporary_server_with_process() -> None:
    """Make the temporary Prefect server (PREFECT_API_URL unset) end when this process ends.

    Prefect starts it as a subprocess (``SubprocessASGIServer``) and stops it
    at exit, which a killed or terminated process never reaches: the server
    (~190 MB) would outlive its run. Here it watches its parent instead.
    """
    from prefect.server.api import server

    # ``subprocess`` is the module object Prefect's server module imported (not exported).
    if not isinstance(server.subprocess, _ServerSubprocess):  # type: ignore[attr-defined]
        server.subprocess = _ServerSubprocess(server.subprocess)  # type: ignore[assignment,attr-defined]
