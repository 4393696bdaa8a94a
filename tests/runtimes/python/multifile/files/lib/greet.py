def greet(name):
    return "Hello from lib, %s!" % name
