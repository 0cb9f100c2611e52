"""Abuse protection: limits shared by every process, counted in Redis, failing closed.

Every key is of one tenant and names people only by keyed hashes (``shared.kit.lookups``): a Redis
dump holds no phone number, user id or IP address. The one exception is the deployment-wide
daily cap, which is the operator's and counts every tenant's sends.

Ports (``ports.py``) and their Redis adapters, each decision one atomic Lua call on Redis's
own clock (so the processes' clocks do not matter, and a decision costs one round trip):

- ``SendLimits`` — before anything is enqueued, a send must pass every limit: per destination,
  per user, per client IP (IPv6 per /64), per API key per minute and per day, per destination
  country per day, the whole deployment per day, and a cooldown per verification. Short limits
  are moving windows (a list of the latest send times, as the ``limits`` library keeps them;
  its ``parse`` reads our settings); daily caps are counters over a day's window. All limits
  are tested before any is counted, in one script: a request refused by one limit uses up none
  of the others, and two racing requests cannot both slip under a limit.
- ``Lockout`` — wrong codes count against whoever guesses: the user the verification was
  started for; for a verification started without a user, its number and the client address
  that asked for it. They never count against anybody else, so nobody can lock another user
  out by guessing on a verification of their own to that user's number. Each step of failures
  locks for a growing wait (Keycloak's brute force detection: wait increment, maximum wait,
  failure reset), and ``lockout_hard_failures`` *consecutive* failures — forgotten only at a
  right code, never by time (NIST SP 800-63B 5.2.2) — lock for good, until an admin key
  releases them. A check *reserves* its failure when it is accepted, in the same script that
  tests the lock, so parallel checks can never run past the lockout; the worker settles the
  reservation with the provider's answer. A locked user's new verification is refused before
  anything is sent.
- ``ProviderGate`` — every provider call of every worker enters through it: one GCRA bucket
  caps the fleet's rate (the account's limit) and a set of leased slots caps how many calls are
  in flight at once (Twilio answers 20429 past its concurrency). A slot a dead worker held
  frees itself when its lease runs out.
- ``ActionLimit`` — a plain count per user of an action that must stay rare (new sets of
  recovery codes).

If Redis cannot be reached every one of them raises ``ServiceUnavailable``: no limit is ever
skipped.
"""
