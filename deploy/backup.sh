#!/bin/sh
# Daily PostgreSQL backups (DESIGN 4.11): a pg_dump in custom format into $BACKUP_DIR, written
# under a temporary name and renamed when complete, the last $BACKUP_KEEP_DAYS days kept.
#
#   backup.sh            one backup now (exits non-zero if it failed)
#   backup.sh --daily    one now, then one a day, for ever (the compose "backup" service)
#
# The connection comes from the usual libpq variables: PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE. Restore steps are in the README.
set -eu

BACKUP_DIR=${BACKUP_DIR:-/backups}
KEEP_DAYS=${BACKUP_KEEP_DAYS:-14}
INTERVAL=${BACKUP_INTERVAL_SECONDS:-86400}
RETRY=${BACKUP_RETRY_SECONDS:-3600}

backup_once() {
	mkdir -p "$BACKUP_DIR"
	stamp=$(date -u +%Y%m%dT%H%M%SZ)
	target="$BACKUP_DIR/nproxy-$stamp.dump"
	if ! pg_dump --format=custom --no-owner --file="$target.partial"; then
		rm -f "$target.partial"
		echo "backup: pg_dump failed; no dump written" >&2
		return 1
	fi
	mv "$target.partial" "$target"
	# Dumps whose age in whole days reaches $KEEP_DAYS go; leftovers of a crash, too.
	find "$BACKUP_DIR" -maxdepth 1 -name 'nproxy-*.dump' -mtime +"$((KEEP_DAYS - 1))" -delete
	find "$BACKUP_DIR" -maxdepth 1 -name 'nproxy-*.dump.partial' -mmin +60 -delete
	echo "backup: wrote $target ($(wc -c <"$target") bytes)"
}

if [ "${1:-}" = "--daily" ]; then
	while true; do
		if backup_once; then
			sleep "$INTERVAL"
		else
			sleep "$RETRY"
		fi
	done
else
	backup_once
fi
