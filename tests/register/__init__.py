"""Unit tests of hie_notify/register's store: both backends, conflicts, the shared register."""
