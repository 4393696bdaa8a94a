greet() { echo "Hello from lib, $1!"; }
