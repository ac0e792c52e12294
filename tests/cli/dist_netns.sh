#!/usr/bin/env bash
# dist_netns.sh CDRMIX LUA_SCRIPT BASE_PORT [EXPECT_PATTERN...]: two "nodes" on
# this machine, each a network namespace this test makes itself, joined by a
# veth pair with addresses that exist only inside the two namespaces. Node A
# runs `cdrmix launch -n 2 --nnodes 2 --node-rank 0` with its own address as
# master, node B the same with --node-rank 1: a world of 4 ranks whose Gloo
# traffic crosses the veth (GLOO_SOCKET_IFNAME names each node's end).
# Each EXPECT_PATTERN is an extended regex, "A:regex" for node A's output,
# "B:regex" for node B's; given any, they replace the defaults (every rank's
# "rank R of 4 ok" line from tests/lua/dist.lua). Exits 77 (skipped), with the
# reason, where namespaces or veth links cannot be made.
set -u
cdrmix=$1 script=$2 port=$3
shift 3
if [ $# -eq 0 ]; then
  set -- "A:rank 0 of 4 ok" "A:rank 1 of 4 ok" "B:rank 2 of 4 ok" "B:rank 3 of 4 ok"
fi
fail=0
tmp=$(mktemp -d)
nsa=cdrmix-a-$$ nsb=cdrmix-b-$$
addr_a=10.231.77.1 addr_b=10.231.77.2   # only ever inside the two namespaces
if_a=cdrmix0 if_b=cdrmix1               # made inside the namespaces, so no clash

cleanup() {
  kill $(jobs -p) 2>/dev/null
  for ns in $nsa $nsb; do
    [ -e /run/netns/$ns ] || continue
    # Ranks still in the namespace (started by this test) go first; then the
    # namespace, and its end of the veth with it.
    pids=$(timeout 10 ip netns pids $ns 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    timeout 10 ip netns del $ns 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
skip() { echo "skipped: $*"; exit 77; }
shown=" "
show() { # file: a node's output, once
  case $shown in *" $1 "*) echo "(output above)" ;; *) cat "$1"; shown="$shown$1 " ;; esac
}
check() { # name pattern file
  local name=$1 pattern=$2 file=$3
  if ! grep -Eq -- "$pattern" "$file"; then
    echo "FAIL: $name: no line matches '$pattern', output:"; show "$file"; fail=1
  else
    echo "ok: $name"
  fi
}

[ "$(id -u)" = 0 ] || skip "needs root to make network namespaces (uid $(id -u))"
command -v ip >/dev/null || skip "no 'ip' command (iproute2) to make network namespaces"
timeout 10 ip netns add $nsa 2>"$tmp/err" || skip "ip netns add failed: $(head -n1 "$tmp/err")"
timeout 10 ip netns add $nsb 2>"$tmp/err" || skip "ip netns add failed: $(head -n1 "$tmp/err")"
# The pair is created inside A with its peer placed straight into B: the host's
# own namespace never holds either end.
timeout 10 ip -n $nsa link add $if_a type veth peer name $if_b netns $nsb 2>"$tmp/err" ||
  skip "cannot make a veth pair: $(head -n1 "$tmp/err")"
setup() {
  ip -n $nsa addr add $addr_a/24 dev $if_a && ip -n $nsb addr add $addr_b/24 dev $if_b &&
    ip -n $nsa link set lo up && ip -n $nsb link set lo up &&
    ip -n $nsa link set $if_a up && ip -n $nsb link set $if_b up
}
setup 2>"$tmp/err" || skip "cannot configure the veth pair: $(head -n1 "$tmp/err")"
# Wait (bounded) until A's address answers from B, i.e. both ends are up.
for _ in $(seq 30); do
  timeout 1 ip netns exec $nsb bash -c "exec 3<>/dev/tcp/$addr_a/1" 2>"$tmp/probe"
  grep -q "refused" "$tmp/probe" && break
  sleep 0.1
done

start=$SECONDS
node() { # namespace ifname rank out
  timeout 120 ip netns exec $1 env GLOO_SOCKET_IFNAME=$2 "$cdrmix" launch -n 2 --nnodes 2 --node-rank $3 \
    --master $addr_a:$port --timeout 30 run "$script" >"$4" 2>&1
}
node $nsa $if_a 0 "$tmp/A" &
node $nsb $if_b 1 "$tmp/B" &
wait %1; a=$?; wait %2; b=$?
echo "two nodes, world size 4: exits $a and $b after $((SECONDS - start)) s"
for n in A B; do
  code=$a; [ $n = B ] && code=$b
  if [ "$code" != 0 ]; then
    echo "FAIL: node $n exits $code (want 0), output:"; show "$tmp/$n"; fail=1
  else
    echo "ok: node $n exits 0"
  fi
done
for p in "$@"; do
  case $p in
    A:*) check "node A: ${p#A:}" "${p#A:}" "$tmp/A" ;;
    B:*) check "node B: ${p#B:}" "${p#B:}" "$tmp/B" ;;
    *) cat "$tmp/A" "$tmp/B" >"$tmp/AB"; check "a node: $p" "$p" "$tmp/AB" ;;
  esac
done
exit $fail
