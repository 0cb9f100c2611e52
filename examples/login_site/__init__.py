"""A reference login site: password accounts of its own, and two-step verification through
twostep's Python client (``twostep_client.AsyncTwostepClient``) and nothing else.

Server-rendered (Starlette and Jinja2), every page works without JavaScript. Its users live in
a SQLite file; its sessions in a signed cookie; every form carries a CSRF token. Run it with
``python -m examples.login_site`` (``--help`` for the options) or ``twostep dev --example``.
"""
