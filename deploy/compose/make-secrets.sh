#!/bin/sh
# Random secrets for the compose files, written once into deploy/compose/secrets/ (git-ignored,
# readable by you only). Run again with --force to replace them.
set -eu
cd "$(dirname "$0")"
[ "${1:-}" = "--force" ] && rm -rf secrets
if [ -d secrets ]; then echo "deploy/compose/secrets/ exists (--force replaces it)"; exit 0; fi
umask 077
mkdir secrets
random() { python3 -c 'import secrets; print(secrets.token_urlsafe(48), end="")'; }
random > secrets/postgres_password
random > secrets/signing_key
random > secrets/service_signing_key
printf 'postgresql+asyncpg://tessera:%s@postgres:5432/tessera' "$(cat secrets/postgres_password)" > secrets/database_url
echo "secrets written to deploy/compose/secrets/"
