"""Racing, hedging and surviving workers, against real workers.

One worker is made slow without any hook in the product: it runs a copy of
the python runtime whose runtime.sh records its PIDs, then sleeps before
running the program (test_gateway_fixtures.SlowRuntime). The fast worker
must win, and the cancel must kill the slow worker's processes.
"""
import os
import signal
import threading
import time

import pytest

import sp

from conftest import Worker
from test_gateway_fixtures import Gateway, SlowRuntime, pid_alive, worker_on_port

PY_OK = {"runtime": "python", "code": "print('OK')"}
# takes a moment, so that the slow worker has surely started when it wins
PY_OK_SLOWISH = {"runtime": "python", "code": "import time; time.sleep(0.3); print('OK')"}


@pytest.fixture
def slow_runtime():
    s = SlowRuntime("python", delay=20)
    yield s
    s.cleanup()


def wait_until(cond, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def assert_slow_processes_gone(slow, timeout=20):
    pids = sorted(slow.seen)
    assert pids, "the slow runtime never started (no process seen)"
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout), \
        "slow worker processes still alive after the cancel: %s" % [p for p in pids if pid_alive(p)]
    slow.seen.clear()
    return pids


def test_fast_worker_wins_and_the_loser_is_cancelled(worker_factory, slow_runtime, tmp_path):
    slow = worker_factory(slow_runtime.dir, slots=2)
    fast = worker_factory("python", slots=2)
    gw = Gateway([("python", slow.url), ("python", fast.url)], tmp=str(tmp_path))
    try:
        for i in range(3):
            t0 = time.monotonic()
            with slow_runtime.watch():
                st, _, j = gw.run(PY_OK_SLOWISH)
            took = time.monotonic() - t0
            assert st == 200 and j["run"]["stdout"] == "OK\n", j
            assert took < slow_runtime.delay, took  # it did not wait for the slow one
            assert j["worker"]["url"] == fast.url and j["race"]["winner"] == fast.url
            by = {a["worker"]: a["outcome"] for a in j["race"]["attempts"]}
            assert by == {fast.url: "won", slow.url: "lost"}, j["race"]
            assert_slow_processes_gone(slow_runtime)
            # the loser's slot is free again on the worker itself
            assert wait_until(lambda: slow.call({"v": 1, "op": "ping"})["busy"] == 0, 20)
        m = gw.metrics()
        assert m["corral_gateway_races_won_total"] >= 3
        assert m["corral_gateway_races_lost_total"] >= 3
        assert m["corral_gateway_cancels_total"] >= 3
        assert m["corral_gateway_cancels_confirmed_total"] >= 3
        assert "a0=%s" % slow.url in gw.log() or "a1=%s" % slow.url in gw.log()
    finally:
        gw.stop()


def test_hedged_requests(worker_factory, slow_runtime, tmp_path):
    slow = worker_factory(slow_runtime.dir, slots=2)
    fast = worker_factory("python", slots=2)
    gw = Gateway([("python", slow.url), ("python", fast.url)], tmp=str(tmp_path),
                 args=["--hedge-ms", "auto"])
    try:
        seen = set()
        for i in range(6):
            body = dict(PY_OK, hedge_ms=300) if i % 2 else dict(PY_OK)  # default: auto
            t0 = time.monotonic()
            with slow_runtime.watch():
                st, _, j = gw.run(body)
            took = time.monotonic() - t0
            assert st == 200 and j["worker"]["url"] == fast.url, j
            assert j["race"]["mode"] == "hedge"
            atts = j["race"]["attempts"]
            if j["race"]["hedged"]:
                # started on the slow one; the second went out after hedge_ms
                assert [a["worker"] for a in atts] == [slow.url, fast.url], atts
                assert atts[0]["outcome"] == "lost" and atts[1]["outcome"] == "won"
                assert 0.3 <= took < slow_runtime.delay, took
                assert_slow_processes_gone(slow_runtime)
            else:
                assert [a["worker"] for a in atts] == [fast.url], atts
            seen.add(j["race"]["hedged"])
        assert seen == {True, False}, "both paths expected over 6 requests (least-busy alternates)"
        assert gw.metrics()["corral_gateway_hedges_total"] >= 1
        # race 1 turns hedging off
        st, _, j = gw.run(dict(PY_OK, race=1, hedge_ms=1))
        assert st == 200 and j["race"]["mode"] == "single" and len(j["race"]["attempts"]) == 1
    finally:
        gw.stop()


def test_sigkill_of_a_worker_mid_requests(worker_factory, tmp_path):
    a = worker_factory("python", slots=3)
    b = worker_factory("python", slots=3)
    gw = Gateway([("python", a.url), ("python", b.url)], tmp=str(tmp_path))
    results = []

    def go(i):
        body = {"runtime": "python", "race": 1 + i % 2,
                "code": "import time; time.sleep(1); print('done', %d)" % i}
        results.append((i, gw.run(body)))

    try:
        threads = [threading.Thread(target=go, args=(i,)) for i in range(10)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        a.proc.send_signal(signal.SIGKILL)
        for t in threads:
            t.join(60)
        assert len(results) == 10
        for i, (st, _, j) in results:
            assert st == 200, (i, j)
            assert j["run"]["stdout"] == "done %d\n" % i and j["worker"]["url"] == b.url, (i, j)
        m = gw.metrics()
        assert m["corral_gateway_worker_ejections_total"] >= 1
        assert gw.healthy() == 1
        assert "msg=eject worker=%s" % a.url in gw.log()
    finally:
        gw.stop()


def test_all_workers_dead_502_then_service_resumes(tmp_path):
    ports = [Worker.__init__.__globals__["free_port"]() for _ in range(2)]
    ws = [worker_on_port("python", p, tmp=str(tmp_path)) for p in ports]
    gw = Gateway([("python", w.url) for w in ws], tmp=str(tmp_path))
    try:
        assert gw.run(PY_OK)[0] == 200
        for w in ws:
            w.proc.send_signal(signal.SIGKILL)
            w.stop()
        assert wait_until(lambda: gw.healthy() == 0, 20)
        st, h, j = gw.run(PY_OK)
        assert st == 502 and j["error"]["code"] == "no_worker" and h["retry-after"], j
        assert "no healthy python" in j["error"]["message"]
        st, _, j = gw.request("GET", "/readyz")
        assert st == 503 and j["ready"] is False
        # what s6 does: start them again, same addresses
        ws = [worker_on_port("python", p, tmp=str(tmp_path)) for p in ports]
        assert wait_until(lambda: gw.healthy() == 2, 20), gw.log()[-2000:]
        st, _, j = gw.run(PY_OK)
        assert st == 200 and j["run"]["stdout"] == "OK\n", j
        assert gw.metrics()["corral_gateway_worker_recoveries_total"] >= 2
    finally:
        gw.stop()
        for w in ws:
            w.stop()


def test_unresponsive_worker_ejected_and_back(worker_factory, tmp_path):
    a = worker_factory("python", slots=2)
    b = worker_factory("python", slots=2)
    gw = Gateway([("python", a.url), ("python", b.url)], tmp=str(tmp_path))
    try:
        os.kill(a.proc.pid, signal.SIGSTOP)
        try:
            assert wait_until(lambda: gw.healthy() == 1, 20)
            # meanwhile requests go to the healthy one only
            for _ in range(3):
                st, _, j = gw.run(PY_OK)
                assert st == 200 and j["worker"]["url"] == b.url, j
        finally:
            os.kill(a.proc.pid, signal.SIGCONT)
        assert wait_until(lambda: gw.healthy() == 2, 20)
        seen = set()
        for _ in range(4):
            st, _, j = gw.run(dict(PY_OK, race=1))
            seen.add(j["worker"]["url"])
        assert seen == {a.url, b.url}
    finally:
        gw.stop()


def test_busy_worker_is_waited_for_not_a_failure(worker_factory, tmp_path):
    """A worker whose only slot another client holds answers `busy`: the
    gateway does not fail the request, it waits for the slot."""
    import msgpack
    import sp
    w = worker_factory("python", slots=1)
    gw = Gateway([("python", w.url)], tmp=str(tmp_path))
    try:
        with sp.Req(w.url) as other:
            other.send_raw(msgpack.packb({
                "v": 1, "op": "run", "id": "other-client",
                "files": [{"name": "m.py", "content": "import time; time.sleep(3)"}]}))
            assert wait_until(lambda: sp.call(w.url, {"v": 1, "op": "ping"})["busy"] == 1, 20)
            st, _, j = gw.run(PY_OK)
            other.recv_raw()
        assert st == 200 and j["run"]["stdout"] == "OK\n", j
        outcomes = [a["outcome"] for a in j["race"]["attempts"]]
        assert outcomes[0] == "busy" and outcomes[-1] == "won", j["race"]
        assert j["race"]["retries"] == 0
    finally:
        gw.stop()


def test_dns_discovery(worker_factory, tmp_path):
    w = worker_factory("python", slots=2)
    port = w.url.rsplit(":", 1)[1]
    gw = Gateway([], tmp=str(tmp_path), ready=1,
                 args=["--discover", "dns://localhost:%s" % port, "--discover-ms", "200"])
    try:
        st, _, j = gw.run(PY_OK)
        assert st == 200 and j["worker"]["url"] == "tcp://127.0.0.1:%s" % port, j
        assert "msg=worker_add worker=tcp://127.0.0.1:%s label=dns:localhost:%s" % (port, port) in gw.log()
    finally:
        gw.stop()


def test_run_whose_worker_died_waits_for_it_to_come_back(tmp_path):
    """The only worker is SIGKILLed mid-run and comes back on its address
    (what s6 does): the request is not lost: its retry waits for a worker
    to be healthy again and is served there. The old gateway answered 502
    at once (no healthy worker for the retry)."""
    port = Worker.__init__.__globals__["free_port"]()
    w = worker_on_port("python", port, tmp=str(tmp_path))
    gw = Gateway([("python", w.url)], tmp=str(tmp_path), args=["--queue-ms", "30000"])
    box = {}
    try:
        t = threading.Thread(target=lambda: box.update(r=gw.run(
            {"runtime": "python", "race": 1, "limits": {"wall_ms": 20000},
             "code": "import time; time.sleep(2); print('served')"})))
        t.start()
        assert wait_until(lambda: sp.call(w.url, {"v": 1, "op": "ping"})["busy"] == 1, 20)
        w.proc.send_signal(signal.SIGKILL)
        w.stop()
        assert wait_until(lambda: gw.healthy() == 0, 20)
        w = worker_on_port("python", port, tmp=str(tmp_path))
        t.join(60)
        st, _, j = box["r"]
        assert st == 200 and j["run"]["stdout"] == "served\n", j
        outcomes = [a["outcome"] for a in j["race"]["attempts"]]
        assert outcomes[0] == "error" and outcomes[-1] == "won", j["race"]
    finally:
        gw.stop()
        w.stop()
