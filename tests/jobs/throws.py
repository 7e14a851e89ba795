"""Ghost's throwing job: an uncaught exception fails the run."""


def fail():
    raise RuntimeError("job failed on purpose")


fail()
