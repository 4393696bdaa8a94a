def parse(text):
    return int(text)


print("before")
parse("not a number")
print("never printed")
