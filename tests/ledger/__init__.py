"""Unit tests of hie_notify/ledger: the file and GitLab ledgers."""
