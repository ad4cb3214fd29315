"""The ``a2e-bridge`` command: ``serve``, ``simulate`` and ``call``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

import click
import uvicorn

from .a2e.client import A2EClient
from .a2e.endpoints import ENDPOINTS, GROUPS
from .a2e.errors import A2EError, A2EInvalidInput
from .a2e.tasks import TaskStatus, task_id_of
from .logs import configure_logging, log_config
from .settings import Settings


@click.group()
def main() -> None:
    """a2e-bridge: A2E streaming avatars for kiosks, browsers and chatbot backends."""


@main.command()
@click.option("--host", default=None, help="Interface to listen on (BRIDGE_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (BRIDGE_PORT, default 8000).")
def serve(host: str | None, port: int | None) -> None:
    """Run the bridge service (with no A2E_API_KEY, against the built-in simulator)."""
    from .serving import ConfigurationError, run

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    settings = settings.model_copy(update={"host": host or settings.host,
                                           "port": port if port is not None else settings.port})
    try:
        run(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8100, show_default=True, type=int)
@click.option("--api-key", "api_keys", multiple=True,
              help="A key the simulator accepts (repeatable; default SIM_API_KEYS). Unset: any key.")
def simulate(host: str, port: int, api_keys: tuple[str, ...]) -> None:
    """Run the A2E simulator alone, speaking A2E's REST API."""
    from .simulator.app import create_simulator_app
    from .simulator.embedded import simulator_config

    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    keys = tuple(k for k in api_keys if k.strip()) or tuple(settings.sim_api_keys)
    logging.getLogger("bridge").info("A2E simulator on http://%s:%d (state at /_sim/state); %s", host, port,
                                     f"{len(keys)} accepted key(s), also for /_sim" if keys else "any key accepted")
    uvicorn.run(create_simulator_app(simulator_config(settings, api_keys=keys)), host=host, port=port,
                log_config=log_config(settings.log_level, settings.log_format), timeout_graceful_shutdown=2)


def _list_operations() -> str:
    lines = []
    for group in GROUPS:
        lines.append(f"{group}:")
        for row in ENDPOINTS.values():
            if row.group == group:
                req = ", ".join(row.required) or "-"
                lines.append(f"  {row.name:32} {'|'.join(row.methods):8} {row.path}  [{row.certainty.value}] needs: {req}")
    return "\n".join(lines)


@main.command(epilog="Operations are the names in the endpoint table; run 'a2e-bridge call list' to see them.")
@click.argument("operation")
@click.option("--json", "payload", default="{}", help="Parameters as a JSON object (path, query and body).")
@click.option("--wait", is_flag=True, help="Follow the task this call creates to its end, with a progress bar.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds --wait may take.")
@click.option("--interval", default=3.0, show_default=True, help="Seconds between status polls with --wait.")
@click.option("--base-url", default=None, help="A2E base URL (default A2E_BASE_URL).")
def call(operation: str, payload: str, wait: bool, timeout: float, interval: float, base_url: str | None) -> None:
    """Call one A2E operation and print the JSON answer."""
    if operation == "list":
        click.echo(_list_operations())
        return
    if operation not in ENDPOINTS:
        raise click.BadParameter(f"unknown operation {operation!r}; run 'a2e-bridge call list'",
                                 param_hint="OPERATION")
    try:
        params = json.loads(payload)
    except RecursionError:
        raise click.BadParameter("not JSON: nested too deeply", param_hint="--json") from None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--json") from None
    if not isinstance(params, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--json")
    row = ENDPOINTS[operation]
    try:
        row.render_path(params)  # a missing or malformed id fails here, before the key is even read
    except A2EInvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint="--json") from None
    if wait and not row.creates_task:  # before calling: the call may cost credits
        raise click.UsageError(f"{operation} does not create a task; --wait needs one that does")
    settings = Settings()
    configure_logging(os.environ.get("BRIDGE_LOG_LEVEL", "WARNING"), settings.log_format)
    if settings.uses_simulator:
        raise click.ClickException("set A2E_API_KEY (and A2E_BASE_URL or --base-url for a simulator)")
    try:
        client = A2EClient.from_settings(settings, base_url=base_url)
        result = asyncio.run(_call(client, operation, params, wait, timeout, interval))
    except A2EInvalidInput as exc:  # the client refused the parameters; nothing was sent
        raise click.BadParameter(str(exc), param_hint="--json") from None
    except A2EError as exc:
        click.echo(json.dumps({"error": exc.to_dict()}, indent=2), err=True)
        sys.exit(1)
    click.echo(json.dumps(result, indent=2, ensure_ascii=False))


async def _call(client: A2EClient, operation: str, params: dict[str, Any], wait: bool,
                timeout: float, interval: float) -> Any:  # noqa: ASYNC109 (passed on to wait_for)
    async with client:
        data = await client.call(operation, params)
        if not wait:
            return data
        task_id = task_id_of(data)
        if not task_id:
            raise click.ClickException(f"no task id in the answer: {data!r}")
        with click.progressbar(length=100, label=f"{operation} {task_id}", file=sys.stderr) as bar:
            last = 0

            def progress(status: TaskStatus) -> None:
                nonlocal last
                value = 100 if status.done else (status.progress or last)
                bar.label = f"{operation} {task_id} {status.status}"
                bar.update(max(0, value - last))
                last = max(last, value)

            final = await client.wait_for(operation, task_id, timeout=timeout, interval=interval, progress=progress)
        return {"created": data, "final": final.raw, "result_url": final.result_url, "status": final.status}
