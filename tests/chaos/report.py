"""What one chaos row saw, judged, and the table docs/reliability.md keeps.

A row is one fault under load. What the clients were answered is sorted
into outcomes (2xx, 4xx, 5xx, errors: no status at all), and each failed
request is held against what the row allows (`allowed(answer)`): whatever
fails outside that is unexpected and fails the row. A failure is a 5xx, a
broken connection or a 4xx, except the 409 "in progress" an order's retry
gets while the key's first attempt still runs (the client waits and asks
again, as load.py does).

write_docs() puts the rows between the markers in docs/reliability.md.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from load import Answer, Tally

BEGIN, END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
KINDS = ("order", "read", "home")


def is_failure(a: Answer) -> bool:
    return a.failed or (a.status >= 400 and not (a.what == "order" and a.status == 409))


@dataclass
class Row:
    name: str  # the fault, as the table names it
    allows: str  # what the row lets fail, in words
    tally: Tally
    fault: float  # time.monotonic() of the fault
    over: float  # when it ended: the node resumed or restarted, the server back, the replacement ready
    allowed: object  # Answer -> bool: may this failure happen?
    ledger: list[str] = field(default_factory=list)  # what does not hold in the ledger after recovery
    summary: dict = field(default_factory=dict)  # the ledger's counts
    trouble: list[str] = field(default_factory=list)  # crashes, bad exits, client problems
    notes: str = ""

    @property
    def failures(self) -> list[Answer]:
        return [a for a in self.tally.answers if is_failure(a)]

    @property
    def unexpected(self) -> list[Answer]:
        return [a for a in self.failures if not self.allowed(a)]

    @property
    def passed(self) -> bool:
        return not self.unexpected and not self.ledger and not self.trouble and not self.tally.problems

    def first_success_ms(self, what: str) -> float | None:
        """Milliseconds from the fault to the end of the first request of kind `what` sent after it and answered
        well, or None."""
        ends = [a.end for a in self.tally.answers if a.what == what and a.start >= self.fault and not is_failure(a)]
        return 1000 * (min(ends) - self.fault) if ends else None

    def describe_failures(self, answers: list[Answer] | None = None) -> str:
        """"order 504 x2, read error x1 (sent -0.120 to +0.010 s from the fault)"."""
        answers = self.failures if answers is None else answers
        if not answers:
            return "none"
        kinds = Counter((a.what, a.outcome if a.status == 0 else str(a.status)) for a in answers)
        sent = sorted(a.start - self.fault for a in answers)
        when = f"{sent[0]:+.3f}" if len(sent) == 1 else f"{sent[0]:+.3f} to {sent[-1]:+.3f}"
        return ", ".join(f"{w} {s} x{n}" for (w, s), n in sorted(kinds.items())) + f" (sent {when} s from the fault)"

    def line(self) -> str:
        """The row as one line of the test's output."""
        first = " / ".join(_ms(self.first_success_ms(k)) for k in KINDS)
        return (f"chaos row: {self.name}: {'passed' if self.passed else 'FAILED'}; outcomes {self.tally.outcomes()}; "
                f"first success after the fault (order/read/home) {first} ms; failed: {self.describe_failures()}; "
                f"unexpected: {self.describe_failures(self.unexpected) if self.unexpected else 'none'}; ledger "
                f"{self.summary} {'holds' if not self.ledger else self.ledger}; trouble {self.trouble}; "
                f"problems {self.tally.problems[:3]}; {self.notes}"
                + "".join(f"\n  failed: {a.what} {a.status} sent {a.start - self.fault:+.3f} s, answered "
                          f"{a.end - self.fault:+.3f} s: {a.detail}" for a in self.failures[:10]))


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def table(rows: list[Row], preamble: str) -> str:
    head = ("| fault | allowed to fail | requests | 2xx | 4xx | 5xx | errors | first success after the fault, ms "
            "(order / read / home) | what failed | ledger after recovery | result |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        o = r.tally.outcomes()
        ledger = "holds" if not r.ledger else "; ".join(r.ledger)
        s = r.summary
        if s:
            ledger += f" ({s['orders']} orders so far: {s['confirmed']} confirmed, {s['cancelled']} cancelled)"
        what = r.describe_failures() + (f"; {r.notes}" if r.notes else "")
        body += (f"| {r.name} | {r.allows} | {len(r.tally.answers)} | {o['2xx']} | {o['4xx']} | {o['5xx']} | "
                 f"{o['error']} | {' / '.join(_ms(r.first_success_ms(k)) for k in KINDS)} | {what} | {ledger} | "
                 f"{'passed' if r.passed else 'FAILED'} |\n")
    return f"{preamble}\n\n{head}{body}"


def write_docs(path: str, text: str) -> None:
    """Replaces what is between the chaos markers in `path` with `text`."""
    with open(path) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        raise AssertionError(f"{path} has no {BEGIN} ... {END} markers")
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(path + ".tmp", "w") as f:
        f.write(f"{head}{BEGIN}\n{text.strip()}\n{END}{tail}")
    os.replace(path + ".tmp", path)
