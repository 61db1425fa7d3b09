"""What black-box tests share with the harness: the running stack, the
shared moonport process, and a way to start more processes.

run_tests.py fills these in before it runs the tests; a test module reads
them at setUp time (never at import time)."""
from __future__ import annotations

STACK = None        # stack.Stack: NATS, Postgres, Redis on free ports
MOONPORT = None     # moonport.Moonport: one instance with every role, shared by tests
BINARY = None       # path of the moonport binary under test


def new_moonport(**kw):
    """Starts another moonport against the same stack (stopped by the caller)."""
    from moonport import Moonport
    return Moonport(STACK, BINARY, **kw)
