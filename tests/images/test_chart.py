"""Chart tests for charts/corral, all offline: `helm lint --strict`,
`helm template` with the default values and with values-full.yaml, every
rendered object validated against the Kubernetes schemas
(k8s_validate.mjs), and checks that the wiring is right: NetworkPolicies
and probes point at the ports the containers listen on, each runtime gets
its Deployment, headless Service, HPA and PDB, and bad values are refused.

The tools (helm, the schemas) come from images/tools.sh."""
import json
import os
import pathlib
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "corral"
HERE = pathlib.Path(__file__).resolve().parent
FULL = HERE / "values-full.yaml"


@pytest.fixture(scope="session")
def tools():
    out = subprocess.run(["sh", str(REPO / "images" / "tools.sh")], check=True,
                         capture_output=True, text=True)
    return pathlib.Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def helm(tools):
    path = tools / "bin" / "helm"

    def run(*args, check=True):
        p = subprocess.run([str(path), *args], capture_output=True, text=True)
        if check and p.returncode != 0:
            raise AssertionError("helm %s failed:\n%s%s" % (" ".join(args), p.stdout, p.stderr))
        return p
    return run


def render(helm, *args):
    out = helm("template", "rel", str(CHART), "--namespace", "corral-test", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="session")
def default_docs(helm):
    return render(helm)


@pytest.fixture(scope="session")
def full_docs(helm):
    return render(helm, "-f", str(FULL))


def validate(tools, docs, tmp_path):
    f = tmp_path / "docs.json"
    f.write_text(json.dumps(docs))
    return subprocess.run(["node", str(HERE / "k8s_validate.mjs"), str(tools), str(f)],
                          capture_output=True, text=True)


def test_lint_strict_default_and_full(helm):
    helm("lint", "--strict", str(CHART))
    helm("lint", "--strict", str(CHART), "-f", str(FULL))


@pytest.mark.parametrize("which", ["default", "full"])
def test_every_object_valid(which, tools, default_docs, full_docs, tmp_path):
    docs = default_docs if which == "default" else full_docs
    p = validate(tools, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "%d valid, 0 invalid" % len(docs) in p.stdout


def test_validator_rejects_broken_objects(tools, default_docs, tmp_path):
    """The validator is not a rubber stamp: a wrong type, a missing
    required field and an unknown field are each reported."""
    dep = by_kind(default_docs, "Deployment")["rel-corral-python"]
    wrong_type = json.loads(json.dumps(dep))
    wrong_type["spec"]["replicas"] = "two"
    missing = json.loads(json.dumps(dep))
    del missing["spec"]["selector"]
    unknown = json.loads(json.dumps(dep))
    unknown["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["comand"] = ["x"]
    for bad, word in ((wrong_type, "replicas"), (missing, "selector"), (unknown, "comand")):
        p = validate(tools, [bad], tmp_path)
        assert p.returncode == 1 and word in p.stdout, p.stdout + p.stderr


def test_objects_per_runtime(default_docs, full_docs):
    names = [r["name"] for r in yaml.safe_load((CHART / "values.yaml").read_text())["runtimes"]]
    deps, svcs = by_kind(default_docs, "Deployment"), by_kind(default_docs, "Service")
    hpas, pdbs = by_kind(default_docs, "HorizontalPodAutoscaler"), by_kind(default_docs, "PodDisruptionBudget")
    for n in names:
        full = "rel-corral-" + n
        assert full in deps and full in hpas and full in pdbs, n
        assert svcs[full]["spec"]["clusterIP"] == "None"
        assert svcs[full]["spec"]["selector"] == deps[full]["spec"]["selector"]["matchLabels"]
        assert "replicas" not in deps[full]["spec"]  # the HPA owns it
    assert len(deps) == len(names) + 1
    # values-full: python has autoscaling off (fixed replicas), c has no PDB.
    deps, hpas = by_kind(full_docs, "Deployment"), by_kind(full_docs, "HorizontalPodAutoscaler")
    assert deps["cr-python"]["spec"]["replicas"] == 4 and "cr-python" not in hpas
    assert "cr-c" in hpas and "cr-c" not in by_kind(full_docs, "PodDisruptionBudget")
    assert set(hpas) == {"cr-c", "cr-gateway"}


def test_labels_follow_conventions(default_docs, full_docs):
    for d in default_docs + full_docs:
        labels = d["metadata"]["labels"]
        for k in ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                  "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"):
            assert k in labels, (d["kind"], d["metadata"]["name"], k)
    assert all(d["metadata"]["labels"]["team"] == "platform" for d in full_docs)


def container(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def port_named(c, name):
    return next(p["containerPort"] for p in c["ports"] if p["name"] == name)


@pytest.mark.parametrize("which", ["default", "full"])
def test_probes_point_at_the_listening_ports(which, default_docs, full_docs):
    docs = default_docs if which == "default" else full_docs
    deps = by_kind(docs, "Deployment")
    gw = container(next(d for n, d in deps.items() if n.endswith("-gateway")))
    gw_port = port_named(gw, "http")
    assert "http://0.0.0.0:%d" % gw_port in gw["args"]
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                        ("startupProbe", "/healthz")):
        assert gw[probe]["httpGet"]["path"] == path
        assert gw[probe]["httpGet"]["port"] in ("http", gw_port)
    for name, d in deps.items():
        if name.endswith("-gateway"):
            continue
        c = container(d)
        port = port_named(c, "nng")
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["CORRAL_LISTEN"] == "tcp://0.0.0.0:%d" % port
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            assert c[probe]["exec"]["command"] == ["corral", "ping", "--worker",
                                                   "tcp://127.0.0.1:%d" % port], (name, probe)
        # The gateway discovers this runtime through its headless Service on that port.
        svc = by_kind(docs, "Service")[name]
        assert svc["spec"]["ports"][0]["port"] == port
        assert "dns://%s.corral-test.svc:%d" % (name, port) in gw["args"]


@pytest.mark.parametrize("which", ["default", "full"])
def test_network_policies(which, default_docs, full_docs):
    docs = default_docs if which == "default" else full_docs
    deps = by_kind(docs, "Deployment")
    gw_dep = next(d for n, d in deps.items() if n.endswith("-gateway"))
    gw_labels = gw_dep["spec"]["template"]["metadata"]["labels"]
    gw_port = port_named(container(gw_dep), "http")
    workers = [d for n, d in deps.items() if not n.endswith("-gateway")]
    nps = list(by_kind(docs, "NetworkPolicy").values())
    assert len(nps) == 2

    def selects(np, labels):
        return all(labels.get(k) == v for k, v in np["spec"]["podSelector"]["matchLabels"].items())

    # Workers: ingress only from gateway pods, on the worker port; no egress.
    for w in workers:
        labels = w["spec"]["template"]["metadata"]["labels"]
        mine = [np for np in nps if selects(np, labels)]
        assert len(mine) == 1, w["metadata"]["name"]
        spec = mine[0]["spec"]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
        assert spec["egress"] == []
        (rule,) = spec["ingress"]
        assert [p["port"] for p in rule["ports"]] == [port_named(container(w), "nng")]
        (peer,) = rule["from"]
        assert set(peer) == {"podSelector"}
        sel = peer["podSelector"]["matchLabels"]
        assert all(gw_labels.get(k) == v for k, v in sel.items())
        assert not all(labels.get(k) == v for k, v in sel.items())  # workers are not peers
    # Gateway: ingress on its port; egress to workers' port and DNS only.
    (gnp,) = [np for np in nps if selects(np, gw_labels)]
    (rule,) = gnp["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == [gw_port]
    if which == "full":
        assert len(rule["from"]) == 2
    eg_ports = sorted((p["port"], p["protocol"]) for r in gnp["spec"]["egress"] for p in r["ports"])
    wport = port_named(container(workers[0]), "nng")
    assert eg_ports == sorted([(wport, "TCP"), (53, "UDP"), (53, "TCP")])


def test_security_contexts(default_docs, full_docs):
    gw = by_kind(default_docs, "Deployment")["rel-corral-gateway"]["spec"]["template"]["spec"]
    assert gw["securityContext"]["runAsNonRoot"] is True
    c = gw["containers"][0]["securityContext"]
    assert c["readOnlyRootFilesystem"] and c["capabilities"]["drop"] == ["ALL"]
    assert not c["allowPrivilegeEscalation"]
    # default isolation "seccomp": root, only the uid-switching capabilities.
    w = container(by_kind(default_docs, "Deployment")["rel-corral-python"])["securityContext"]
    assert w["capabilities"]["drop"] == ["ALL"]
    assert "SYS_ADMIN" not in w["capabilities"]["add"] and "SETUID" in w["capabilities"]["add"]
    assert w["readOnlyRootFilesystem"] and not w.get("privileged")
    env = {e["name"]: e.get("value") for e in container(by_kind(default_docs, "Deployment")["rel-corral-python"])["env"]}
    assert env["CORRAL_MIN_ISOLATION"] == "seccomp"
    assert env["CORRAL_UNENFORCED_LIMITS"] == "memory"  # no cgroup, no mount namespace
    deps = by_kind(full_docs, "Deployment")
    py = deps["cr-python"]["spec"]["template"]["spec"]  # unprivileged
    assert {e["name"]: e.get("value") for e in container(deps["cr-python"])["env"]}[
        "CORRAL_UNENFORCED_LIMITS"] == "memory,pids"
    assert "CORRAL_UNENFORCED_LIMITS" not in {e["name"] for e in container(deps["cr-c"])["env"]}
    assert py["securityContext"]["runAsNonRoot"] and "add" not in py["containers"][0]["securityContext"]["capabilities"]
    assert "SYS_ADMIN" in container(deps["cr-c"])["securityContext"]["capabilities"]["add"]  # namespaces
    mins = {n: {e["name"]: e.get("value") for e in container(d)["env"]}.get("CORRAL_MIN_ISOLATION")
            for n, d in deps.items()}
    assert mins == {"cr-python": "seccomp", "cr-c": "namespaces", "cr-gateway": None}
    assert container(deps["cr-gateway"])["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_full_values_reach_the_pods(full_docs):
    deps = by_kind(full_docs, "Deployment")
    c = container(deps["cr-c"])
    assert c["image"] == "registry.example.com/team/corral/runtime-c:9.9"
    assert container(deps["cr-python"])["image"] == "registry.example.com/team/corral/runtime-python:1.2.3"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["CORRAL_SLOTS"] == "8" and env["CORRAL_DRAIN_MS"] == "45000"
    assert env["CORRAL_LIMITS"] == "memory_bytes=256M,wall_ms=5000"
    assert env["CORRAL_COMPILE_LIMITS"] == "wall_ms=20000"
    assert {e["name"]: e.get("value") for e in container(deps["cr-python"])["env"]}["CORRAL_SLOTS"] == "2"
    assert deps["cr-c"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 55
    gw = {e["name"]: e.get("value") for e in container(deps["cr-gateway"])["env"]}
    assert (gw["CORRAL_GW_MAX_CONNECTIONS"], gw["CORRAL_GW_HEADER_TIMEOUT_MS"],
            gw["CORRAL_GW_IDLE_TIMEOUT_MS"], gw["CORRAL_GW_MAX_HEADER_BYTES"]) == \
        ("300", "5000", "30000", "32K")
    keys = by_kind(full_docs, "Secret")["cr-api-keys"]["data"]["api-keys"]
    import base64
    assert base64.b64decode(keys).decode().split() == ["key-aaaaaaaaaaaaaaaaaaaaaaaa",
                                                       "key-bbbbbbbbbbbbbbbbbbbbbbbb"]
    ing = by_kind(full_docs, "Ingress")["cr-gateway"]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == "cr-gateway"
    sm = by_kind(full_docs, "ServiceMonitor")["cr-gateway"]
    assert sm["spec"]["endpoints"][0]["port"] == "http" and sm["metadata"]["labels"]["release"] == "prom"


@pytest.mark.parametrize("override, message", [
    (["--set", "worker.isolation=root"], "/worker/isolation"),
    (["--set", "runtimes[0].name=Py_thon", "--set", "runtimes[0].image.repository=x"], "name"),
    (["--set", "gateway.race=3"], "race"),
    (["--set", "gateway.auth.apiKeys[0]=caf\u00e9-0123456789abcdef"], "apiKeys"),
    (["--set", "worker.limits.walltime=5"], "walltime"),
    (["--set", "gateway.replicaz=2"], "replicaz"),
    (["--set", "worker.prewarm=on"], "/worker/prewarm"),
    (["--set", "worker.zygote=1"], "/worker/zygote"),
    (["--set", "workerAuth.enable=true"], "enable"),
    (["--set", "workerAuth.enabled=yes"], "/workerAuth/enabled"),
    (["--set", "runtimes[0].name=python", "--set", "runtimes[0].image.repository=x",
      "--set", "runtimes[0].zygote=yes"], "/runtimes/0/zygote"),
])
def test_bad_values_refused(helm, override, message):
    p = helm("template", "rel", str(CHART), *override, check=False)
    assert p.returncode != 0
    assert message in p.stderr, p.stderr


def fast_paths(docs):
    """{deployment: (CORRAL_PREWARM, CORRAL_ZYGOTE)} of the worker pods."""
    out = {}
    for name, d in by_kind(docs, "Deployment").items():
        env = {e["name"]: e.get("value") for e in container(d)["env"]}
        if "CORRAL_LISTEN" in env:
            out[name] = (env.get("CORRAL_PREWARM"), env.get("CORRAL_ZYGOTE"))
    return out


def test_fast_paths_off_by_default(default_docs, full_docs):
    """Both off unless asked for, said explicitly to every worker."""
    for docs in (default_docs, full_docs):
        fp = fast_paths(docs)
        assert fp and set(fp.values()) == {("off", "off")}, fp


def test_fast_paths_worker_level(helm, tools, tmp_path):
    docs = render(helm, "--set", "worker.prewarm=true", "--set", "worker.zygote=true",
                  "--set", "worker.isolation=namespaces")
    fp = fast_paths(docs)
    assert len(fp) == 6 and set(fp.values()) == {("on", "on")}, fp
    p = validate(tools, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr


def worker_env(docs, key):
    """{deployment: value of env key (None: absent)} of the worker pods."""
    out = {}
    for name, d in by_kind(docs, "Deployment").items():
        env = {e["name"]: e.get("value") for e in container(d)["env"]}
        if "CORRAL_LISTEN" in env:
            out[name] = env.get(key)
    return out


def test_favordynmods_only_when_asked(helm, default_docs, tools, tmp_path):
    """worker.favordynmods: the image's corral-init remounts the node's
    cgroup2 hierarchy with it (CORRAL_FAVORDYNMODS=on); absent by default."""
    assert set(worker_env(default_docs, "CORRAL_FAVORDYNMODS").values()) == {None}
    docs = render(helm, "--set", "worker.favordynmods=true", "--set", "worker.isolation=full")
    on = worker_env(docs, "CORRAL_FAVORDYNMODS")
    assert len(on) == 6 and set(on.values()) == {"on"}, on
    p = validate(tools, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    p = helm("template", "rel", str(CHART), "--set", "worker.favordynmods=yes", check=False)
    assert p.returncode != 0 and "/worker/favordynmods" in p.stderr, p.stderr


def test_fast_paths_per_runtime_override(helm, tools, tmp_path):
    """A runtime's own prewarm/zygote wins over worker's, false included;
    zygote is checked against the runtime's effective isolation."""
    values = {
        "worker": {"prewarm": True, "zygote": True, "isolation": "seccomp"},
        "runtimes": [
            {"name": "python", "image": {"repository": "corral/runtime-python"},
             "isolation": "namespaces"},                       # inherits both
            {"name": "ruby", "image": {"repository": "corral/runtime-ruby"},
             "isolation": "full", "prewarm": False},
            {"name": "c", "image": {"repository": "corral/runtime-c"},
             "zygote": False, "prewarm": False},               # seccomp: zygote off is fine
            {"name": "node", "image": {"repository": "corral/runtime-node"},
             "isolation": "unprivileged", "zygote": False},
        ],
    }
    f = tmp_path / "values.yaml"
    f.write_text(json.dumps(values))
    docs = render(helm, "-f", str(f))
    assert fast_paths(docs) == {
        "rel-corral-python": ("on", "on"),
        "rel-corral-ruby": ("off", "on"),
        "rel-corral-c": ("off", "off"),
        "rel-corral-node": ("on", "off"),
    }
    p = validate(tools, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    # The other way round: off for the worker, on for one runtime.
    values = {"worker": {"isolation": "full"},
              "runtimes": [{"name": "python", "image": {"repository": "corral/runtime-python"},
                            "prewarm": True, "zygote": True},
                           {"name": "bash", "image": {"repository": "corral/runtime-bash"}}]}
    f.write_text(json.dumps(values))
    assert fast_paths(render(helm, "-f", str(f))) == {
        "rel-corral-python": ("on", "on"), "rel-corral-bash": ("off", "off")}


@pytest.mark.parametrize("override, runtime, level", [
    (["--set", "worker.zygote=true"], "python", "seccomp"),
    (["--set", "worker.zygote=true", "--set", "worker.isolation=unprivileged"], "python", "unprivileged"),
    (["--set", "worker.isolation=full", "--set", "runtimes[0].name=ruby",
      "--set", "runtimes[0].image.repository=x", "--set", "runtimes[0].zygote=true",
      "--set", "runtimes[0].isolation=seccomp"], "ruby", "seccomp"),
])
def test_zygote_below_namespaces_refused(helm, override, runtime, level):
    """The worker refuses --zygote on below level namespaces; the chart
    refuses the install rather than leave a crash-looping pod."""
    p = helm("template", "rel", str(CHART), *override, check=False)
    assert p.returncode != 0
    assert ('runtime "%s": zygote: true needs isolation full or namespaces, not %s'
            % (runtime, level)) in p.stderr, p.stderr


def auth_mounts(docs):
    """{deployment: (secret file env value, Secret name mounted at
    /run/corral-auth)} of every Deployment (None, None: no auth)."""
    out = {}
    for name, d in by_kind(docs, "Deployment").items():
        c = container(d)
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        f = env.get("CORRAL_SECRET_FILE") or env.get("CORRAL_GW_SECRET_FILE")
        mount = next((m["name"] for m in c.get("volumeMounts", [])
                      if m["mountPath"] == "/run/corral-auth"), None)
        vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        secret = vols[mount]["secret"]["secretName"] if mount else None
        if mount:
            assert vols[mount]["secret"]["items"] == [{"key": "secret", "path": "secret"}]
            assert vols[mount]["secret"]["defaultMode"] == 0o440
        out[name] = (f, secret)
    return out


def test_worker_auth_off_by_default(default_docs):
    assert set(auth_mounts(default_docs).values()) == {(None, None)}
    assert not [n for n in by_kind(default_docs, "Secret") if "worker-auth" in n]


def test_worker_auth_one_secret_in_gateway_and_every_worker(helm, tools, tmp_path, full_docs):
    """workerAuth: the gateway gets CORRAL_GW_SECRET_FILE, each worker
    CORRAL_SECRET_FILE (its `corral ping` probes inherit it), all the same
    Secret; generated (48 chars) unless existingSecret names one."""
    docs = render(helm, "--set", "workerAuth.enabled=true")
    secrets = by_kind(docs, "Secret")
    assert "rel-corral-worker-auth" in secrets
    import base64
    assert len(base64.b64decode(secrets["rel-corral-worker-auth"]["data"]["secret"])) == 48
    mounts = auth_mounts(docs)
    assert len(mounts) == 7
    assert mounts.pop("rel-corral-gateway") == ("/run/corral-auth/secret", "rel-corral-worker-auth")
    assert set(mounts.values()) == {("/run/corral-auth/secret", "rel-corral-worker-auth")}
    for d in by_kind(docs, "Deployment").values():
        assert "checksum/worker-auth" in d["spec"]["template"]["metadata"]["annotations"]
    p = validate(tools, docs, tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    full = auth_mounts(full_docs)
    assert set(full.values()) == {("/run/corral-auth/secret", "corral-worker-auth")}, full
    assert not [n for n in by_kind(full_docs, "Secret") if "worker-auth" in n]


def test_every_values_key_is_commented():
    """values.yaml documents each key: a key line comes right after a
    comment line (blank lines aside), except the entries of maps that are
    data (label selectors)."""
    import re
    lines = (CHART / "values.yaml").read_text().splitlines()
    prev, parents, bare = "", [], []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        m = re.match(r"^(\s*)(?:- )?([A-Za-z][\w./-]*):", line)
        if m:
            indent = len(m.group(1))
            parents = [(i, k) for i, k in parents if i < indent]
            in_data = parents and parents[-1][1] in ("namespaceSelector", "podSelector")
            if not prev.lstrip().startswith("#") and not in_data:
                bare.append("%d: %s" % (n, line))
            parents.append((indent, m.group(2)))
        prev = line
    assert not bare, "keys without a comment:\n" + "\n".join(bare)


def test_notes_render(helm):
    out = helm("install", "rel", str(CHART), "--dry-run=client", "--namespace", "corral-test").stdout
    assert "NOTES:" in out and "/v1/run" in out and "Authorization: Bearer" in out
