#!/usr/bin/env bash
# npm run test:container: build the image and run it with compose for real (podman here, no Docker
# engine), ask a question, publish a new store version on the host into the bind-mounted
# vectorstore and see the running container serve it with no restart, then tear everything down.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${SHARED_DIR:-$ROOT/../shared}
PROJECT=ragtest$$
WORK=$(mktemp -d /tmp/rag-container-XXXXXX)
log() { echo "[test:container $(date +%H:%M:%S)] $*"; }
fail() { echo "[test:container] FAIL: $*" >&2; exit 1; }

cleanup() {
  set +e
  if [ -n "${COMPOSE:-}" ]; then $COMPOSE -p "$PROJECT" -f docker-compose.yml down -t 10 >/dev/null 2>&1; fi
  podman ps -aq --filter "label=io.podman.compose.project=$PROJECT" | xargs -r podman rm -f >/dev/null 2>&1
  podman network rm -f "${PROJECT}_default" >/dev/null 2>&1
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
log "building the image on $NODE_IMAGE"
t0=$(date +%s%N)
podman build --build-arg NODE_IMAGE="$NODE_IMAGE" -t localhost/rag:test . >"$WORK/build.log" 2>&1 || { tail -40 "$WORK/build.log"; fail "podman build"; }
BUILD_MS=$(( ($(date +%s%N) - t0) / 1000000 ))
SIZE=$(podman image inspect localhost/rag:test --format '{{.Size}}')
log "built in ${BUILD_MS} ms, image size $((SIZE / 1024 / 1024)) MiB"

log "validating docker-compose.yml"
docker-compose -f docker-compose.yml config -q || fail "docker-compose config"

# Host folders for the bind mounts: a copy of the generated model and a freshly ingested store.
mkdir -p "$WORK/models" "$WORK/vectorstore"
cp -r models/glove-sif-100d "$WORK/models/"
node dist/src/ingest/cli.js corpus/sample --out "$WORK/vectorstore" --models-dir "$WORK/models" --chunk-size 400 --chunk-overlap 60 --quiet
FIRST=$(cat "$WORK/vectorstore/CURRENT")
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
export RAG_IMAGE=localhost/rag:test RAG_PORT=$PORT RAG_MODELS_DIR=$WORK/models RAG_VECTORSTORE_DIR=$WORK/vectorstore
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
echo "container: image $((SIZE / 1024 / 1024)) MiB, build ${BUILD_MS} ms, compose up to ready ${READY_MS} ms, host ingest to serving ${SWAP_MS} ms"
echo "1 passed, 0 failed"
