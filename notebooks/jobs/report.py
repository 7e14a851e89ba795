"""A small offloaded job for the quickstart: it runs in a fresh worker process, reads its data, prints."""

import os
import random

from jobmanager_nb import worker

city = (worker.data or {}).get("city", "nowhere")
temperature = round(random.uniform(-5, 25), 1)
print(f"{city}: {temperature} °C (worker pid {os.getpid()})")
