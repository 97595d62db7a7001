"""``python -m app.composition.probe [live|ready]``: a container's health check.

Asks this container's own server, on the port its configuration gives it (the group's port
in a split, named by ``TESSERA_GROUP`` as ``tessera serve`` reads it), and exits 0 when the
probe answers 200. It imports the configuration only, not the application (about 0.1 s of
CPU per check), so that an image's ``HEALTHCHECK`` every few seconds costs next to nothing.
"""

from __future__ import annotations

import os
import sys
import urllib.request

from app.kernel.config import ConfigError, load_settings

__all__ = ("main", "probe_url")

PROBES = ("live", "ready")


def probe_url(which: str, environ: dict[str, str] | None = None) -> str:
    env = dict(os.environ if environ is None else environ)
    settings = load_settings(env)
    group = env.get("TESSERA_GROUP")
    port = (settings.topology.port_of(group) if group else None) or settings.server.port
    return f"http://127.0.0.1:{port}/health/{which}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    which = args[0] if args else "live"
    if which not in PROBES:
        print(f"usage: python -m app.composition.probe [{'|'.join(PROBES)}]", file=sys.stderr)
        return 2
    try:
        url = probe_url(which)
        with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - loopback, http only
            return 0 if answer.status == 200 else 1
    except (OSError, ConfigError) as error:  # URLError is an OSError
        print(f"{which}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
