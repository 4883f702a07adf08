"""Every command's output survives a reader that has gone (``unlearn-bench plugins --json | head``): no
BrokenPipeError traceback, a quiet exit with 141. Real pipes through a subprocess: the failure only shows there.
The pipe's read end is closed before the command starts, so its first write fails every time (a reader that
reads a line first races the writer's buffer)."""

import os
import subprocess
import sys

import pytest

from bench.cli import CLOSED_PIPE

CODE = "import sys; from bench.cli import main; sys.exit(main(sys.argv[1:]))"


def _into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        return subprocess.run([sys.executable, "-c", CODE, *args], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("args", [["plugins", "--json"], ["plugins"], ["report", "--rescore", "/nonexistent"]])
def test_a_closed_pipe_ends_the_command_quietly(args):
    done = _into_closed_pipe(args)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    if args[0] == "plugins":  # wrote to stdout: the closed pipe's status, not 1 (a verdict here)
        assert done.returncode == CLOSED_PIPE, done.stderr
    else:  # a user error goes to stderr: its own one line and status 2, the pipe never written
        assert done.returncode == 2 and done.stderr.startswith("error: "), done.stderr


@pytest.mark.parametrize("args", [["--help"], ["verify", "--help"], ["--version"]])
def test_argparse_output_into_a_closed_pipe_leaves_no_traceback(args):
    done = _into_closed_pipe(args)
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
    assert done.returncode in (0, CLOSED_PIPE)


def test_with_an_open_pipe_the_output_is_whole():
    done = subprocess.run([sys.executable, "-c", CODE, "plugins", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.rstrip().endswith("]")
