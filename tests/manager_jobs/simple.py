from jobmanager_nb import worker

worker.post_message("done")
