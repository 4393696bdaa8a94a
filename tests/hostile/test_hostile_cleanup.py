"""Hostile trees against the work-dir cleanup, at every isolation level and
mode (conftest.py's `hw`). A program leaves in its work dir and its tmp
dir ($TMPDIR: the run's own tmpfs at the namespace levels, a folder next to
the work dir below them) a tree made to defeat the cleanup: 100000 levels
deep, every name the old cleanup used for its own moves already taken, or
mode-000 folders, symlinks out, fifos, sockets and odd names around a full
tmpfs. After each, every slot must serve runs again (the worker's `ping`
says healthy, no slot is out of service) and the worker's work root must
hold nothing of it."""
import os
import time

from test_hostile import LIM, healthy, run

# Enough limits for a deep tree; the program does not need more.
BIG = {"wall_ms": 30000, "cpu_ms": 30000, "memory_bytes": 256 << 20, "file_bytes": 64 << 20}

DEEP = r"""
import os, sys
def deep(base, n):
    os.chdir(base)
    for i in range(n):
        os.mkdir('d')
        os.chdir('d')
    open('leaf', 'w').write('x')
for base in (os.environ['HOME'], os.environ['TMPDIR']):
    try:
        deep(base, 100000)
        print('deep', base == os.environ['HOME'])
    except OSError as e:
        print('stopped', e.errno)
"""

# Every name the old cleanup renamed deep folders to (".px-deep-<n>" at the
# top of the tree), taken as files, folders and symlinks; and a tree deep
# enough that it needed them.
TAKEN = r"""
import os
for base in (os.environ['HOME'], os.environ['TMPDIR']):
    os.chdir(base)
    for i in range(4000):
        n = '.px-deep-%d' % i
        if i % 3 == 0:
            open(n, 'w').write('x')
        elif i % 3 == 1:
            os.mkdir(n)
            open(n + '/f', 'w').write('x')
        else:
            os.symlink('/', n)
    for i in range(3000):
        os.mkdir('d')
        os.chdir('d')
print('planted')
"""

TRAPS = r"""
import os, socket, stat
def traps(base):
    os.chdir(base)
    os.makedirs('locked/inner/deeper')
    open('locked/inner/deeper/f', 'w').write('x')
    os.chmod('locked/inner/deeper', 0)
    os.chmod('locked/inner', 0)
    os.chmod('locked', 0)
    os.mkdir('ro')
    open('ro/f', 'w').write('x')
    os.chmod('ro', 0o500)
    os.symlink('/', 'root')
    os.symlink('/etc/passwd', 'passwd')
    os.symlink(os.path.dirname(base), 'up')
    os.symlink('up/' + os.path.basename(base), 'self')
    os.mkfifo('fifo')
    os.mkfifo('locked2')
    s = socket.socket(socket.AF_UNIX)
    s.bind('sock')
    open('new\nline', 'w').write('x')
    os.mkdir('\n')
    open('\n/..x', 'w').write('x')
    os.mkdir('many')
    for i in range(5000):
        open('many/%d' % i, 'w').close()
    i = 0
    try:
        while i < MAXFILL:
            with open('fill%d' % i, 'wb') as f:
                f.write(b'x' * (1 << 20))
            i += 1
    except OSError as e:
        print('full', e.errno)
    try:
        os.chmod(base, 0)
    except OSError:
        pass  # /tmp at the namespace levels: the sandbox's, not ours
for base in (os.environ['HOME'], os.environ['TMPDIR']):
    traps(base)
"""


def work_root(w):
    """The worker's work root: in its state dir, given (a non-root
    worker's) or the default one mkdtemp made, corral.<pid>.XXXXXX."""
    import glob
    args = w.proc.args
    if "--state-dir" in args:
        return os.path.join(args[args.index("--state-dir") + 1], "work")
    (state,) = glob.glob("%s/corral.%d.*" % (os.environ.get("TMPDIR", "/tmp"), w.proc.pid))
    return os.path.join(state, "work")


def leftovers(w):
    """What the worker's work root holds besides its slot folders and, at
    most, a prewarmed sandbox's empty work dir (and its tmp) per slot."""
    root = work_root(w)
    left = []
    for slot in os.listdir(root):
        sd = os.path.join(root, slot)
        if not os.path.isdir(sd) or os.path.islink(sd):
            left.append(slot)
            continue
        for e in os.listdir(sd):
            p = os.path.join(sd, e)
            if w.prewarm and os.path.isdir(p) and not os.path.islink(p) and not os.listdir(p):
                continue
            left.append(os.path.join(slot, e))
    return left


CHECK = r"""
import os
t = os.environ['TMPDIR']
print('OK', sorted(os.listdir('.')), [n for n in os.listdir(t) if not n.startswith('corral.')])
"""


def clean(w):
    # every slot reused, several times, and nothing of the trees seen
    for _ in range(6):
        r = run(w, CHECK)
        assert r["status"] == "ok", r
        assert r["stdout"] == b"OK ['main.py'] []\n", r
    healthy(w)
    deadline = time.time() + 5
    while leftovers(w) and time.time() < deadline:
        time.sleep(0.1)
    assert leftovers(w) == []
    assert "work dir removal failed" not in w.log(), w.log()[-3000:]
    info = w.call({"v": 1, "op": "info"})
    assert info["out_of_service"] == [], info
    ping = w.call({"v": 1, "op": "ping"})
    assert ping["ok"] is True and ping["health"] == "ok" and ping["out_of_service"] == 0, ping


def test_cleanup_deep_tree(hw):
    for _ in range(2):  # on both slots
        r = run(hw, DEEP, BIG)
        assert r["status"] in ("ok", "memory", "exit", "timeout"), r
    clean(hw)


def test_cleanup_taken_names(hw):
    for _ in range(2):
        r = run(hw, TAKEN, BIG)
        assert r["status"] == "ok" and r["stdout"] == b"planted\n", r
    clean(hw)


def test_cleanup_traps_and_full_tmpfs(hw):
    # A non-root worker has no work-dir tmpfs (--workdir-bytes needs root):
    # its work dir is on the host's disk, which it would fill for real
    # (docs/isolation.md, known limits); 64 MiB of files stand for it there.
    maxfill = 64 if getattr(hw, "nonroot", False) else 1 << 30
    for _ in range(2):
        r = run(hw, "MAXFILL = %d\n" % maxfill + TRAPS, dict(LIM, **BIG))
        assert r["status"] in ("ok", "memory", "exit"), r
    clean(hw)
