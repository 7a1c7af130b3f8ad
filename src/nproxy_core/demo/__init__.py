"""Demo plugins for the embedded default: a local image provider and a payment processor.

They are real plugins, registered through the same entry points as any other, and production
refuses them unless ``nproxy.allow_demo`` is set.
"""
