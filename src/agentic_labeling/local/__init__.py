"""Processes and addresses on this machine: the one home for local process control.

- `processes`: is a process alive, and still the one we started (one PID-reuse guard: its start
  time); stop one (SIGTERM, a grace, SIGKILL) by pid or as our child, reaping it.
- `addresses`: `host:port` strings, where a client reaches a server bound to a host, free ports.
- `launcher`: the one launcher of `alabel serve registry|orchestrator` processes, used by
  `alabel up`, the tests' fixtures, the benchmarks and the demo.

It imports nothing of `servers/`, `registry/` or `cli/`; they (and `triton_server`) import it.
"""
