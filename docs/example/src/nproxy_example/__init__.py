"""An example nproxy plugin package: the Example image provider and Example Pay.

Both talk HTTP to the Example API; :mod:`nproxy_example.server` is a local stand-in for it
(``python -m nproxy_example.server``), for tests and for trying the plugins out.
"""
