"""Writes to every kind of output a job can: print, stderr, raw fd 1, and a child process."""

import os
import subprocess
import sys

print("line from print")
print("line from stderr", file=sys.stderr)
os.write(1, b"line from os.write\n")
subprocess.run(["echo", "line from echo"], check=True)
print("last line")
