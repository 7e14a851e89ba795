"""Ghost's ``graceful`` job: works in small steps, and on "cancel" stops cleanly and says "cancelled"."""

from jobmanager_nb import worker

worker.post_message("working")
for _ in range(3000):  # at most ~30 s
    if worker.cancelled.wait(0.01):
        print("cleaning up after cancel")
        worker.post_message("cancelled")
        raise SystemExit(0)
worker.post_message("done")
