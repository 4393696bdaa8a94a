# zygote.rb — the ruby runtime's fork server (docs/runtimes.md, "zygote").
#
# One per worker, started by the proxy (proxy/zygote.c) through zygote.sh
# with fd 3 a SOCK_SEQPACKET socket to the worker. It starts the
# interpreter once, says "ready", then for each message it receives forks
# and goes back to waiting. It never parses an invocation: a message is 5
# bytes and fds, so nothing of one invocation is ever in the memory the
# next one's child starts from. It is runtimes/python/zygote.py in Ruby:
# the same wire protocol, the same two paths, the same steps; read that
# file's docstring for the why of each. In short:
#
# The message comes from the invocation's keeper (proxy/keeper.c) once the
# sandbox is built: header "Z" <has_bpf> <ncgroup> <has_warm> <nns> and
# the fds: the keeper's namespaces (nns of /proc/self/ns: [user], mnt,
# pid, net, ipc, uts), stdin, stdout, stderr, status (write end), spec
# (memfd), [seccomp BPF (memfd)], [cgroup.procs of each hierarchy], [the
# warm socket: the child becomes the run's fd 3 and waits there for the
# handoff as warm.rb does].
#
# - No user namespace (a root worker): the server joins the keeper's pid
#   namespace for one fork and goes back to its own at once (an fd of
#   /proc/self/ns/pid opened at start), so the run (C2) is its child; C2
#   joins the other namespaces itself. The server watches C2 through a
#   pidfd and reports its end.
# - A user namespace (a worker that is not root): a runner C1 joins all
#   the namespaces (that cannot be undone), forks C2, waits and reports.
#
# The report is the struct "=iiiiqq" of zygote.py (kind 0: ended with wait
# status a; kind 1: setup step a failed with errno b; cpu_us, maxrss_kb)
# on the job's status fd. C2 enters the sandbox in keeper.c's stage_main
# order before any user code: session, cgroups, rlimits, fds 0-2 (3) only,
# work dir, bounding set (a root server drops its own once at start),
# slot uid/gid, parent-death SIGKILL, no_new_privs, no capabilities,
# seccomp. A failed step goes to a pipe that the server (or C1) reads once
# C2 has ended.
#
# Then C2 leaves the server's code for good: it throws the job's spec to
# this file's top level, whose last lines load the entry as warm.rb does
# (`load` at a top level, uncaught exceptions and exit codes ruby's own).
# No `ensure` may lie on that way: it would run in C2 too. Past the
# `catch`, nothing of the server is on C2's stack: whatever the program
# does, it ends as ruby ends a script, never back in the server's loop.
#
# Everything at the fd level goes through raw fd numbers (Fiddle for the
# calls Ruby has no method for); the only IO objects are made with
# autoclose off, so no garbage collection ever closes an fd number that
# is by then another one's.
require "fiddle"
require "socket"
require_relative "warm"

module CorralZygote
  MAGIC = "corral-zygote 1".b
  CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
  PR_SET_PDEATHSIG, PR_SET_SECCOMP, PR_CAPBSET_DROP = 1, 22, 24
  PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 47, 4
  SECCOMP_MODE_FILTER = 2
  SYS_PIDFD_OPEN = 434 # x86_64 and aarch64 alike
  O_CLOEXEC, O_NONBLOCK, F_SETFL, F_DUPFD_CLOEXEC, POLLIN = 0o2000000, 0o4000, 4, 1030, 1
  STATUS = "l4q2" # "=iiiiqq": native order, no padding, 32 bytes
  # setup steps, as keeper.c numbers them (px_step_name)
  STEP_SETSID, STEP_CGROUP, STEP_RLIMIT, STEP_FDS, STEP_CHDIR = 1, 2, 3, 4, 5
  STEP_SETGROUPS, STEP_SETGID, STEP_SETUID, STEP_PRCTL, STEP_SANDBOX = 6, 7, 8, 9, 10
  EINVAL = 22

  # libc's calls Ruby has no method for, on raw fds; errno: Fiddle.last_error.
  module Libc
    LIB = Fiddle.dlopen(nil)
    I, L, P = Fiddle::TYPE_INT, Fiddle::TYPE_LONG, Fiddle::TYPE_VOIDP
    def self.fn(name, args, ret = I) = Fiddle::Function.new(LIB[name], args, ret)
    SETNS = fn("setns", [I, I])
    PRCTL = fn("prctl", [I, L, L, L, L])
    CAPSET = fn("capset", [P, P])
    UNSHARE = fn("unshare", [I])
    SYSCALL = fn("syscall", [L, L, L], L)
    WAIT4 = fn("wait4", [I, P, I, P])
    POLL = fn("poll", [P, L, I])
    PIPE2 = fn("pipe2", [P, I])
    FCNTL = fn("fcntl", [I, I, L])
    DUP2 = fn("dup2", [I, I])
    CLOSE = fn("close", [I])
    READ = fn("read", [I, P, L], L)
    WRITE = fn("write", [I, P, L], L)
    PREAD = fn("pread", [I, P, L, L], L)
    LSEEK = fn("lseek", [I, L, I], L)
  end

  class StepFailed < StandardError
    attr_reader :step, :err

    def initialize(step, err)
      super("setup step #{step}: errno #{err}")
      @step, @err = step, err
    end
  end

  @bounding_dropped = false # by the server itself (main), for all its children

  module_function

  def errno = Fiddle.last_error.nonzero? || 1

  def check(rc, step)
    raise StepFailed.new(step, errno) if rc < 0
  end

  def close(fd) = Libc::CLOSE.call(fd)

  def write(fd, bytes) = Libc::WRITE.call(fd, bytes, bytes.bytesize)

  # A memfd's whole content (the keeper wrote it and seeked back to 0).
  def read_all(fd)
    size = Libc::LSEEK.call(fd, 0, 2)
    raise ArgumentError, "spec: cannot size it" if size < 0
    buf = Fiddle::Pointer.malloc(size + 1, Fiddle::RUBY_FREE)
    raise ArgumentError, "short spec" if Libc::PREAD.call(fd, buf, size, 0) != size
    buf.to_s(size)
  end

  def parse_spec(data)
    head = data.split("\0", 9)
    raise ArgumentError, "malformed spec" if head.length != 9 || head[0] != MAGIC
    nsflags, userns, drop, uid, gid = head[1, 5].map { |x| Integer(x, 10) }
    nrl = Integer(head[7], 10)
    rest = head[8].split("\0", 3 * nrl + 1)
    rl = (0...nrl).map { |i| rest[3 * i, 3].map { |x| Integer(x, 10) } }
    handoff = rest[3 * nrl] || ""
    # no handoff: a prewarmed sandbox, it comes on fd 3
    entry, args, env = CorralWarm.parse(handoff) unless handoff.empty?
    { nsflags: nsflags, userns: userns, drop: drop, uid: uid, gid: gid,
      workdir: head[6], rlimits: rl, entry: entry, args: args, env: env }
  end

  def rlim(v) = v >= (1 << 63) ? Process::RLIM_INFINITY : v

  def drop_bounding
    64.times do |cap|
      next if Libc::PRCTL.call(PR_CAPBSET_DROP, cap, 0, 0, 0) >= 0 || errno == EINVAL
      raise StepFailed.new(STEP_SANDBOX, errno)
    end
    if Libc::PRCTL.call(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL
      raise StepFailed.new(STEP_SANDBOX, errno)
    end
  end

  # No capability left, then the seccomp filter (px_sandbox_lock).
  def lock(bpf)
    hdr = [0x20080522, 0].pack("Li")
    check(Libc::CAPSET.call(hdr, "\0" * 24), STEP_SANDBOX)
    return if bpf.nil?
    prog = [bpf.bytesize / 8, Fiddle::Pointer[bpf].to_i].pack("Sx6Q")
    check(Libc::PRCTL.call(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, Fiddle::Pointer[prog].to_i, 0, 0),
          STEP_SANDBOX)
  end

  def step(n)
    yield
  rescue SystemCallError => e
    raise StepFailed.new(n, e.errno)
  rescue ArgumentError, RangeError, TypeError
    raise StepFailed.new(n, EINVAL)
  end

  # Every fd but 0-2, the warm socket's 3 and failfd closed; ruby's own
  # (the eventfds it makes afresh in every forked child) stay, as in a
  # cold run.
  def close_others(failfd, warm)
    keep = [0, 1, 2, failfd] + (warm ? [3] : [])
    Dir.children("/proc/self/fd").map(&:to_i).each do |fd|
      next if keep.include?(fd)
      link = File.readlink("/proc/self/fd/#{fd}") rescue nil
      close(fd) unless link.nil? || link == "anon_inode:[eventfd]"
    end
  end

  # C2: the stage's sandbox, step by step as keeper.c's stage_main.
  def enter(spec, std, bpf, cgfds, failfd, warmfd)
    step(STEP_SETSID) { Process.setsid }
    cgfds.each { |fd| raise StepFailed.new(STEP_CGROUP, errno) if write(fd, "0") != 1 }
    spec[:rlimits].each do |res, cur, max|
      step(STEP_RLIMIT) { Process.setrlimit(res, rlim(cur), rlim(max)) }
    end
    step(STEP_FDS) do
      3.times { |i| check(Libc::DUP2.call(std[i], i), STEP_FDS) }
      check(Libc::DUP2.call(warmfd, 3), STEP_FDS) if warmfd
      close_others(failfd, warmfd)
    end
    step(STEP_CHDIR) { Dir.chdir(spec[:workdir]) }
    drop_bounding if spec[:drop] != 0 && !@bounding_dropped
    if spec[:uid] >= 0
      step(STEP_SETGROUPS) { Process.groups = [spec[:gid]] }
      step(STEP_SETGID) { Process::Sys.setresgid(spec[:gid], spec[:gid], spec[:gid]) }
      step(STEP_SETUID) { Process::Sys.setresuid(spec[:uid], spec[:uid], spec[:uid]) }
    end
    check(Libc::PRCTL.call(PR_SET_PDEATHSIG, 9, 0, 0, 0), STEP_PRCTL)
    check(Libc::PRCTL.call(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), STEP_PRCTL)
    lock(bpf)
  end

  def report(fd, kind, a, b, cpu_us = 0, maxrss = 0)
    write(fd, [kind, a, b, 0, cpu_us, maxrss].pack(STATUS)) # the keeper gone: nothing to do
  end

  # The job's fds by name (see the top of this file).
  def unpack(hdr, all)
    has_bpf, ncg, has_warm, nns = hdr.bytes[1, 4]
    fds = all[nns..]
    cg = 5 + has_bpf
    { ns: all[0, nns], std: fds[0, 3], status: fds[3], spec: fds[4],
      bpf: has_bpf == 1 ? fds[5] : nil, cgroups: fds[cg, ncg],
      warm: has_warm == 1 ? fds[cg + ncg] : nil }
  end

  # C2: joins nsfds, enters the sandbox, then throws the spec to the top
  # level (see above). A setup step that fails is written to failw.
  def stage(job, failw, nsfds)
    begin
      spec = parse_spec(read_all(job[:spec]))
      bpf = job[:bpf] && read_all(job[:bpf])
      nsfds.each { |fd| check(Libc::SETNS.call(fd, 0), STEP_SANDBOX) }
      if job[:warm] && failw == 3 # 3 is the warm socket's place
        dup = Libc::FCNTL.call(failw, F_DUPFD_CLOEXEC, 4)
        check(dup, STEP_FDS)
        failw = dup
      end
      enter(spec, job[:std], bpf, job[:cgroups], failw, job[:warm])
    rescue StepFailed => e
      write(failw, [e.step, e.err].pack("l2"))
      exit!(127)
    rescue Exception # anything else: reported, and nothing of ours runs on
      write(failw, [STEP_SANDBOX, EINVAL].pack("l2"))
      exit!(127)
    end
    close(failw)
    throw :corral_run, spec
  end

  # [read end, write end], both close-on-exec.
  def pipe
    buf = "\0" * 8
    raise SystemCallError.new("pipe2", errno) if Libc::PIPE2.call(buf, O_CLOEXEC) < 0
    buf.unpack("l2")
  end

  # wait4: [raw wait status, cpu_us, maxrss_kb].
  def wait(pid)
    st = "\0" * 4
    ru = "\0" * 144 # struct rusage: utime, stime (timevals), maxrss, ...
    loop do
      rc = Libc::WAIT4.call(pid, st, 0, ru)
      break if rc >= 0
      raise SystemCallError.new("wait4", errno) if errno != 4 # EINTR
    end
    us, uu, ss, su, maxrss = ru.unpack("q5")
    [st.unpack1("l"), (us + ss) * 1_000_000 + uu + su, maxrss]
  end

  # Reports C2's end (or the setup step it failed at) to the keeper.
  def ended(status, failr, st, cpu, maxrss)
    buf = "\0" * 8
    if Libc::READ.call(failr, buf, 8) == 8 # (non-blocking: nothing there is a run)
      report(status, 1, *buf.unpack("l2"), cpu, maxrss)
    else
      report(status, 0, st, 0, cpu, maxrss)
    end
  end

  # C1, when the job has a user namespace: joins all the namespaces, forks
  # C2 (there: in the pid namespace), reports its end. Never returns but
  # as C2, through stage's throw.
  def runner(job, all)
    job[:ns].each do |fd|
      next if Libc::SETNS.call(fd, 0) >= 0
      report(job[:status], 1, STEP_SANDBOX, errno)
      exit!(0)
    end
    failr, failw = pipe
    pid = Process.fork
    if pid.nil?
      close(failr)
      close(job[:status])
      stage(job, failw, [])
    end
    close(failw)
    all.each { |fd| close(fd) unless fd == job[:status] }
    st, cpu, maxrss = wait(pid)
    ended(job[:status], failr, st, cpu, maxrss)
    exit!(0)
  rescue SystemCallError => e # e.g. fork or pipe failed
    report(job[:status], 1, STEP_SANDBOX, e.errno)
    exit!(0)
  end

  # The fork server's loop: jobs on the socket, children through pidfds.
  # Only headers, fds and pids are ever in its memory.
  class Server
    def initialize(sock)
      @sock = sock
      @direct = Process.euid == 0 # may join a pid namespace and come back
      @own_pidns = IO.sysopen("/proc/self/ns/pid", File::RDONLY) # (close-on-exec: ruby opens so)
      @children = {} # pidfd -> [pid, status fd or nil, fail pipe or nil]
    end

    def serve
      loop do
        ready.each do |fd|
          if fd == @sock.fileno
            return unless receive # the worker is gone
          else
            reap(fd)
          end
        end
      end
    end

    # The fds poll() finds readable (the socket, ended children's pidfds).
    def ready
      fds = [@sock.fileno] + @children.keys
      buf = fds.map { |fd| [fd, POLLIN, 0] }.flatten.pack("ls2" * fds.size)
      n = Libc::POLL.call(buf, fds.size, -1)
      return [] if n < 0 && CorralZygote.errno == 4 # EINTR
      raise SystemCallError.new("poll", CorralZygote.errno) if n < 0
      buf.unpack("ls2" * fds.size).each_slice(3).select { |_, _, rev| rev != 0 }.map(&:first)
    end

    # One job: forks for it; closes its fds but those still ours.
    def receive
      begin
        msg, _, _, *ctl = @sock.recvmsg(16, Socket::MSG_DONTWAIT, 32 * 4 + 64, scm_rights: true)
      rescue IO::WaitReadable
        return true
      end
      return false if msg.nil? || msg.empty?
      fds = unix_fds(ctl)
      keep = []
      if msg.bytesize == 5 && msg[0] == "Z" && fds.size == 5 + msg.bytes[1, 4].sum
        job = CorralZygote.unpack(msg, fds)
        if @direct && job[:ns].size == 5
          keep = start(job)
        else
          start_runner(job, fds)
        end
      else
        $stderr.write("corral zygote.rb: malformed job (#{msg.bytesize} bytes, #{fds.size} fds)\n")
      end
      fds.each { |fd| CorralZygote.close(fd) unless keep.include?(fd) }
      true
    end

    # The fds of the SCM_RIGHTS messages, as numbers: their IO objects
    # never close them.
    def unix_fds(ctl)
      ctl.select { |c| c.cmsg_is?(:SOCKET, :RIGHTS) }.flat_map(&:unix_rights).map do |io|
        io.autoclose = false
        io.fileno
      end
    end

    # C2 as our own child, forked in the keeper's pid namespace (job ns:
    # mnt, pid, net, ipc, uts). Returns the fds kept.
    def start(job)
      mnt, pidns, *rest = job[:ns]
      if Libc::SETNS.call(pidns, CLONE_NEWPID) < 0
        CorralZygote.report(job[:status], 1, STEP_SANDBOX, CorralZygote.errno)
        return []
      end
      failr, failw = CorralZygote.pipe
      pid = begin
        spawn_child { CorralZygote.stage(job, failw, [mnt] + rest) }
      rescue SystemCallError => e # e.g. the keeper, the namespace's init, is gone
        CorralZygote.report(job[:status], 1, STEP_SANDBOX, e.errno)
        nil
      end
      back_home
      CorralZygote.close(failw)
      if pid.nil?
        CorralZygote.close(failr)
        return []
      end
      Libc::FCNTL.call(failr, F_SETFL, O_NONBLOCK)
      watch(pid, job[:status], failr)
      [job[:status]]
    rescue SystemCallError => e # pipe
      back_home
      CorralZygote.report(job[:status], 1, STEP_SANDBOX, e.errno)
      []
    end

    # Our own pid namespace again for the next fork, or the next child
    # would be in this run's.
    def back_home
      return if Libc::SETNS.call(@own_pidns, CLONE_NEWPID) >= 0
      $stderr.write("corral zygote.rb: cannot go back to its own pid namespace\n")
      exit!(1)
    end

    def start_runner(job, fds)
      watch(spawn_child { CorralZygote.runner(job, fds) }, nil, nil)
    rescue SystemCallError => e
      CorralZygote.report(job[:status], 1, STEP_SANDBOX, e.errno)
    end

    # Forks; the child, holding none of the server's own fds (the
    # socket, the other children's), runs the block, which never returns
    # (it exits, or throws to the top level).
    def spawn_child
      pid = Process.fork
      return pid unless pid.nil?
      ours = [@sock.fileno, @own_pidns] + @children.flat_map { |pidfd, (_, st, fr)| [pidfd, st, fr] }
      ours.compact.each { |fd| CorralZygote.close(fd) }
      yield
      exit!(127)
    end

    # Watches our child pid through a pidfd; without one (EMFILE...),
    # ends it and reports that.
    def watch(pid, status, failr)
      pidfd = Libc::SYSCALL.call(SYS_PIDFD_OPEN, pid, 0)
      return @children[pidfd] = [pid, status, failr] if pidfd >= 0
      err = CorralZygote.errno
      Process.kill(:KILL, pid)
      CorralZygote.wait(pid)
      return if status.nil?
      CorralZygote.report(status, 1, STEP_SANDBOX, err)
      CorralZygote.close(status)
      CorralZygote.close(failr)
    end

    def reap(pidfd)
      pid, status, failr = @children.delete(pidfd)
      CorralZygote.close(pidfd)
      st, cpu, maxrss = CorralZygote.wait(pid)
      return if status.nil?
      CorralZygote.ended(status, failr, st, cpu, maxrss)
      CorralZygote.close(status)
      CorralZygote.close(failr)
    end
  end

  def main
    sock = Socket.for_fd(3)
    sock.autoclose = false
    if Process.euid == 0
      Libc::UNSHARE.call(CLONE_NEWNET) # the server needs no network; best effort
      begin
        drop_bounding # once, for every child: they inherit it
        @bounding_dropped = true
      rescue StepFailed
        # each child drops it then
      end
    end
    sock.sendmsg("ready")
    Server.new(sock).serve
  end
end

# The server until the worker is gone; in a child, the run (see the top).
spec = catch(:corral_run) do
  CorralZygote.main
  exit!(0)
end
path = CorralWarm.prepare(*(spec[:entry] ? spec.values_at(:entry, :args, :env) : CorralWarm.receive))
begin
  load path
rescue Exception => e # everything: SystemExit and signals too, re-raised as they are
  CorralWarm.uncaught(e, path, __FILE__)
  raise
end
