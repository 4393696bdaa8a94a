# warm.rb — one prewarmed Ruby invocation (docs/runtimes.md, "warm").
#
# Started by warm.sh before any request exists, in the sandbox the request
# will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
# the handed-over entry as `ruby entry args...` would have: ARGV, $0 and
# the whole ENV replaced, the entry loaded at the top level (its __FILE__
# and $0 are its absolute path, so `if __FILE__ == $0` holds), uncaught
# exceptions reported by ruby itself (exit 1). RUBYOPT and the like are
# read at the warm start only. It serves one invocation.
sock = IO.for_fd(3, autoclose: true)
begin
  sock.write("ready\n")
rescue SystemCallError
  # nobody listens: the read below finds out
end
fields = sock.read.split("\0", -1)
sock.close
if fields.length < 4 || fields[0] != "corral-warm 1" || fields[-1] != ""
  $stderr.write("corral warm.rb: malformed handoff\n")
  exit!(125)
end
nargs = Integer(fields[2], 10)
entry = File.expand_path(fields[1])
ARGV.replace(fields[3, nargs])
ENV.replace(fields[3 + nargs...-1].to_h { |kv| kv.split("=", 2) })
$0 = entry
fields = sock = nargs = nil
load entry
