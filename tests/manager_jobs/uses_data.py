from jobmanager_nb import worker

print("data is", worker.data)
