#!/usr/bin/env bash
# Bring tornado_channels up on this machine: one worker per core under
# supervisord, nginx in front on $TC_PORT (default 5000), relaying through the
# Redis at $TORNADO_CHANNELS_REDIS_URL, or through a private one when none answers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
export TC_RUN_DIR=${TC_RUN_DIR:-$root/.run}
export TC_BIN=${TC_BIN:-$root/.venv/bin}
export TC_PORT=${TC_PORT:-5000}
export TC_ADDRESS=${TC_ADDRESS:-127.0.0.1}
export TC_WORKERS=${TC_WORKERS:-$(nproc)}
export TC_BASE_PORT=${TC_BASE_PORT:-$((TC_PORT + 1))}
export TC_READ_TIMEOUT=${TC_READ_TIMEOUT:-60s}
# Who may reach /_/metrics, /_/stats (all of /_/ but health, static, presence,
# openapi.json, publish) through nginx, e.g. "127.0.0.1 10.0.0.0/8"; empty: anyone.
export TC_OPS_ALLOW=${TC_OPS_ALLOW:-}
export TORNADO_CHANNELS_REDIS_URL=${TORNADO_CHANNELS_REDIS_URL:-redis://127.0.0.1:6379/0}
hard_fds=$(ulimit -Hn)
if [ "$hard_fds" = unlimited ] || [ "$hard_fds" -ge 65536 ]; then hard_fds=65536; fi
export TC_MINFDS=${TC_MINFDS:-$hard_fds}
mkdir -p "$TC_RUN_DIR"

if [ -S "$TC_RUN_DIR/supervisor.sock" ] && "$here/supervisorctl" pid >/dev/null 2>&1; then
  echo "already running (make status shows it, make stop stops it)"
  exit 0
fi

# Redis: the one at the URL if it answers; else a private one on that port,
# under the same supervisord, when the URL points at this machine.
redis_info=$("$TC_BIN/python" "$here/check_redis.py" "$TORNADO_CHANNELS_REDIS_URL")
read -r answers where redis_port <<<"$redis_info"
export TC_REDIS_PORT=$redis_port
if [ "$answers" = yes ]; then
  export TC_PRIVATE_REDIS=false
  redis_note="using the Redis at $TORNADO_CHANNELS_REDIS_URL"
elif [ "$where" = local ]; then
  export TC_PRIVATE_REDIS=true
  redis_note="no Redis answered at $TORNADO_CHANNELS_REDIS_URL: running a private one on port $redis_port"
else
  echo "no Redis answers at $TORNADO_CHANNELS_REDIS_URL; start it or set TORNADO_CHANNELS_REDIS_URL" >&2
  exit 1
fi

"$TC_BIN/python" "$here/render_nginx.py" > "$TC_RUN_DIR/nginx.conf"
"$TC_BIN/supervisord" -c "$here/supervisord.conf"

# Up when nginx answers and every worker reports its broker connected.
health_urls="http://$TC_ADDRESS:$TC_PORT"
for ((port = TC_BASE_PORT; port < TC_BASE_PORT + TC_WORKERS; port++)); do
  health_urls="$health_urls http://127.0.0.1:$port"
done
# shellcheck disable=SC2086
if "$TC_BIN/python" "$here/wait_healthy.py" 30 $health_urls; then
  # Healthy; supervisord calls them RUNNING once they have lived startsecs.
  for _ in $(seq 1 30); do
    "$here/supervisorctl" status >/dev/null 2>&1 && break
    sleep 0.1
  done
  base="http://$TC_ADDRESS:$TC_PORT"
  cat <<MSG

tornado_channels is up: $TC_WORKERS workers (ports $TC_BASE_PORT-$((TC_BASE_PORT + TC_WORKERS - 1))) behind nginx on $base
$redis_note

  open      $base/users/1          (a live page of channel users/1)
  publish   curl $base/users/1 -d 'Hi there!'
  subtree   curl $base/users/ -d 'Hi everyone below users/'
  subscribe ws://$TC_ADDRESS:$TC_PORT/ws/users/1   (or ws://$TC_ADDRESS:$TC_PORT/users/1)
  health    $base/_/health

make status shows every process; make stop stops them all. Logs: $TC_RUN_DIR/
MSG
  exit 0
fi
echo "not healthy after 30 s; see $TC_RUN_DIR/*.log" >&2
"$here/supervisorctl" status >&2 || true
exit 1
