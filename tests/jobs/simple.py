"""Ghost's ``simple`` job: does nothing but report that it is done."""

from jobmanager_nb import worker

worker.post_message("done")
