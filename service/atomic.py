"""What the invalidation and fill strategies need of a cache server beyond get, set and
delete, done atomically on the server: a lock (CACHE_FILL=lock: one filler per key) and a
lease (CACHE_INVALIDATION=lease: a fill stored only if no write came since its miss).

Redis does both with a command and two scripts, memcached with add, gets and cas; SimpleCache
takes a lock under its own, in its process. cachelib's FileSystemCache has no atomic step to
build either on (its add checks, then writes), so neither applies to it. Each works on the
Flask-Caching backend object, under the service's key prefix, on values in its JSON format;
cachelib keeps the client and the prefix in private attributes, read here as they are.
"""

import logging
import math
import secrets
from typing import Any

from service.cache_format import UndecodableEntry

log = logging.getLogger(__name__)


class AddLock:
    """A lock taken by adding a key that expires: memcached's add, or SimpleCache's, which
    holds its own lock meanwhile and so gives one filler per process."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def take(self, key: str, lifetime_ms: int) -> bool:
        return bool(self.backend.add(key, 1, timeout=math.ceil(lifetime_ms / 1000)))

    def release(self, key: str) -> None:
        # Whoever holds it now: a holder that outlived its lock frees the next holder's, and
        # at worst one more request fills the key.
        self.backend.delete(key)


class RedisLock(AddLock):
    """SET NX PX, one command: cachelib's add sets the key, then its expiry, and a worker
    killed in between would leave a lock that never expires."""

    def take(self, key: str, lifetime_ms: int) -> bool:
        name = self.backend._get_prefix() + key
        return bool(self.backend._write_client.set(name, b"1", nx=True, px=lifetime_ms))


LOCKS = {"simple": AddLock, "memcached": AddLock, "redis": RedisLock}


def lease_token() -> dict:
    """A lease, as the key holds it until the fill replaces it: plain data, in the JSON of
    every entry, and unlike any of them (a view's answer is a tuple or an HTTP error)."""
    return {"lease": secrets.token_hex(8)}


def is_lease(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.keys() == {"lease"}


# The key's entry, or else the caller's lease, set in the same step so that no one else
# gets the key's lease meanwhile.
READ_OR_LEASE = """
local entry = redis.call('GET', KEYS[1])
if entry then return entry end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# The fill, stored only if the key still holds what its GET read there: its lease, or the
# entry it recomputes (xfetch). A write's delete, or another fill, makes it a no-op.
STORE_IF = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then
  redis.call('SET', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


class RedisLease:
    """The lease as two scripts: the key holds either an entry or a lease token."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        client = backend._write_client
        # redis-py sends a script by its digest (EVALSHA), and its source again (EVAL) to a
        # server that does not know it, after a restart.
        self._read_or_lease = client.register_script(READ_OR_LEASE)
        self._store_if = client.register_script(STORE_IF)

    def read(self, key: str, lifetime_ms: int) -> tuple[Any, Any]:
        """(entry or None, ticket): the ticket, the condition of a fill, is None when another
        GET holds the key's lease."""
        mine = self.backend.serializer.dumps(lease_token())
        held = self._read_or_lease(keys=[self._name(key)], args=[mine, lifetime_ms])
        if held is None:
            return None, mine
        try:
            entry = self.backend.serializer.loads(held)
        except UndecodableEntry as exc:
            log.warning("cache entry %s does not decode, counted as a miss: %s", key, exc)
            return None, held
        if is_lease(entry):
            return None, None
        return entry, held

    def store(self, key: str, entry: Any, timeout: int | None, ticket: Any) -> bool:
        seconds = max(self.backend._normalize_timeout(timeout), 0)  # -1: never expires
        value = self.backend.serializer.dumps(entry)
        return bool(self._store_if(keys=[self._name(key)], args=[ticket, value, seconds]))

    def _name(self, key: str) -> str:
        return self.backend._get_prefix() + key


class MemcachedLease:
    """The lease with memcached's own compare-and-set: a miss adds its token to the key, and
    the fill replaces it with cas, which fails if anything wrote the key since its gets."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.client = backend._client

    def read(self, key: str, lifetime_ms: int) -> tuple[Any, Any]:
        """As RedisLease.read; the ticket is the entry's cas number, or the lease token."""
        name = self.backend._normalize_key(key)
        try:
            entry, cas = self.client.gets(name)
        except UndecodableEntry as exc:
            # Its cas number is lost with the value: deleted, so that the next GET leases it.
            log.warning("cache entry %s does not decode, deleted: %s", key, exc)
            self.client.delete(name)
            return None, None
        if entry is None:
            mine = lease_token()
            added = self.client.add(name, mine, expire=math.ceil(lifetime_ms / 1000))
            return None, (mine if added else None)
        if is_lease(entry):
            return None, None
        return entry, cas

    def store(self, key: str, entry: Any, timeout: int | None, ticket: Any) -> bool:
        name = self.backend._normalize_key(key)
        cas = ticket
        if is_lease(ticket):  # its lease: still the key's, and unchanged since?
            held, cas = self.client.gets(name)
            if held != ticket:
                return False
        expire = self.backend._normalize_timeout(timeout)
        return bool(self.client.cas(name, entry, cas, expire=expire))


LEASES = {"redis": RedisLease, "memcached": MemcachedLease}
