"""warm.py — one prewarmed Python invocation (docs/runtimes.md, "warm").

Started by warm.sh before any request exists, in the sandbox the request
will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
the handed-over entry as `python3 -B entry args...` would have: sys.argv,
sys.path[0] (the entry's folder), the whole environment replaced, the
entry run as __main__ (see run_main), an uncaught exception printed without this file's
frames and exit status 1, SystemExit's code as the exit status. Interpreter settings read only at start-up
(PYTHONHASHSEED, PYTHONIOENCODING, -X options...) are those of the warm
start; PYTHONUNBUFFERED is honoured. It serves one invocation, then the
process ends with the program.
"""
import os
import sys


REHEARSAL = """\
import sys
x = [str(i) for i in range(200)]
def f(a, b=2):
    return a + b
print(f(1), x[5], file=sink)
"""


def rehearse():
    """Goes through the steps of a run, on a few lines nobody sees, before
    the handoff. Forked from the zygote, this process shares its pages
    copy-on-write: the first environment rewrite, compile, run, print and
    flush copy the pages they write, and doing it here, while waiting,
    takes about three quarters of those faults (116 -> 32 measured for
    print("OK"); 0.9 -> 0.4 ms of the run) off the invocation's path.
    Nothing of it stays: the environment is put back as it was, the code
    runs in its own namespace, its output goes to a StringIO."""
    import atexit  # noqa: F401  (finish imports it: cached from here on)
    import builtins
    import io
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(saved)
    path = os.path.abspath("corral-rehearsal.py")
    loader = sys.modules["_frozen_importlib_external"].SourceFileLoader("__rehearsal__", path)
    scope = type(sys)("__rehearsal__").__dict__
    scope.update(__file__=path, __builtins__=builtins, __loader__=loader, sink=io.StringIO())
    exec(compile(REHEARSAL.encode(), os.path.dirname(path) + "/x.py", "exec", dont_inherit=True),
         scope)
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except (OSError, ValueError):
            pass  # the program's own flush will say it


def receive():
    rehearse()
    try:
        os.write(3, b"ready\n")
    except OSError:
        pass
    chunks = []
    while True:
        b = os.read(3, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(3)
    return parse(b"".join(chunks))


def parse(data):
    """The handoff's entry, args and environment (exits 125 when malformed)."""
    fields = data.split(b"\0")
    if len(fields) < 4 or fields[0] != b"corral-warm 1" or fields[-1] != b"":
        os.write(2, b"corral warm.py: malformed handoff\n")
        os._exit(125)
    nargs = int(fields[2])
    dec = os.fsdecode
    entry, args = dec(fields[1]), [dec(a) for a in fields[3:3 + nargs]]
    env = [dec(kv).partition("=") for kv in fields[3 + nargs:-1]]
    return entry, args, env


def run_main(path):
    """Runs the file as the interpreter runs a script: compiled under its
    absolute path (as tracebacks of a cold run show it), in a fresh
    __main__ module. runpy would do the same but imports pkgutil and
    typing for it, which cost more than the interpreter's own start."""
    import builtins
    loader = sys.modules["_frozen_importlib_external"].SourceFileLoader("__main__", path)
    main = type(sys)("__main__")
    main.__dict__.update(__file__=path, __builtins__=builtins, __loader__=loader,
                         __cached__=None, __spec__=None, __package__=None)
    sys.modules["__main__"] = main
    with open(path, "rb") as f:
        code = compile(f.read(), path, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def trimmed(tb, path):
    """The traceback from the user's entry on (ours dropped)."""
    t = tb
    while t is not None and os.path.abspath(t.tb_frame.f_code.co_filename) != path:
        t = t.tb_next
    return t or tb


def main():
    run(*receive())


def run(entry, args, env):
    """Runs the invocation in this process and ends it; never returns,
    whatever the program does (also the zygote's child, zygote.py, once
    it is in its sandbox: nothing may get back into the server's code)."""
    try:
        finish(invoke(entry, args, env))
    except BaseException:  # what escaped finish: a signal handler's exception...
        try:
            import traceback
            traceback.print_exc()
        except BaseException:
            pass
    os._exit(1)


def invoke(entry, args, env):
    """Runs the program; its exit status."""
    os.environ.clear()
    for k, _, v in env:
        os.environ[k] = v
    sys.argv[:] = [entry] + args
    path = os.path.abspath(entry)
    sys.path[0] = os.path.dirname(path)
    if os.environ.get("PYTHONUNBUFFERED"):
        sys.stdout.reconfigure(write_through=True)
    try:
        run_main(path)
    except SystemExit as e:
        return exit_code(e)
    except BaseException as e:
        print_uncaught(e, path)
        return 1
    return 0


def print_uncaught(e, path):
    """What the interpreter prints of an uncaught exception: through
    sys.excepthook, and when the hook itself raises, both tracebacks."""
    tb = trimmed(e.__traceback__, path)
    e = e.with_traceback(tb)
    try:
        sys.excepthook(type(e), e, tb)
    except BaseException as h:
        try:
            import traceback
            print("Error in sys.excepthook:", file=sys.stderr)
            hook_tb = h.__traceback__.tb_next  # from the hook on: not this frame
            traceback.print_exception(type(h), h, hook_tb, chain=False, file=sys.stderr)
            print("\nOriginal exception was:", file=sys.stderr)
            traceback.print_exception(type(e), e, tb, file=sys.stderr)
        except BaseException:
            pass


def exit_code(e):
    """What the interpreter does with SystemExit's code at the top."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code & 0xFF
    try:
        print(e.code, file=sys.stderr)
    except Exception:
        pass
    return 1


def finish(code):
    """Ends the process as interpreter shutdown would as far as a program
    can tell — non-daemon threads joined, atexit handlers run, stdout and
    stderr flushed (when that fails: reported as unraisable and exit status
    120, as Python does) — without tearing
    the interpreter down, which is most of a short run's time: the
    process is thrown away anyway. (Finalizers of objects still alive at
    exit are not run; Python does not promise them either.)"""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:
            pass
    import atexit
    atexit._run_exitfuncs()
    for f in (sys.stdout, sys.stderr):
        try:
            f.flush()
        except BaseException as e:
            code = 120
            try:
                import traceback
                print("Exception ignored in: %r" % (f,), file=sys.stderr)
                traceback.print_exception(type(e), e, e.__traceback__.tb_next, file=sys.stderr)
            except BaseException:
                pass
    os._exit(code)


if __name__ == "__main__":
    main()
