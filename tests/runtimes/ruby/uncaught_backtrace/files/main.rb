# An uncaught exception (with a cause) ends the program: at_exit runs,
# then ruby prints both backtraces, down to the script's `<main>`.
def parse(text)
  Integer(text)
rescue ArgumentError
  raise KeyError, "no number in #{text.inspect}"
end

at_exit { puts "at_exit sees #{$!.class}" }
puts "before"
parse("abc")
