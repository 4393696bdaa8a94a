# Checks the environment the contract promises (docs/runtimes.md).
import os

e = os.environ


def yn(b):
    return "yes" if b else "no"


print("stage=" + e["CORRAL_STAGE"])
print("entry=" + e["CORRAL_ENTRY"])
print("cwd_is_workdir=" + yn(os.path.realpath(os.getcwd()) == os.path.realpath(e["CORRAL_WORKDIR"])))
print("home_is_workdir=" + yn(e["HOME"] == e["CORRAL_WORKDIR"]))
print("path=" + e["PATH"])
with open("/proc/%d/comm" % os.getppid()) as f:
    print("wrapped=" + yn(f.read().strip() == "runtime.sh"))
print("no_pycache=" + yn(not os.path.exists("__pycache__")))
