puts "about to fail"
$stdout.flush
$stderr.puts "something went wrong"
exit 3
