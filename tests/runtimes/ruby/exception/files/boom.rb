def parse(s)
  Integer(s)
end
puts "before"
$stdout.flush
parse("not a number")
