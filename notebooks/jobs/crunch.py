"""A CPU-heavy job for the scale-out notebook: counts the primes below ``n`` with a plain sieve, and says
where it ran (the host and process: a Dask worker's child process when it runs there)."""

import os
import socket

from jobmanager_nb import worker

n = (worker.data or {}).get("n", 20_000_000)
sieve = bytearray([1]) * n
sieve[:2] = b"\0\0"
for i in range(2, int(n**0.5) + 1):
    if sieve[i]:
        sieve[i * i :: i] = bytes(len(range(i * i, n, i)))
print(f"{sum(sieve):,} primes below {n:,} (host {socket.gethostname()}, pid {os.getpid()})")
