-- A rollout with `drain.mode: restart` drains a node in place: its instances are withdrawn and
-- stopped there (kept for the same node, restart_on_enable) instead of moving elsewhere, and start
-- again on that node after the install. Existing drains (and every drain a person starts) move.
ALTER TABLE drains ADD COLUMN mode text NOT NULL DEFAULT 'migrate' CHECK (mode IN ('migrate', 'restart'));

-- After a done install the agent removes old version directories of the component and reports
-- which (node.components_pruned records each new list once).
ALTER TABLE node_installs ADD COLUMN pruned jsonb NOT NULL DEFAULT '[]';
