"""``proof`` ends without the interpreter's teardown, but does everything an exit must."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """\
import atexit, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from flows.cli import exit_without_teardown

out = Path(sys.argv[1])
atexit.register(lambda: (out / "atexit").write_text("ran"))

def late():
    time.sleep(0.5)
    (out / "thread").write_text("done")

threading.Thread(target=late).start()  # not a daemon: the exit waits for it
pool = ThreadPoolExecutor(2)  # left open: its idle workers must be told to end
pool.submit(time.sleep, 0).result()
print("x" * 100_000)  # more than a pipe's buffer, still in sys.stdout's
exit_without_teardown(CODE)
"""


@pytest.mark.parametrize(
    ("code", "status", "message"), [(None, 0, ""), (2, 2, ""), ("a reason", 1, "a reason\n")]
)
def test_exit_without_teardown_waits_runs_the_exit_handlers_and_flushes(
    tmp_path: Path, code: object, status: int, message: str
) -> None:
    script = SCRIPT.replace("CODE", repr(code))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    assert done.returncode == status, done.stderr
    assert done.stdout == "x" * 100_000 + "\n"
    assert done.stderr.endswith(message) if message else "reason" not in done.stderr
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "done"


def test_the_proof_command_is_main() -> None:
    from importlib.metadata import entry_points

    (proof,) = [e for e in entry_points(group="console_scripts") if e.name == "proof"]
    assert proof.value == "flows.cli:main"
