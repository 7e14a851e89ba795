raise RuntimeError("script failure")
