def shout(s) = s.upcase + "!"
