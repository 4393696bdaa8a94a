exports.greet = (name) => "Hello from lib, " + name + "!";
