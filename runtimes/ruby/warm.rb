# warm.rb — one prewarmed Ruby invocation (docs/runtimes.md, "warm").
#
# Started by warm.sh before any request exists, in the sandbox the request
# will get. It says "ready" on fd 3, blocks reading fd 3 to EOF, then runs
# the handed-over entry as `ruby entry args...` would have: ARGV, $0 and
# the whole ENV replaced, the entry loaded at the top level (its __FILE__
# and $0 are its absolute path, so `if __FILE__ == $0` holds; DATA defined
# as for a main script), uncaught exceptions reported by ruby itself
# (exit 1) once `uncaught` has made their backtrace a main script's.
# RUBYOPT and the like are read at the warm start only. It serves one
# invocation.
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

  # ARGV, ENV, $0 (and DATA) the invocation's; returns the path to load.
  def self.prepare(entry, args, env)
    path = File.expand_path(entry)
    ARGV.replace(args)
    ENV.replace(env)
    $0 = path
    define_data(path)
    path
  end

  # DATA, which ruby defines for a main script with __END__ and `load`
  # does not: the script's file, open just past that line (pos and lineno
  # as ruby leaves them). Ripper finds __END__ as the parser does (not in
  # a string or heredoc); it is required only when the text is there.
  def self.define_data(path)
    src = File.binread(path)
    return unless src.include?("__END__")
    require "ripper"
    (line, _), _, tok = Ripper.lex(src).find { |_, type, _| type == :on___end__ }
    return if line.nil?
    data = File.open(path)
    data.seek(src.lines[0, line - 1].sum(&:bytesize) + tok.bytesize)
    data.lineno = line
    Object.const_set(:DATA, data)
  rescue SystemCallError, IOError
    # unreadable: load reports it
  end

  # An exception that ends the entry, before ruby reports it: its
  # backtrace (and its causes') as `ruby entry` prints it, without our
  # frames (`load` and `<main>` of the file in `ours`) and with the
  # entry's top level named `<main>`, not `<top (required)>`. A syntax
  # error of the entry itself is printed as ruby prints it, the message
  # only, and ends the run with 1.
  def self.uncaught(e, path, ours)
    return if e.is_a?(SystemExit)
    begin
      seen = {}
      x = e
      while x.is_a?(Exception) && !seen[x.__id__]
        seen[x.__id__] = true
        bt = x.backtrace
        if bt.is_a?(Array)
          x.set_backtrace(bt.reject { |l| l.to_s.start_with?("#{ours}:") }.map do |l|
            l.to_s.start_with?("#{path}:") ? l.to_s.sub(/<top \(required\)>'\z/, "<main>'") : l
          end)
        end
        x = x.cause
      end
    rescue Exception
      # the program's own backtrace or cause raised, or it froze the
      # exception: ruby reports it as it is
      return
    end
    return unless e.is_a?(SyntaxError) && e.backtrace&.empty?
    $stderr.write(e.message.end_with?("\n") ? e.message : "#{e.message}\n")
    exit(1)
  end
end

# The entry at the top level, as warm.rb's caller (see above).
if __FILE__ == $0
  path = CorralWarm.prepare(*CorralWarm.receive)
  begin
    load path
  rescue Exception => e # everything: SystemExit and signals too, re-raised as they are
    CorralWarm.uncaught(e, path, __FILE__)
    raise
  end
end
