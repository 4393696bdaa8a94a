# DATA: the text after __END__, as ruby gives it to a main script (an
# __END__ inside a heredoc is not the end).
text = <<~TEXT
  __END__
TEXT
puts "heredoc: #{text.inspect}"
puts "lineno: #{DATA.lineno}"
print DATA.read
__END__
first line of data
second line
