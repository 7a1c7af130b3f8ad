"""The web admin's pages and actions, one module per section of its navigation (DESIGN 4.7);
what they share is in :mod:`nproxy_core.admin.page`."""
