# warm.rb — one prewarmed Ruby invocation (docs/runtimes.md, "warm").
#
# Started by warm.sh before any request exists, in the sandbox the request
# will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
# the handed-over entry as `ruby entry args...` would have: ARGV, $0 and
# the whole ENV replaced, the entry loaded at the top level (its __FILE__
# and $0 are its absolute path, so `if __FILE__ == $0` holds), uncaught
# exceptions reported by ruby itself (exit 1). RUBYOPT and the like are
# read at the warm start only. It serves one invocation.
#
# CorralWarm is also the fork server's (zygote.rb): its child, once in its
# sandbox, takes the invocation with prepare (or receive, prewarmed) and
# loads the entry at its own top level. `load` must be called at a top
# level, so that is the caller's line, not a method here.
module CorralWarm
  # "ready" on fd 3, then the handoff read to EOF: [entry, args, env].
  def self.receive
    sock = IO.for_fd(3, autoclose: true)
    begin
      sock.write("ready\n")
    rescue SystemCallError
      # nobody listens: the read below finds out
    end
    data = sock.read
    sock.close
    parse(data)
  end

  # The handoff's entry, args and environment (exits 125 when malformed).
  def self.parse(data)
    fields = data.b.split("\0", -1)
    if fields.length < 4 || fields[0] != "corral-warm 1" || fields[-1] != ""
      $stderr.write("corral warm.rb: malformed handoff\n")
      exit!(125)
    end
    nargs = Integer(fields[2], 10)
    utf8 = ->(s) { s.force_encoding(Encoding.default_external) }
    env = fields[3 + nargs...-1].to_h { |kv| kv.split("=", 2).map(&utf8) }
    [utf8.(fields[1]), fields[3, nargs].map(&utf8), env]
  end

  # ARGV, ENV and $0 the invocation's; returns the path to load.
  def self.prepare(entry, args, env)
    path = File.expand_path(entry)
    ARGV.replace(args)
    ENV.replace(env)
    $0 = path
    path
  end
end

if __FILE__ == $0
  load CorralWarm.prepare(*CorralWarm.receive)
end
