"""The candidate side of the trust boundary: everything the sandbox server process imports.

`python -m evoforge.evaluators.inside.server` runs inside the sandbox: `server` (the fork server), `watch` (one
candidate's clocks, memory and processes), `jit_compile` and `numba_semantics` (numba: compiled harnesses and
candidates), `procs` (process utilities), `fork` (fork(2) without Python's at-fork callbacks), `harness` (the
candidate's own process) and `seccomp`. None of them imports the engine side (`evaluators.sandbox`, `isolation`,
`scoring`, `cpus`, `evoforge.engine`), and the engine side imports none of them: the two sides share
only the problem layer (`problem_api`, `problem`, `loader`, which load the user's trusted problem file on both
sides), the frame format (`wire`) and the folder cleanup (`cleanup`). tests/test_layout.py checks this.
"""
