def greet(name) = "Hello from lib, #{name}!"
