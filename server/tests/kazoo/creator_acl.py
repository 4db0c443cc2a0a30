#!/usr/bin/env python3
"""kazoo "creator all" ACL test: python3 creator_acl.py HOST:PORT [--ca CA --cert CERT --key KEY]

kazoo writes every empty jute string as null (length -1), so its CREATOR_ALL_ACL, Id("auth", ""),
reaches the server with a null id. After `add_auth("digest", ...)` ZooKeeper accepts it and
stores the caller's digest id. With --ca/--cert/--key the client connects over TLS
(use_ssl=True). Exits 0 printing "kazoo creator acl: OK"; any failure exits non-zero.
"""

import argparse

from kazoo.client import KazooClient
from kazoo.exceptions import InvalidACLError, NoAuthError
from kazoo.protocol.states import KazooState
from kazoo.security import (
    CREATOR_ALL_ACL,
    Permissions,
    make_digest_acl,
    make_digest_acl_credential,
)

TIMEOUT = 10


def client(args):
    kwargs = {}
    if args.ca:
        kwargs = dict(use_ssl=True, ca=args.ca, certfile=args.cert, keyfile=args.key, verify_certs=True)
    zk = KazooClient(hosts=args.hosts, timeout=10, connection_retry={"max_tries": 3}, **kwargs)
    zk.start(timeout=TIMEOUT)
    assert zk.state == KazooState.CONNECTED, zk.state
    return zk


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("hosts")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()

    owner = client(args)
    stranger = client(args)
    try:
        # Without an authenticated id the auth scheme has nothing to expand to.
        try:
            stranger.create("/creator-unauth", b"", acl=CREATOR_ALL_ACL)
            raise AssertionError("CREATOR_ALL_ACL without add_auth was accepted")
        except InvalidACLError:
            pass

        owner.add_auth("digest", "user:pw")
        owner.create("/creator", b"mine", acl=CREATOR_ALL_ACL)
        acls, _ = owner.get_acls("/creator")
        expected = make_digest_acl_credential("user", "pw")
        assert len(acls) == 1, acls
        assert acls[0].perms == Permissions.ALL, acls
        assert (acls[0].id.scheme, acls[0].id.id) == ("digest", expected), acls

        # The same id set explicitly, and setACL with the creator ACL.
        owner.create("/digest", b"d", acl=[make_digest_acl("user", "pw", all=True)])
        owner.set_acls("/digest", CREATOR_ALL_ACL)
        acls, stat = owner.get_acls("/digest")
        assert (acls[0].id.scheme, acls[0].id.id, stat.aversion) == ("digest", expected, 1), (acls, stat)

        try:
            stranger.get("/creator")
            raise AssertionError("read without auth succeeded")
        except NoAuthError:
            pass
        stranger.add_auth("digest", "user:pw")
        assert stranger.get("/creator")[0] == b"mine"
        owner.delete("/creator")
        owner.delete("/digest")
    finally:
        owner.stop()
        stranger.stop()
    print("kazoo creator acl: OK")


if __name__ == "__main__":
    main()
