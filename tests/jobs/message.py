"""Ghost's ``message`` job: answers the first message from the parent, then reports done."""

import threading

from jobmanager_nb import worker

answered = threading.Event()


@worker.on_message
def answer(message):
    if message == "cancel":
        worker.post_message("cancelled")
    else:
        worker.post_message(f"Worker received: {message}")
        worker.post_message("done")
    answered.set()


worker.post_message("ready")
answered.wait(30)
