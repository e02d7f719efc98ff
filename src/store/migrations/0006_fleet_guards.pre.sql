-- Keyed reconcilers apply decisions guarded by the rows they decided from (DESIGN.md §3, §8.9):
-- at most one open replacement (migration in flight) per instance, whoever starts it — a drain
-- pass, a manual migrate, a pass decided on a stale snapshot. A replacement stops being open
-- when it takes over (published, replaces = NULL) or is stopped (replaces = NULL).
CREATE UNIQUE INDEX IF NOT EXISTS instances_one_open_replacement ON instances (replaces) WHERE replaces IS NOT NULL;
