"""Builders, seam fakes and harnesses shared by the tests: the one test package other test
modules import."""
