"""`vidhash serve INDEX`: the search page and JSON API over an index, on loopback by default."""

from __future__ import annotations

import ipaddress
import socket

import click

from vidhash.errors import UsageError


@click.command("serve")
@click.argument("index_dir", metavar="INDEX", type=click.Path())
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0: any free port).")
@click.option(
    "--max-upload-mb", default=10.0, show_default=True, type=float, help="Upload size limit."
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
def command(index_dir: str, host: str, port: int, max_upload_mb: float, log_level: str) -> None:
    """Serve INDEX: a search page at / and a JSON API under /api (docs at /docs).

    The index is opened once and reopened when it changes on disk. Listens on
    127.0.0.1 unless --host says otherwise; there is no authentication.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, got {port}")
    if not max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be > 0, got {max_upload_mb}")
    try:
        import uvicorn

        from vidhash.serve import create_app
    except ImportError as exc:
        raise UsageError(
            f"vidhash serve needs the serve extra ({exc.name} is missing): "
            "pip install 'vidhash[serve]'"
        ) from None

    app = create_app(index_dir, max_upload_bytes=int(max_upload_mb * 2**20))
    sock = _listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    snap = app.state.holder.snapshot
    click.echo(
        f"serving {index_dir} ({len(snap):,} keyframes, {len(snap.videos):,} videos) "
        f"at http://{url_host}:{bound_port}/"
    )
    if _is_loopback(host):
        click.echo("listening on loopback only: this machine can connect, no other can")
    else:
        click.echo(
            f"warning: listening on {host}: any machine that reaches this one can search the "
            "index and read its keyframes (there is no authentication)",
            err=True,
        )
    click.echo("API docs at /docs; press Ctrl-C to stop")
    config = uvicorn.Config(app, log_level=log_level, access_log=log_level == "debug")
    uvicorn.Server(config).run(sockets=[sock])


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _listen(host: str, port: int) -> socket.socket:
    """Bind here, so the real port is known (``--port 0``) before the server starts."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
