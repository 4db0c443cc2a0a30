#!/bin/sh
# Writes zoo.cfg for node $MYID of the compose ensemble (nodes at $FK_NODES, space separated
# addresses, in id order) and runs ferrokeeper. Quorum ports 2888/3888, client 2181, metrics
# 7000 on every address of the container.
set -eu
: "${MYID:?set MYID}"
: "${FK_NODES:=172.28.0.11 172.28.0.12 172.28.0.13}"
mkdir -p /data
echo "$MYID" > /data/myid
{
    echo "tickTime=200"
    echo "initLimit=10"
    echo "syncLimit=5"
    echo "dataDir=/data"
    echo "clientPort=2181"
    echo "clientPortAddress=0.0.0.0"
    echo "metricsProvider.httpPort=7000"
    echo "metricsProvider.httpHost=0.0.0.0"
    echo "4lw.commands.whitelist=*"
    # io_uring is often refused by container seccomp profiles.
    echo "txnLogBackend=${FK_TXNLOG_BACKEND:-sync}"
    i=1
    for host in $FK_NODES; do
        echo "server.$i=$host:2888:3888"
        i=$((i + 1))
    done
} > /data/zoo.cfg
exec ferrokeeper --config /data/zoo.cfg
