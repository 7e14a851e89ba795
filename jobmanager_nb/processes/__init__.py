"""The process machinery every executor runs jobs through: one fresh worker process per run.

Both executors use it: :class:`~jobmanager_nb.executors.local.ProcessExecutor` on this machine, and
:class:`~jobmanager_nb.executors.dask.DaskExecutor` on each Dask worker, where a supervising task runs the
job in such a process. One module per concern:

* :mod:`.wire`: the length-prefixed pickle frames both ends speak over a socket pair.
* :mod:`.child`: the entry point of a worker process (the start gate, running the target, ``done``,
  messages, the exit).
* :mod:`.output`: forwarding a worker's stdout and stderr to the parent, within a budget.
* :mod:`.zygote`: the fork server that starts workers in about a millisecond.
* :mod:`.launchers`: how a worker process is started (fork server, or a fresh interpreter).
* :mod:`.worker_process`: the parent's view of one worker process (its socket, pipes, send buffer).
* :mod:`.exits`: why a process ended, in words (exit codes, signals, the out-of-memory killer).

Importing this package imports nothing: a worker process pays only for the modules it uses.
"""
