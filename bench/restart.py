#!/usr/bin/python3
"""restart.py — how fast a SIGKILLed worker serves again under s6.

Runs the local stack's restart measurement (tests/system/test_stack.py:
5 SIGKILLs per runtime, timed from s6's own spawn and readiness stamps)
and prints the table with the issue's 50 ms target per runtime. A figure,
not a gate: run it on a quiet machine.

    /usr/bin/python3 bench/restart.py [--build build]
"""
import argparse
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--build", type=pathlib.Path, default=REPO / "build")
args = ap.parse_args()
build = args.build.resolve()
env = dict(os.environ, CORRAL_BUILD=str(build))
rc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     str(REPO / "tests/system/test_stack.py"), "-k", "sigkilled"],
                    env=env, capture_output=True, text=True).returncode
report = build / "restart-after-sigkill.txt"
if not report.exists():
    sys.exit("restart.py: no measurement (pytest exit %d)" % rc)
print(report.read_text(), end="")
sys.exit(rc)
