"""Ghost's ``timed-job``: sleeps ``data["ms"]`` milliseconds (default 100), then reports done."""

import time

from jobmanager_nb import worker

time.sleep((worker.data or {}).get("ms", 100) / 1000)
worker.post_message("done")
