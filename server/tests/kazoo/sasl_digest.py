"""kazoo with SASL DIGEST-MD5 (pure-sasl) against a server whose JAAS Server section lists
bob/bobsecret and alice/alicesecret and whose authProvider.1 is SASLAuthenticationProvider.

Usage: sasl_digest.py HOST:PORT. Asserts every result; prints "kazoo sasl: OK" at the end.
"""

import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.protocol.states import KeeperState
from kazoo.security import make_acl, CREATOR_ALL_ACL


def client(hosts, user=None, password=None):
    options = None
    if user is not None:
        options = {"mechanism": "DIGEST-MD5", "username": user, "password": password}
    return KazooClient(hosts=hosts, sasl_options=options, timeout=10, connection_retry={"max_tries": 0})


def main():
    hosts = sys.argv[1]
    bob = client(hosts, "bob", "bobsecret")
    bob.start(timeout=15)
    bob.create("/kazoo-sasl", b"secret", acl=[make_acl("sasl", "bob", all=True)])
    data, _ = bob.get("/kazoo-sasl")
    assert data == b"secret", data
    acl, _ = bob.get_acls("/kazoo-sasl")
    assert [(a.id.scheme, a.id.id, a.perms) for a in acl] == [("sasl", "bob", 31)], acl
    # The "creator all" ACL expands to the creator's sasl id.
    bob.create("/kazoo-sasl-creator", b"x", acl=CREATOR_ALL_ACL)
    acl, _ = bob.get_acls("/kazoo-sasl-creator")
    assert [(a.id.scheme, a.id.id) for a in acl] == [("sasl", "bob")], acl

    alice = client(hosts, "alice", "alicesecret")
    alice.start(timeout=15)
    try:
        alice.get("/kazoo-sasl")
        raise AssertionError("alice read bob's node")
    except NoAuthError:
        pass
    alice.stop()

    plain = client(hosts)
    plain.start(timeout=15)
    try:
        plain.get("/kazoo-sasl")
        raise AssertionError("a client without SASL read bob's node")
    except NoAuthError:
        pass
    plain.stop()

    # A wrong password: the server answers AuthFailed and closes the connection; kazoo (which
    # may report the session connected before its SASL exchange ends) goes to AUTH_FAILED,
    # then CLOSED, and stops trying.
    wrong = client(hosts, "bob", "wrong")
    try:
        wrong.start(timeout=10)
    except Exception:  # kazoo may raise AuthFailedError or time out instead
        pass
    deadline = time.time() + 10
    gave_up = (KeeperState.AUTH_FAILED, KeeperState.CLOSED)
    while (wrong.client_state not in gave_up or wrong.connected) and time.time() < deadline:
        time.sleep(0.05)
    assert wrong.client_state in gave_up and not wrong.connected, wrong.client_state
    wrong.stop()

    bob.delete("/kazoo-sasl")
    bob.delete("/kazoo-sasl-creator")
    bob.stop()
    print("kazoo sasl: OK")


if __name__ == "__main__":
    main()
