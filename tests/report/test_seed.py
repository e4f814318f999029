"""A seeded register with known answers: 12 weeks of changes (5 October to 26 December 2026)
built from seven weekly cohorts, plus two one-off changes, 206 in all. Every expected figure in
tests/report/test_compute.py is worked out by hand from the cohorts described here, not by the code.

Per week k (Monday M = 2026-10-05 + 7k; times UTC):
- A x5 planned_infra_update, not service-impacting: told Mon 10:00 for Thu 10:00-11:00 (72 h:
  recommended for its 3 Slack channels), done.
- B x4 planned_infra_update, service-impacting, EoE, downtime 15m: told Mon 10:00 for Thu
  20:00-22:00 (82 h internally: recommended; EoE 3 business days: minimum, margin 0); apply
  20:10-20:20 (10 min), done. Post-mortem owed (significant): #0 closed, #1 opened, #2-3 never.
- C x2 same type, CUH, downtime 30m: told Wed 10:00 for Thu 20:00 (34 h: minimum; CUH 1
  business day: short by 2); went ahead anyway (a manual override); apply 20:00-20:20.
  Post-mortem owed, never opened.
- D x1 emergency_fix, MKUH, downtime 20m: told Tue 13:50 for 14:00-15:00; apply 14:00, failed
  14:10, rolled back 14:12-14:40 (40 min). Post-mortem owed (always) and closed.
- E x2 scheduled_maintenance (all four customers), downtime 20m: told the Monday before at
  10:00 for Sat 08:00-10:00 (286 h: recommended; 9 business days, 8 in the Christmas week:
  minimum); apply 08:00-08:15 (15 min), done. Post-mortem owed (the policy asks one of a
  significant maintenance: service-impacting), never opened.
- F x2 application_update, not impacting: told Tue 10:00 for Thu 12:00-13:00 (50 h:
  recommended; business stakeholders 0 business days: recommended); #0 done, #1 cancelled
  (Wed 10:00).
- G x1 cost_optimization, not impacting: told Thu 11:00 for Fri 11:00-12:00 through the outbox
  only (a trial: nobody was told); the apply failed. Post-mortem owed, never opened.
One-offs:
- H1 planned_infra_update, NNUH, high risk, downtime 2h: told Tue 10 Nov 10:00 for Tue 17 Nov
  22:00 to Wed 04:00 (5 business days: recommended); apply 22:00, failed 23:00, rollback
  23:05 to 03:30 (330 min). Post-mortem opened, not closed.
- H2 planned_infra_update, NNUH, downtime 1h: told Mon 19 Oct 10:00 for Sat 31 Oct 23:00 to
  Sun 02:00 (9 business days: recommended); apply 23:30 to 00:30: 30 min in October and 30 in
  November. Post-mortem closed.
"""

from __future__ import annotations

from tests.support.report_seed import (
    seeds,
)


def test_the_seed_has_about_200_changes_over_three_months() -> None:
    items = seeds()
    assert len(items) == 206
    assert len({s.change_id for s in items}) == 206
    assert min(s.start for s in items).month == 10 and max(s.start for s in items).month == 12
