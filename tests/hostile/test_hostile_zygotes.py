"""Hostile code against the ruby and php fork servers (--zygote on, alone
and with --prewarm on; conftest.py's zhw), at the namespace levels: a
representative set of test_hostile.py's cases (fork bomb, memory hog,
endless loop, output flood, network, persistence between runs, a daemon,
the processor attacked), each written in the runtime's language. Each
asserts the status reported and that the worker is healthy and clean
afterwards: it still answers, the next run sees only its own file, and no
process of the slot is left (but the slot's next sandbox, waiting)."""
import pytest

from test_hostile import LIM, check_host_view, slot_processes

ENTRY = {"ruby": "main.rb", "php": "main.php"}
PROGRAMS = {
    "ruby": {
        "listing": "puts \"OK #{Dir.children('.').sort.join(',')}\"\n",
        "fork_bomb": "loop do\n  begin\n    fork\n  rescue SystemCallError\n  end\nend\n",
        "memory_hog": "s = 'x' * (512 << 20)\nputs 'survived'\n",
        "cpu_loop": "loop {}\n",
        "flood": "loop { $%s.write('A' * 65536) }\n",
        "network": "require 'socket'\n"
                   "def tcp(host, port)\n"
                   "  Socket.tcp(host, port, connect_timeout: 2).close\n  'connected'\n"
                   "rescue SystemCallError => e\n  e.errno\nend\n"
                   "puts \"worker=#{tcp('127.0.0.1', %(port)d)} outside=#{tcp('192.0.2.1', 80)}\"\n",
        "plant": "%(paths)s.each do |p|\n"
                 "  File.write(p, 'x')\n  puts \"wrote #{p}\"\n"
                 "rescue SystemCallError => e\n  puts \"no #{p} #{e.errno}\"\nend\n",
        "planted": "%(paths)s.each { |p| puts \"#{p} #{File.exist?(p)}\" }\n",
        "daemon": "if fork.nil?\n  Process.setsid\n  sleep 3600 if fork.nil?\n  exit!(0)\nend\n"
                  "puts 'parent done'\n",
        "hostview": "puts \"cwd #{Dir.pwd}\"\n"
                    "puts \"env #{ENV['HOME']} #{ENV['CORRAL_WORKDIR']} #{ENV['CORRAL_RUNTIME_DIR']}\"\n"
                    "['/proc/1/cmdline', '/proc/1/comm', '/proc/1/environ', '/proc/self/mountinfo'].each do |p|\n"
                    "  puts \"#{p} #{File.binread(p).inspect}\"\n"
                    "rescue SystemCallError => e\n  puts \"#{p} errno #{e.errno}\"\nend\n"
                    "$stdout.flush\ndef deep\n  raise 'where am I'\nend\ndeep\n",
        "kill": "res = [-1, %(pid)d, 1].map do |pid|\n"
                "  Process.kill(:KILL, pid)\n  'sent'\n"
                "rescue SystemCallError => e\n  e.errno\nend\nputs res.inspect\n",
    },
    "php": {
        "listing": "<?php\n$f = array_values(array_diff(scandir('.'), ['.', '..']));\n"
                   "echo 'OK ', implode(',', $f), \"\\n\";\n",
        "fork_bomb": "<?php\nwhile (true) {\n    @pcntl_fork();\n}\n",
        "memory_hog": "<?php\n$s = str_repeat('x', 512 << 20);\necho \"survived\\n\";\n",
        "cpu_loop": "<?php\nwhile (true) {}\n",
        "flood": "<?php\n$o = fopen('php://%s', 'w');\nwhile (true) fwrite($o, str_repeat('A', 65536));\n",
        "network": "<?php\nfunction tcp($h, $p) {\n"
                   "    $s = @fsockopen($h, $p, $errno, $errstr, 2);\n"
                   "    return $s ? 'connected' : $errno;\n}\n"
                   "echo 'worker=', tcp('127.0.0.1', %(port)d), ' outside=', tcp('192.0.2.1', 80), \"\\n\";\n",
        "plant": "<?php\nforeach (%(paths)s as $p) {\n"
                 "    echo @file_put_contents($p, 'x') === false ? \"no $p\\n\" : \"wrote $p\\n\";\n}\n",
        "planted": "<?php\nforeach (%(paths)s as $p) {\n"
                   "    echo $p, ' ', file_exists($p) ? 'true' : 'false', \"\\n\";\n}\n",
        "daemon": "<?php\nif (pcntl_fork() == 0) {\n    posix_setsid();\n"
                  "    if (pcntl_fork() == 0) sleep(3600);\n    exit(0);\n}\necho \"parent done\\n\";\n",
        "hostview": "<?php\necho 'cwd ', getcwd(), \"\\n\";\n"
                    "echo 'env ', getenv('HOME'), ' ', getenv('CORRAL_WORKDIR'), ' ', getenv('CORRAL_RUNTIME_DIR'), \"\\n\";\n"
                    "foreach (['/proc/1/cmdline', '/proc/1/comm', '/proc/1/environ', '/proc/self/mountinfo'] as $p) {\n"
                    "    $d = @file_get_contents($p);\n"
                    "    echo $p, ' ', $d === false ? 'unreadable' : addcslashes($d, \"\\0..\\37\"), \"\\n\";\n}\n"
                    "fflush(STDOUT);\nfunction deep() {\n    throw new RuntimeException('where am I');\n}\ndeep();\n",
        "kill": "<?php\n$r = [];\nforeach ([-1, %(pid)d, 1] as $p) $r[] = posix_kill($p, 9) ? 'sent' : posix_get_last_error();\n"
                "echo json_encode($r), \"\\n\";\n",
    },
}
PLANTS = {"ruby": "[ENV['HOME'] + '/planted', ENV['TMPDIR'] + '/planted', '/tmp/planted-corral', "
                  "'/dev/shm/planted-corral']",
          "php": "[getenv('HOME') . '/planted', getenv('TMPDIR') . '/planted', '/tmp/planted-corral', "
                 "'/dev/shm/planted-corral']"}


def run(w, name, limits=None, fmt=None, **kw):
    lim = dict(LIM)
    lim.update(limits or {})
    code = PROGRAMS[w.rt][name]
    r = w.run({ENTRY[w.rt]: (code % fmt if fmt else code).encode()}, limits=lim, **kw)
    assert r["ok"] is True, r
    return r["run"]


def healthy(w):
    assert w.alive(), w.log()
    assert w.call({"v": 1, "op": "ping"})["ok"] is True
    r = run(w, "listing")
    assert r["status"] == "ok" and r["stdout"] == b"OK %s\n" % ENTRY[w.rt].encode(), r
    assert slot_processes(w, settle_s=3.0) == []
    assert "zygote server is gone" not in w.log(), w.log()


def test_fork_bomb(zhw):
    r = run(zhw, "fork_bomb", {"wall_ms": 2000, "pids": 32})
    # contained: by the pids limit (exit, signal, ok), the wall limit, or
    # the memory limit (32 copies of an interpreter can outgrow 128 MiB)
    assert r["status"] in ("timeout", "ok", "exit", "signal", "memory"), r
    healthy(zhw)


def test_memory_hog(zhw):
    r = run(zhw, "memory_hog", {"memory_bytes": 64 << 20})
    assert r["stdout"] == b"" and r["status"] == "memory", r
    assert r["memory_bytes"] <= 64 << 20
    healthy(zhw)


def test_cpu_loop(zhw):
    r = run(zhw, "cpu_loop", {"cpu_ms": 500, "wall_ms": 30000})
    # the CPU limit ended it, not the wall limit
    assert r["status"] == "timeout" and r["cpu_ms"] >= 400 and r["wall_ms"] < 30000, r
    healthy(zhw)


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood(zhw, stream):
    r = run(zhw, "flood", {"output_bytes": 100000}, fmt=stream)
    assert r["status"] == "output", r
    assert r[stream] == b"A" * 100000 and r[stream + "_truncated"] is True
    healthy(zhw)


def test_network(zhw):
    r = run(zhw, "network", fmt={"port": zhw.port})
    # ECONNREFUSED from the namespace's own lo; ENETUNREACH outside it
    assert r["stdout"] == b"worker=111 outside=101\n", r
    healthy(zhw)


def test_no_persistence(zhw):
    fmt = {"paths": PLANTS[zhw.rt]}
    r = run(zhw, "plant", fmt=fmt)
    assert r["status"] == "ok", r
    r = run(zhw, "planted", fmt=fmt)
    assert r["status"] == "ok" and r["stdout"].count(b" false\n") == 4, r
    healthy(zhw)


def test_daemon_outliving_the_run(zhw):
    r = run(zhw, "daemon")
    assert r["status"] == "ok" and r["stdout"] == b"parent done\n", r
    healthy(zhw)  # includes: no process of the slot left


def test_kill_the_processor(zhw):
    r = run(zhw, "kill", fmt={"pid": zhw.proc.pid})
    assert zhw.alive(), zhw.log()
    assert r["status"] in ("ok", "signal"), r  # kill(-1) may take the program itself
    healthy(zhw)


def test_host_paths_hidden(zhw):
    """The fork server's child sees the sandbox's fixed paths as a cold
    run does (test_hostile.py's test_host_paths_hidden)."""
    r = run(zhw, "hostview")
    assert r["status"] == "exit", r
    assert ENTRY[zhw.rt].encode() in r["stderr"] and b"where am I" in r["stderr"], r
    check_host_view(zhw, r)
    healthy(zhw)
