"""`info` says which fast path a worker has in force (`accel`,
docs/protocol.md): the same word its ready log line gives, so clients and
operators need not read logs to know whether prewarm is on."""
import pytest


@pytest.mark.parametrize("runtime,args,want", [
    ("python", ("--prewarm", "off"), "none"),
    ("python", ("--prewarm", "on"), "prewarm"),
    ("bash", ("--prewarm", "on"), "none (prewarm asked; the runtime has no warm.sh)"),
    ("c", ("--prewarm", "on"), "none (prewarm asked; the runtime "),
])
def test_info_accel(worker_factory, runtime, args, want):
    w = worker_factory(runtime, slots=1, args=args)
    i = w.call({"v": 1, "op": "info"})
    assert i["ok"] is True, i
    # a refused prewarm says why, after the word "none"
    assert i["accel"] == want or (want.endswith(" ") and i["accel"].startswith(want)), i
    assert "accel=" in w.log()
