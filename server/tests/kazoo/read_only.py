"""kazoo with read_only=True against an ensemble that lost its quorum (server/tests/read_only.rs).

Phase 1 (argv[1] lists every member; only one still runs, without a quorum): the client comes
in read-only (KeeperState.CONNECTED_RO), reads /ro-data, a create fails with
NotReadOnlyCallError. Prints "phase1 OK" and waits for a line on stdin (the test restarts
the other members). Phase 2: the client moves back to a read-write server on its own
(KeeperState.CONNECTED) and the create succeeds.
"""
import sys
import time

from kazoo.client import KazooClient
from kazoo.exceptions import NotReadOnlyCallError
from kazoo.protocol.states import KeeperState


def wait_state(zk, wanted, limit):
    deadline = time.time() + limit
    while zk.client_state != wanted:
        if time.time() > deadline:
            raise SystemExit(f"client state {zk.client_state}, wanted {wanted}")
        time.sleep(0.05)


zk = KazooClient(hosts=sys.argv[1], read_only=True, timeout=10.0)
zk.start(timeout=30)
wait_state(zk, KeeperState.CONNECTED_RO, 30)
data, _ = zk.get("/ro-data")
assert data == b"v1", data
try:
    zk.create("/ro-new", b"x")
    raise SystemExit("a create succeeded on a read-only server")
except NotReadOnlyCallError:
    pass
print("phase1 OK", flush=True)
sys.stdin.readline()
wait_state(zk, KeeperState.CONNECTED, 90)
zk.create("/ro-new", b"x")
data, _ = zk.get("/ro-new")
assert data == b"x", data
zk.stop()
print("kazoo read-only: OK", flush=True)
