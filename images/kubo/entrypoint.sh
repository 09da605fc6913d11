#!/bin/sh
# Entry point of dlnet/kubo: `ipfs "$@"`; for `daemon`, also re-dial the peers met while starting.
#
# Why: kubo 0.39 ships boxo 0.35, whose bitswap only learns of connections opened after bitswap
# started. A swarm peer that connected during start-up (our peers dial us as soon as the port listens)
# is never asked for blocks, so fetches from it hang for the life of that connection: measured here in
# 11 of 40 restarts (ipfs/boxo#83; fixed by ipfs/boxo#1201, which needs kubo 0.40+, not `go install`able).
# The RPC API answers only once bitswap runs, so closing every connection open at that moment and
# dialling the peer again gives bitswap a connection it sees. Remove when kubo moves past 0.39.
set -eu

if [ "${1:-}" != daemon ]; then
  exec ipfs "$@"
fi

redial_startup_peers() {
  # `swarm peers` fails until the daemon is online.
  i=0
  until peers=$(ipfs swarm peers 2>/dev/null); do
    i=$((i + 1))
    [ "$i" -le 240 ] || return 0
    sleep 0.5
  done
  for peer in $(printf '%s\n' "$peers" | sed -n 's|.*/p2p/||p'); do
    ipfs swarm disconnect "/p2p/$peer" >/dev/null 2>&1 || true
    # The peer's Peering reconnects too; whichever dial wins, bitswap now sees it.
    ipfs swarm connect "/p2p/$peer" >/dev/null 2>&1 || true
  done
  echo "dlnet: re-dialled $(printf '%s\n' "$peers" | grep -c /p2p/ || true) peer(s) connected during start-up"
}

redial_startup_peers &
exec ipfs "$@"
