#!/usr/bin/env bash
# npm run test:container: build the image and run it with compose for real (podman here, no Docker
# engine), ask a question, publish a new store version on the host into the bind-mounted
# vectorstore and see the running container serve it with no restart, then tear everything down.
# Then the shared-chroma profile from the same image: Chroma (chroma-serve.js) and RAG_REPLICAS replicas
# on a compose network; publish two versions and a rollback from the host through the CLI and time each
# one until every replica serves it.
#   RAG_TEST_IMAGE=localhost/rag:mine   tag to build and run (default localhost/rag:test)
#   RAG_TEST_SKIP_BUILD=1               reuse that tag as it is (iterating on this script)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED_DIR:-$ROOT/../shared}
PROJECT=ragtest$$
WORK=$(mktemp -d /tmp/rag-container-XXXXXX)
log() { echo "[test:container $(date +%H:%M:%S)] $*"; }
fail() { echo "[test:container] FAIL: $*" >&2; exit 1; }

IMAGE=${RAG_TEST_IMAGE:-localhost/rag:test}

cleanup() {
  set +e
  if [ -n "${COMPOSE:-}" ]; then $COMPOSE -p "$PROJECT" -f docker-compose.yml down -v -t 10 >/dev/null 2>&1; fi
  podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman rm -f >/dev/null 2>&1
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
  podman volume rm -f "${PROJECT}_chroma-data" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

[ -f "$SHARED/container/env.sh" ] || fail "no $SHARED/container/env.sh (set SHARED_DIR)"
# shellcheck disable=SC1091
. "$SHARED/container/env.sh"
COMPOSE=podman-compose

log "base image"
NODE_IMAGE=$("$SHARED/container/base-image" | tail -1)
export NODE_IMAGE
t0=$(date +%s%N)
if [ "${RAG_TEST_SKIP_BUILD:-}" = 1 ]; then
  log "reusing $IMAGE (RAG_TEST_SKIP_BUILD=1)"
  podman image exists "$IMAGE" || fail "no image $IMAGE to reuse"
else
  log "building $IMAGE on $NODE_IMAGE"
  podman build --build-arg NODE_IMAGE="$NODE_IMAGE" -t "$IMAGE" . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "podman build"; }
fi
BUILD_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
SIZE=$(podman image inspect "$IMAGE" --format '{{.Size}}')
log "built in ${BUILD_MS} ms, image size $((SIZE / 1024 / 1024)) MiB"

log "validating docker-compose.yml"
docker-compose -f docker-compose.yml config -q || fail "docker-compose config"

# Host folders for the bind mounts: a copy of the generated model and a freshly ingested store.
mkdir -p "$WORK/models" "$WORK/vectorstore"
cp -r models/glove-sif-100d "$WORK/models/"
node dist/src/ingest/cli.js corpus/sample --out "$WORK/vectorstore" --models-dir "$WORK/models" --chunk-size 400 --chunk-overlap 60 --quiet
FIRST=$(cat "$WORK/vectorstore/CURRENT")
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
export RAG_IMAGE=$IMAGE RAG_PORT=$PORT RAG_MODELS_DIR=$WORK/models RAG_VECTORSTORE_DIR=$WORK/vectorstore
URL=http://127.0.0.1:$PORT

log "compose up (port $PORT)"
t0=$(date +%s%N)
$COMPOSE -p "$PROJECT" -f docker-compose.yml up -d rag >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "compose up"; }
CID=$(podman ps -q --filter "label=io.podman.compose.project=$PROJECT" | head -1)
[ -n "$CID" ] || fail "no container running"
for i in $(seq 1 300); do
  if curl -sf "$URL/readyz" >/dev/null 2>&1; then break; fi
  [ "$i" = 300 ] && { podman logs "$CID" | tail -30; fail "not ready after 60 s"; }
  sleep 0.2
done
READY_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
log "ready ${READY_MS} ms after compose up"
podman healthcheck run "$CID" >/dev/null 2>&1 && log "healthcheck: healthy" || fail "podman healthcheck run reports unhealthy"
STARTED=$(podman inspect "$CID" --format '{{.State.StartedAt}}')

ANSWER=$(curl -sf "$URL/v1/query" -H 'content-type: application/json' -d '{"question":"How do I make a backup while the server is running?"}')
echo "$ANSWER" | node -e "
  const r = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  if (!r.answer || !r.sources.length) throw new Error('no answer');
  if (r.generation.storeVersion !== process.argv[1]) throw new Error('unexpected version ' + r.generation.storeVersion);
  if (!r.sources.some((s) => s.metadata.source === '12-backup-restore.md')) throw new Error('backup doc not among sources: ' + r.sources.map((s) => s.metadata.source));
  console.log('[test:container] answer:', r.answer.slice(0, 120));
" "$FIRST" || fail "first question"

log "publishing a new store version on the host into the bind mount"
t0=$(date +%s%N)
node dist/src/ingest/cli.js test/fixtures/docs-b --out "$WORK/vectorstore" --models-dir "$WORK/models" --chunk-size 300 --chunk-overlap 30 --quiet
SECOND=$(cat "$WORK/vectorstore/CURRENT")
[ "$SECOND" != "$FIRST" ] || fail "no new version"
for i in $(seq 1 150); do
  V=$(curl -sf "$URL/readyz" | node -e "process.stdout.write(JSON.parse(require('fs').readFileSync(0,'utf8')).store?.version ?? '')" || true)
  [ "$V" = "$SECOND" ] && break
  [ "$i" = 150 ] && { podman logs "$CID" | tail -30; fail "the container did not pick up $SECOND"; }
  sleep 0.2
done
SWAP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
log "serving $SECOND ${SWAP_MS} ms after the ingest started (ingest included)"
curl -sf "$URL/v1/retrieve" -H 'content-type: application/json' -d '{"question":"how long does a low earth orbit take","k":2}' | node -e "
  const r = JSON.parse(require('fs').readFileSync(0, 'utf8'));
  if (r.generation.storeVersion !== process.argv[1]) throw new Error('old version served');
  if (r.sources[0].metadata.source !== 'orbits.md') throw new Error('unexpected source ' + r.sources[0].metadata.source);
" "$SECOND" || fail "question on the new store"
[ "$(podman inspect "$CID" --format '{{.State.StartedAt}}')" = "$STARTED" ] || fail "the container restarted"
[ "$(podman inspect "$CID" --format '{{.RestartCount}}')" = "0" ] || fail "the container restarted"

log "compose down"
t0=$(date +%s%N)
$COMPOSE -p "$PROJECT" -f docker-compose.yml down -t 10 >"$WORK/down.log" 2>&1 || { cat "$WORK/down.log"; fail "compose down"; }
DOWN_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
LEFT=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
[ "$LEFT" = 0 ] || fail "$LEFT containers left after compose down"
EXIT=$(grep -c "exited with code 0\|exit code: 0" "$WORK/down.log" || true)
log "down in ${DOWN_MS} ms; nothing left running"

# --- The shared-chroma profile: Chroma from this image, RAG_REPLICAS replicas, publishing from the host.
# podman-compose 1.0.x has no --profile: naming the services starts them (and only them).
REPLICAS=${RAG_TEST_REPLICAS:-2}
CPORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
CURL=http://127.0.0.1:$CPORT
export CHROMA_PORT=$CPORT RAG_REPLICAS=$REPLICAS STORE_NAME=docs POINTER_POLL_MS=${POINTER_POLL_MS:-1000}
log "shared-chroma: compose up chroma + $REPLICAS replicas (Chroma on port $CPORT, POINTER_POLL_MS=$POINTER_POLL_MS)"
t0=$(date +%s%N)
$COMPOSE -p "$PROJECT" -f docker-compose.yml up -d chroma rag-replica >"$WORK/up-shared.log" 2>&1 || { cat "$WORK/up-shared.log"; fail "compose up (shared-chroma)"; }
CHROMA_CID=$(podman ps -q --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=chroma")
[ -n "$CHROMA_CID" ] || { cat "$WORK/up-shared.log"; fail "no chroma container"; }
mapfile -t REPLICA_CIDS < <(podman ps -q --filter "label=io.podman.compose.project=$PROJECT" --filter "label=com.docker.compose.service=rag-replica")
[ "${#REPLICA_CIDS[@]}" = "$REPLICAS" ] || { cat "$WORK/up-shared.log"; fail "${#REPLICA_CIDS[@]} replica containers running, expected $REPLICAS"; }
for i in $(seq 1 300); do
  if curl -sf "$CURL/api/v2/heartbeat" >/dev/null 2>&1; then break; fi
  [ "$i" = 300 ] && { podman logs "$CHROMA_CID" | tail -30; fail "Chroma not answering after 60 s"; }
  sleep 0.2
done
CHROMA_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
podman healthcheck run "$CHROMA_CID" >/dev/null 2>&1 || { podman logs "$CHROMA_CID" | tail -30; fail "chroma: podman healthcheck run reports unhealthy"; }
log "Chroma healthy ${CHROMA_MS} ms after compose up"

# Each replica's /readyz, on its address on the compose network (rootful podman: the host reaches it),
# else through podman exec.
declare -A REPLICA_URL=()
readyz() { # CID -> the /readyz body ('' when unreachable)
  local cid=$1
  if [ -n "${REPLICA_URL[$cid]:-}" ]; then curl -s --max-time 2 "${REPLICA_URL[$cid]}/readyz" || true
  else podman exec "$cid" node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>r.text()).then(t=>process.stdout.write(t),()=>{})" 2>/dev/null || true
  fi
}
for cid in "${REPLICA_CIDS[@]}"; do
  ip=$(podman inspect "$cid" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' | awk '{print $1}')
  for i in $(seq 1 100); do
    if [ -n "$ip" ] && curl -s --max-time 1 -o /dev/null "http://$ip:8080/healthz"; then REPLICA_URL[$cid]=http://$ip:8080; break; fi
    sleep 0.2
  done
done
log "reaching the replicas: $([ "${#REPLICA_URL[@]}" = "$REPLICAS" ] && echo "on their network addresses" || echo "through podman exec")"
served() { # CID -> the store version it serves ('' when none); no node per poll (CPU)
  local body
  body=$(readyz "$1")
  if [[ $body =~ \"store\":\{\"version\":\"([^\"]*)\" ]]; then echo "${BASH_REMATCH[1]}"; fi
}
# VERSION LABEL: wait until every replica serves VERSION; prints the time since $T0 (the CLI returned).
converge() {
  local want=$1 label=$2 cid v ok
  for i in $(seq 1 600); do
    ok=0
    for cid in "${REPLICA_CIDS[@]}"; do
      v=$(served "$cid")
      [ "$v" = "$want" ] && ok=$((ok + 1))
    done
    [ "$ok" = "$REPLICAS" ] && break
    if [ "$i" = 600 ]; then
      for cid in "${REPLICA_CIDS[@]}"; do echo "--- $cid: $(readyz "$cid")"; podman logs "$cid" 2>&1 | tail -15; done >&2
      fail "$label: not every replica serves $want after 120 s"
    fi
    sleep 0.2
  done
  echo $(( ($(date +%s%N) - T0) / 1000000 ))
}
publish() { # DOCS VERSION [CLI args...]
  local docs=$1 version=$2
  shift 2
  node dist/src/ingest/cli.js "$docs" --chroma-url "$CURL" --name docs --version "$version" --models-dir "$WORK/models" --quiet "$@" >"$WORK/publish.log" 2>&1 || { cat "$WORK/publish.log"; fail "publish $version"; }
  sed 's/^/  /' "$WORK/publish.log"
}

V1=v1-$PROJECT
V2=v2-$PROJECT
log "publishing $V1 from the host (npm run ingest -- corpus/sample --chroma-url $CURL --name docs)"
t0=$(date +%s%N)
publish corpus/sample "$V1" --chunk-size 400 --chunk-overlap 60
T0=$(date +%s%N)
PUB1_MS=$(( (T0 - t0) / 1000000 ))
CONV1_MS=$(converge "$V1" "first version")
log "all $REPLICAS replicas serve $V1 ${CONV1_MS} ms after the publish returned (publish took ${PUB1_MS} ms)"
for cid in "${REPLICA_CIDS[@]}"; do podman healthcheck run "$cid" >/dev/null 2>&1 || fail "replica $cid: podman healthcheck run reports unhealthy"; done

log "publishing $V2 from the host"
t0=$(date +%s%N)
publish test/fixtures/docs-b "$V2" --chunk-size 300 --chunk-overlap 30
T0=$(date +%s%N)
PUB2_MS=$(( (T0 - t0) / 1000000 ))
CONV2_MS=$(converge "$V2" "second version")
log "all $REPLICAS replicas serve $V2 ${CONV2_MS} ms after the publish returned (publish took ${PUB2_MS} ms)"
for cid in "${REPLICA_CIDS[@]}"; do
  if [ -n "${REPLICA_URL[$cid]:-}" ]; then
    curl -sf "${REPLICA_URL[$cid]}/v1/retrieve" -H 'content-type: application/json' -d '{"question":"how long does a low earth orbit take","k":2}' | node -e "
      const r = JSON.parse(require('fs').readFileSync(0, 'utf8'));
      if (r.generation.storeVersion !== process.argv[1]) throw new Error('old version served: ' + r.generation.storeVersion);
      if (r.sources[0].metadata.source !== 'orbits.md') throw new Error('unexpected source ' + r.sources[0].metadata.source);
    " "$V2" || fail "replica $cid: question on $V2"
  fi
done

log "rolling back from the host (npm run ingest -- --chroma-url $CURL --name docs --rollback)"
node dist/src/ingest/cli.js --chroma-url "$CURL" --name docs --rollback >"$WORK/rollback.log" 2>&1 || { cat "$WORK/rollback.log"; fail "rollback"; }
T0=$(date +%s%N)
sed 's/^/  /' "$WORK/rollback.log"
CONV3_MS=$(converge "$V1" "rollback")
log "all $REPLICAS replicas serve $V1 again ${CONV3_MS} ms after the rollback returned"
for cid in "${REPLICA_CIDS[@]}"; do
  [ "$(podman inspect "$cid" --format '{{.RestartCount}}')" = "0" ] || fail "replica $cid restarted"
done
[ "$(podman inspect "$CHROMA_CID" --format '{{.RestartCount}}')" = "0" ] || fail "chroma restarted"

# chroma-serve.js is a proper container main: a stop ends it cleanly (exit 0), well within its grace.
t0=$(date +%s%N)
podman stop -t 10 "$CHROMA_CID" >/dev/null || fail "podman stop chroma"
STOP_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
CHROMA_EXIT=$(podman inspect "$CHROMA_CID" --format '{{.State.ExitCode}}')
[ "$CHROMA_EXIT" = 0 ] || { podman logs "$CHROMA_CID" | tail -20; fail "chroma exited with $CHROMA_EXIT on podman stop"; }
log "chroma stopped in ${STOP_MS} ms, exit code 0"

log "compose down (shared-chroma)"
$COMPOSE -p "$PROJECT" -f docker-compose.yml down -v -t 10 >"$WORK/down-shared.log" 2>&1 || { cat "$WORK/down-shared.log"; fail "compose down (shared-chroma)"; }
podman network rm -f "${PROJECT}_default" >/dev/null 2>&1 || true
podman volume rm -f "${PROJECT}_chroma-data" >/dev/null 2>&1 || true
LEFT=$(podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | wc -l)
[ "$LEFT" = 0 ] || fail "$LEFT containers left after compose down (shared-chroma)"
podman volume exists "${PROJECT}_chroma-data" && fail "volume ${PROJECT}_chroma-data left behind"

echo "container: image $((SIZE / 1024 / 1024)) MiB, build ${BUILD_MS} ms, compose up to ready ${READY_MS} ms, host ingest to serving ${SWAP_MS} ms"
echo "shared-chroma: $REPLICAS replicas, POINTER_POLL_MS=$POINTER_POLL_MS; publish returned -> all replicas serving: first ${CONV1_MS} ms, second ${CONV2_MS} ms, rollback ${CONV3_MS} ms (publishes took ${PUB1_MS} / ${PUB2_MS} ms); chroma up ${CHROMA_MS} ms, stop ${STOP_MS} ms (exit 0)"
echo "1 passed, 0 failed"
