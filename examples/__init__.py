"""Examples of twostep in use. Not installed with twostep: they run from a clone of the
repository (``python -m examples.login_site``, or ``twostep dev --example``)."""
