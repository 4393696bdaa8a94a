puts "héllo wörld ✓ 日本語 🎉"
puts "encoding=#{Encoding.default_external}"
puts "chars=#{"日本語".length}"
