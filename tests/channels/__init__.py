"""Unit tests of hie_notify/channels: each channel's adapter over its API's fake."""
