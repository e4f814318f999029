"""The change register: one record per change (its change record, classification, status,
window, audiences and ledger entries), kept in SQLite (the embedded default) or as GitLab issues.

`model` and `feed` are pure; `store` opens a backend (`sqlite`, `gitlab`).
"""
