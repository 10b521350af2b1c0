#!/usr/bin/env bash
# Regenerates the demo requests in this folder with `custody mint` and the demo-only keys.
# Usage: policies/demo/requests/generate.sh [path/to/custody]   (run from the repository root)
# Every token is minted at a fixed time and each request carries that time as `now`, so the
# requests decide the same way forever.
set -euo pipefail
custody=${1:-target/release/custody}
here=$(cd "$(dirname "$0")" && pwd)
keys="$here/../keys"
NOW=1767225600
BOB=spiffe://a.example/agent/bob
ALICE=spiffe://b.example/agent/alice
HELPER=spiffe://b.example/agent/helper
MALLORY=spiffe://d.example/agent/mallory
ORDERS=spiffe://c.example/orders
GATEWAY=spiffe://c.example/gateway

mint() { # domain, then mint flags
  local d=$1; shift
  "$custody" mint --key "$keys/$d.key.jwk" --iss "https://as.$d.example" --iat $((NOW - 60)) "$@"
}

# request NAME PEER ACTION [TXN_TOKEN] -- TOKEN...
request() {
  local name=$1 peer=$2 action=$3 txn=$4; shift 5
  local list="" sep=""
  for t in "$@"; do list="$list$sep\"$t\""; sep=", "; done
  {
    printf '{\n  "tokens": [%s],\n' "$list"
    [ -n "$txn" ] && printf '  "txn_token": "%s",\n' "$txn"
    printf '  "audience": "%s",\n  "action": "%s",\n' "$ORDERS" "$action"
    [ -n "$peer" ] && printf '  "peer": "%s",\n' "$peer"
    printf '  "now": %s\n}\n' "$NOW"
  } > "$here/$name.json"
}

# The scenario: Bob (a.example) acts for user Alice; a.example's AS issues Bob a token for
# Alice-agent; b.example's AS exchanges it for a token Alice-agent presents to the orders service.
t0=$(mint a --sub user:alice --aud $ALICE --actor $BOB --scope "orders:read orders:write" --txn txn-demo-1 --ttl 900)
t1_read=$(mint b --sub user:alice --aud $ORDERS --actor $BOB --actor $ALICE --scope "orders:read" --txn txn-demo-1 --ttl 600)
t1_write=$(mint b --sub user:alice --aud $ORDERS --actor $BOB --actor $ALICE --scope "orders:read orders:write" --txn txn-demo-1 --ttl 600)

request allow-two-domain-chain $ALICE orders:read "" -- "$t0" "$t1_read"
request allow-write $ALICE orders:write "" -- "$t0" "$t1_write"

# Scope widening: Bob was given read only, the exchange hands out write as well.
t0_read=$(mint a --sub user:alice --aud $ALICE --actor $BOB --scope "orders:read" --txn txn-demo-1 --ttl 900)
request deny-scope-escalation $ALICE orders:write "" -- "$t0_read" "$t1_write"

# A compromised agent in d.example, valid identity and all, tries to pivot to the orders service.
t0_m=$(mint a --sub user:alice --aud $MALLORY --actor $BOB --scope "orders:read orders:write" --txn txn-demo-1 --ttl 900)
t1_m=$(mint d --sub user:alice --aud $ORDERS --actor $BOB --actor $MALLORY --scope "orders:read" --txn txn-demo-1 --ttl 600)
request deny-unfederated-pivot $MALLORY orders:read "" -- "$t0_m" "$t1_m"

# A token minted for another service of c.example, redeemed at the orders service.
t1_billing=$(mint b --sub user:alice --aud spiffe://c.example/billing --actor $BOB --actor $ALICE --scope "orders:read" --txn txn-demo-1 --ttl 600)
request deny-wrong-audience $ALICE orders:read "" -- "$t0" "$t1_billing"

# Bob presents Alice-agent's token himself.
request deny-sender-mismatch $BOB orders:read "" -- "$t0" "$t1_read"

# Three agents deep: a read is fine, a write is forbidden by `deep-chains-read-only`.
t0_deep=$(mint a --sub user:alice --aud $ALICE --actor $BOB --scope "orders:read orders:write" --txn txn-demo-2 --ttl 900)
t1_deep=$(mint b --sub user:alice --aud $HELPER --actor $BOB --actor $ALICE --scope "orders:read orders:write" --txn txn-demo-2 --ttl 800)
t2_deep=$(mint b --sub user:alice --aud $ORDERS --actor $BOB --actor $ALICE --actor $HELPER --scope "orders:read orders:write" --txn txn-demo-2 --ttl 700)
request allow-deep-chain-read $HELPER orders:read "" -- "$t0_deep" "$t1_deep" "$t2_deep"
request deny-deep-chain-write $HELPER orders:write "" -- "$t0_deep" "$t1_deep" "$t2_deep"

# Four agents: over the pack's max_depth of 3.
t_four=$(mint b --sub user:carol --aud $ORDERS --actor spiffe://b.example/agent/w --actor spiffe://b.example/agent/x --actor spiffe://b.example/agent/y --actor $ALICE --scope "orders:read" --ttl 900)
request deny-too-deep $ALICE orders:read "" -- "$t_four"

# b.example vouches for Bob of a.example with no a.example token in the chain.
t_vouch=$(mint b --sub user:alice --aud $ORDERS --actor $BOB --actor $ALICE --scope "orders:read" --txn txn-demo-1 --ttl 900)
request deny-vouching $ALICE orders:read "" -- "$t_vouch"

# A token signed with d.example's key under b.example's key id.
t_forged=$("$custody" mint --key "$keys/d.key.jwk" --iss https://as.b.example --iat $((NOW - 60)) --ttl 600 \
  --sub user:alice --aud $ORDERS --actor $BOB --actor $ALICE --scope "orders:read" --txn txn-demo-1 --kid b-demo-1)
request deny-forged-signature $ALICE orders:read "" -- "$t0" "$t_forged"

# Expired: the same allowed chain, an hour later.
request deny-expired $ALICE orders:read "" -- "$t0" "$t1_read"
sed -i "s/\"now\": $NOW/\"now\": $((NOW + 3600))/" "$here/deny-expired.json"

# Inside c.example, the gateway calls the orders service with a Txn-Token beside the chain.
txn=$("$custody" mint --key "$keys/c.key.jwk" --typ txntoken+jwt --iss https://as.c.example --iat $((NOW - 5)) --ttl 300 \
  --sub user:alice --aud c.example --txn txn-demo-1 --scope "orders:read" --req-wl $GATEWAY)
request allow-txn-token $GATEWAY orders:read "$txn" -- "$t0" "$t1_read"
echo "regenerated $(ls "$here"/*.json | wc -l) requests in $here"
