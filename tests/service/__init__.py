"""Unit tests of hie_notify/service: the server, the run-task and notification endpoints,
acknowledgement pages, the organisation service.
"""
