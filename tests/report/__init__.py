"""Unit tests of hie_notify/report: the figures, the HTML, the uptime budget, over a seeded
register.
"""
