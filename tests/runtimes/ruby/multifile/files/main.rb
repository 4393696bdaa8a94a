require_relative "lib/greet"
require_relative "helper"

puts greet("corral")
puts shout("same folder")
