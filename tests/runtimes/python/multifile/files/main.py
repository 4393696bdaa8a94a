from lib.greet import greet
import helper

print(greet("corral"))
print(helper.shout("same folder"))
