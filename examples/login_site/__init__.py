"""A reference login site: password accounts of its own, and two-step verification through
twostep's Python client (``twostep_client.AsyncTwostepClient``) and nothing else.

Server-rendered (Starlette and Jinja2), every page works without JavaScript. Its users, their
sessions (the cookie holds only a random id) and their security notices live in a SQLite file;
every form carries a CSRF token. Run it with
``python -m examples.login_site`` (``--help`` for the options) or ``twostep dev --example``.
"""
