data = $stdin.binmode.read
$stdout.binmode.write(data)
$stderr.puts "bytes: #{data.bytesize}"
