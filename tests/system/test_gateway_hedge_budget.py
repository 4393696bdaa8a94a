"""The hedge budget (--hedge-budget, docs/http-api.md "Hedge"): a hedge
doubles its request's load, so the gateway sends them for at most PCT % of
hedged-mode invocations, plus a burst of 10. Here every request wants a
hedge (hedge_ms 1, each run takes longer): the first 10 get one, the next
ones do not, and are counted as skipped. Nothing is timed."""
from conftest import Worker  # noqa: F401  (the fixtures' module)
from test_gateway_fixtures import Gateway

SLOWISH = {"runtime": "bash", "code": "sleep 0.05; echo OK", "hedge_ms": 1}


def test_hedges_stop_when_the_budget_is_spent(worker_factory, tmp_path):
    a = worker_factory("bash", slots=2)
    b = worker_factory("bash", slots=2)
    gw = Gateway([("bash", a.url), ("bash", b.url)], tmp=str(tmp_path),
                 args=["--hedge-budget", "1"])
    try:
        hedged = []
        for _ in range(14):
            st, _, j = gw.run(SLOWISH)
            assert st == 200 and j["run"]["stdout"] == "OK\n", j
            assert j["race"]["mode"] == "hedge", j["race"]
            hedged.append(j["race"]["hedged"])
            assert len(j["race"]["attempts"]) == (2 if j["race"]["hedged"] else 1), j["race"]
        # 1 % of 14 invocations earns no full hedge: the burst of 10 only
        assert hedged == [True] * 10 + [False] * 4, hedged
        m = gw.metrics()
        assert m["corral_gateway_hedges_total"] == 10
        assert m["corral_gateway_hedges_skipped_total"] == 4
    finally:
        gw.stop()


def test_hedge_budget_flag_is_checked(tmp_path):
    import subprocess
    from conftest import BUILD
    for bad in ("0", "101", "ten"):
        p = subprocess.run([str(BUILD / "corral-gateway"), "--hedge-budget", bad,
                            "--workers", "bash=tcp://127.0.0.1:1"], capture_output=True)
        assert p.returncode == 2 and b"--hedge-budget" in p.stderr, (bad, p.stderr)
