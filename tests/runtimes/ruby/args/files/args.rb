puts "argv0=#{File.basename($0)}"
puts "argc=#{ARGV.length}"
ARGV.each { |a| puts "[#{a}]" }
puts "main=#{__FILE__ == $0}"
