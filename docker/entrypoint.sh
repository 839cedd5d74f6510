#!/bin/sh
# The image's entry point: the first argument names the role this container plays.
#
#   web       apply migrations (unless VAJRACAST_MIGRATE=false), then serve the UI, the API and
#             /metrics with gunicorn on 0.0.0.0:$PORT (8080)
#   worker    a Celery worker: runs routes on this node
#   beat      the Celery scheduler: exactly one per deployment
#   migrate   apply migrations and exit (a Kubernetes Job, or before a rolling update)
#
# Anything else runs as given, e.g. `python manage.py create_api_key --user ci --role admin`.
set -eu

data_dir="${VAJRACAST_DATA_DIR:-/var/lib/vajracast}"

migrate() {
  python /app/manage.py migrate --noinput
}

role="${1:-web}"
if [ "$#" -gt 0 ]; then
  shift
fi

case "$role" in
  web)
    case "${VAJRACAST_MIGRATE:-true}" in
      false | 0 | no | off) ;;
      *) migrate ;;
    esac
    # The web processes add up their request metrics through files here (vajracast.gunicorn_conf);
    # the worker and beat keep none, so it is set for this role only.
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$data_dir/prometheus}"
    # embedded_wsgi also serves /static/ (collected into the image at build time): a Compose or
    # Kubernetes deployment has no proxy of its own in front to do it.
    # The heartbeat files go to /dev/shm: on an overlay /tmp a worker can stall writing them.
    # WEB_CONCURRENCY sets the number of processes; GUNICORN_CMD_ARGS can add other options.
    exec python -m gunicorn vajracast.embedded_wsgi:application \
      --bind "0.0.0.0:${PORT:-8080}" \
      --workers "${WEB_CONCURRENCY:-2}" \
      --threads 4 \
      --worker-tmp-dir /dev/shm \
      --access-logfile - \
      --no-control-socket \
      --graceful-timeout 10 \
      --config python:vajracast.gunicorn_conf \
      "$@"
    ;;
  worker)
    # The same worker as `manage.py serve` runs, without the embedded scheduler: beat is a
    # container of its own, so that scaling workers does not multiply the schedule.
    exec python -m celery -A vajracast worker --loglevel "${LOG_LEVEL:-INFO}" -n "vajracast@%h" "$@"
    ;;
  beat)
    exec python -m celery -A vajracast beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "$data_dir/celerybeat-schedule" "$@"
    ;;
  migrate)
    migrate
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
