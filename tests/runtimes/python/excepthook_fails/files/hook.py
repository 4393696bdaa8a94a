import sys
def hook(*a):
    raise RuntimeError("hook fails")
sys.excepthook = hook
raise ValueError("boom")
