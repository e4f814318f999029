"""Tests of hie_notify/commands: one command each, run through the command line."""
