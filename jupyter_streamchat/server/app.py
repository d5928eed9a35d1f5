"""The ``jupyter_streamchat`` server extension: settings as traits, wiring, lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import datetime

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.serverapp import ServerApp
from tornado.ioloop import IOLoop, PeriodicCallback
from traitlets import Bool, Dict, Enum, Float, Int, List, TraitError, Unicode, default, validate

from ..engine._prices import parse_prices, unknown_price_keys
from ..engine._validation import BodyLimits
from ..engine.runs import FAILED, Run, RunLimits, RunManager
from ..engine.service import ChatService
from ..persistence import HandoffHub, NotebookFollower, NotebookRecorder, RunJournal
from ..persistence._notebooks import RECORD_RETRY_TIMEOUT
from ..persistence.journal import DEFAULT_RESERVE_BYTES
from ..providers import ProviderConfig, ProviderRegistry, UpstreamSettings, _environ
from ._kernel_access import KernelAccess
from ._lifecycle import UNLIMITED_RUN_ACTIVITY, SigintStop, mark_activity, runs_activity, utcnow
from ._log import attach_package_log, detach_package_log
from .handlers import route_table


class StreamChat(ExtensionApp):
    """LLM chat that lives inside Jupyter. Configure with ``c.StreamChat.<trait>``."""

    name = "jupyter_streamchat"
    load_other_extensions = True

    # ----- providers ---------------------------------------------------------------------------
    openai_api_key = Unicode(
        None, allow_none=True, config=True, help="API key for the openai provider (default: $OPENAI_API_KEY)."
    )
    openai_base_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Base URL of an OpenAI-compatible API, e.g. a local vLLM or llama.cpp server "
        "(default: $OPENAI_BASE_URL). Setting it alone, without a key, enables the provider.",
    )
    openai_models = List(
        Unicode(),
        config=True,
        help="Models listed for openai (any other name is accepted too). Default: a few OpenAI models for "
        "api.openai.com; none with a custom base URL, whose own model list is asked for instead.",
    )
    anthropic_api_key = Unicode(
        None, allow_none=True, config=True, help="API key for anthropic (default: $ANTHROPIC_API_KEY)."
    )
    anthropic_base_url = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Base URL of the Anthropic API (default: $ANTHROPIC_BASE_URL).",
    )
    anthropic_models = List(
        Unicode(),
        default_value=_environ.ANTHROPIC_LISTED_MODELS,
        config=True,
        help="Models listed for anthropic (any other name is accepted too).",
    )
    ollama_url = Unicode(
        config=True,
        help=f"Where to look for a local Ollama (default: $OLLAMA_HOST, else {_environ.OLLAMA_DEFAULT_URL}).",
    )
    ollama_enabled = Bool(
        None,
        allow_none=True,
        config=True,
        help="Force the ollama provider on or off; None: on when it answers.",
    )
    demo_enabled = Bool(True, config=True, help="Offer the built-in offline demo models.")
    demo_speed = Float(1.0, config=True, help="Speed factor of the demo models (tests use a large one).")
    default_model = Unicode(
        "",
        config=True,
        help="Model used when a request names none (default: first configured provider, else demo).",
    )

    prices = Dict(
        config=True,
        help="Prices in USD per million tokens, by model id: {'openai:gpt-4o-mini': {'input': 0.15, 'output': "
        "0.6}}. A reply of a priced model records its cost (from the usage the provider reported); tokens are "
        "recorded always. A key that names no configured provider, or a model its provider does not list, is "
        "warned about once at start.",
    )

    @validate("prices")
    def _validate_prices(self, proposal: dict[str, object]) -> dict[str, object]:
        try:
            parse_prices(proposal["value"])  # type: ignore[arg-type]
        except ValueError as error:
            raise TraitError(f"StreamChat.{error}") from None
        return proposal["value"]  # type: ignore[return-value]

    # ----- upstream ----------------------------------------------------------------------------
    upstream_connect_timeout = Float(10.0, config=True, help="Seconds to connect to a provider.")
    upstream_idle_timeout = Float(
        60.0, config=True, help="A run fails when its provider sends nothing for this many seconds."
    )
    upstream_retry_attempts = Int(
        3, config=True, help="Attempts per request (retries only before the first streamed byte)."
    )
    upstream_retry_max_wait = Float(30.0, config=True, help="Total seconds a request may spend waiting to retry.")
    upstream_max_connections = Int(64, config=True, help="Connection pool size per provider.")
    upstream_network_backend = Enum(
        ["asyncio", "anyio"],
        "asyncio",
        config=True,
        help="How provider sockets are read: 'asyncio' (lean, about 40% less CPU per token) or 'anyio' "
        "(httpx's stock backend). HTTP(S)_PROXY settings always use the stock backend.",
    )

    # ----- runs --------------------------------------------------------------------------------
    max_concurrent_runs = Int(32, config=True, help="Runs streaming at once; more are refused with 429.")
    max_body_bytes = Int(1_048_576, config=True, help="Largest accepted request body (413 beyond).")
    max_messages = Int(500, config=True, help="Most messages in one request.")
    max_message_chars = Int(200_000, config=True, help="Longest accepted message content.")
    max_image_bytes = Int(
        5 * 1_048_576,
        config=True,
        help="Most image bytes one request may carry (all its images together, decoded; 413 beyond). "
        "The request body limit grows by their base64 size.",
    )
    max_context_chars = Int(
        100_000, config=True, help="Most characters of text in the context items of one request (400 beyond)."
    )
    replay_buffer_events = Int(
        10_000, config=True, help="Events kept per run for replay; older ones are replaced by a snapshot."
    )
    finished_run_retention = Float(3600.0, config=True, help="Seconds a finished run stays queryable.")
    max_retained_runs = Int(1000, config=True, help="Most finished runs kept in memory.")
    run_time_limit = Float(1800.0, config=True, help="Wall-clock limit of one run in seconds (0: none).")
    max_reply_chars = Int(
        1_000_000,
        config=True,
        help="Longest reply kept, in characters (its text and, apart, its reasoning): a run whose reply goes "
        "past it ends as failed with error code 'reply_too_large', its text kept up to the limit, and its "
        "provider call is hung up on. 0: no limit.",
    )
    keepalive_interval = Float(15.0, config=True, help="Seconds between ': ping' comments on idle streams.")
    shutdown_timeout = Float(5.0, config=True, help="Seconds to record interrupted runs at shutdown.")
    activity_interval = Float(
        15.0,
        config=True,
        help="Seconds between refreshes of the server's last-activity time while runs stream, so that "
        "JupyterHub's idle culler (and ServerApp.shutdown_no_activity_timeout) does not stop a server "
        "mid-run; each run counts for at most run_time_limit seconds (1800 when that is 0). "
        "0: runs do not count as activity.",
    )

    kernel_access = Bool(
        True,
        config=True,
        help="Let kernels started by this server reach streamchat with nothing typed by the user: the URL and "
        "a credential that opens streamchat routes only are passed in their environment.",
    )

    # ----- persistence -------------------------------------------------------------------------
    journal_path = Unicode(
        "",
        config=True,
        help="SQLite run journal (default: <jupyter data dir>/streamchat/journal-<root hash>.sqlite3, one per "
        "server root). Servers started on the same root share it; each recovers only the runs of servers that "
        "are gone. Created readable by its owner only.",
    )
    journal_flush_interval = Float(
        0.5,
        config=True,
        help="Deprecated and ignored: events are journaled before they are sent (group commits, one at a time), "
        "not every so many seconds.",
    )
    journal_reserve_bytes = Int(
        DEFAULT_RESERVE_BYTES,
        config=True,
        help="Free space kept on the journal's disk for the runs already streaming: below it, new runs are "
        "refused with 503 (logged, and logged again when there is room). 0: no reserve.",
    )
    journal_maintenance_interval = Float(
        60.0,
        config=True,
        help="Seconds between journal upkeep: finished runs past finished_run_retention are pruned (from the "
        "journal and from memory), and runs left by another server on the same journal that has since gone "
        "away are recovered as interrupted. Start-up always recovers.",
    )
    record_guard_period = Float(
        600.0,
        config=True,
        help="Seconds after a turn is written into a notebook during which a save of that notebook that dropped "
        "it (a page that saved a copy taken before it learned the turn) gets it written back. 0 turns it off.",
    )
    record_retry_timeout = Float(
        RECORD_RETRY_TIMEOUT,
        config=True,
        help="Seconds a notebook that cannot be written just now (torn by another writer, or being moved) is "
        "retried, with backoff from 0.1 s doubling to 5 s; after that the journal's next recovery (at the next "
        "start) writes the turn. An unreadable notebook is never written over.",
    )

    @default("openai_api_key")
    def _default_openai_api_key(self) -> str | None:
        return _environ.openai_api_key()

    @default("openai_base_url")
    def _default_openai_base_url(self) -> str | None:
        return _environ.openai_base_url()

    @default("openai_models")
    def _default_openai_models(self) -> list[str]:
        return _environ.openai_listed_models(self.openai_base_url)

    @default("anthropic_api_key")
    def _default_anthropic_api_key(self) -> str | None:
        return _environ.anthropic_api_key()

    @default("anthropic_base_url")
    def _default_anthropic_base_url(self) -> str | None:
        return _environ.anthropic_base_url()

    @default("ollama_url")
    def _default_ollama_url(self) -> str:
        return _environ.ollama_url()

    def provider_config(self) -> ProviderConfig:
        return ProviderConfig(
            openai_api_key=self.openai_api_key,
            openai_base_url=self.openai_base_url,
            openai_models=list(self.openai_models),
            anthropic_api_key=self.anthropic_api_key,
            anthropic_base_url=self.anthropic_base_url,
            anthropic_models=list(self.anthropic_models),
            ollama_url=self.ollama_url,
            ollama_enabled=self.ollama_enabled,
            demo_enabled=self.demo_enabled,
            demo_speed=self.demo_speed,
            default_model=self.default_model,
            upstream=UpstreamSettings(
                connect_timeout=self.upstream_connect_timeout,
                idle_timeout=self.upstream_idle_timeout,
                max_connections=self.upstream_max_connections,
                retry_attempts=self.upstream_retry_attempts,
                retry_max_total_wait=self.upstream_retry_max_wait,
                network_backend=self.upstream_network_backend,
            ),
        )

    @property
    def _server(self) -> ServerApp:
        """The server this extension is loaded into (set before any of the hooks below runs)."""
        serverapp = self.serverapp
        if serverapp is None:
            raise RuntimeError("the streamchat extension is not loaded into a Jupyter server")
        return serverapp

    def _journal_file(self) -> str:
        if self.journal_path:
            return self.journal_path
        root = os.path.realpath(self._server.root_dir)
        digest = hashlib.sha256(root.encode()).hexdigest()[:12]
        return os.path.join(jupyter_data_dir(), "streamchat", f"journal-{digest}.sqlite3")

    async def _log_run_end(self, run: Run) -> None:
        """Finish hook: one line per finished run; failed runs are warnings that carry the error code.

        Only ids, the model, counts and the error code are logged: never prompt or reply text, nor the
        error message (it may quote what the provider echoed back).
        """
        try:
            started = datetime.fromisoformat(run.created)
            ended = datetime.fromisoformat(run.finished) if run.finished else started
            duration = (ended - started).total_seconds()
        except ValueError:
            duration = float("nan")
        usage = run.usage
        tokens = f"{usage.get('input_tokens', '?')} in / {usage.get('output_tokens', '?')} out"
        if run.status == FAILED:
            code = (run.error or {}).get("code", "unknown")
            self.log.warning(
                "streamchat run %s failed (%s): model %s, %s, %.2fs, tokens %s",
                run.id,
                code,
                run.model,
                run.mode,
                duration,
                tokens,
            )
        else:
            self.log.info(
                "streamchat run %s %s: model %s, %s, %.2fs, tokens %s",
                run.id,
                run.status,
                run.model,
                run.mode,
                duration,
                tokens,
            )

    def initialize_handlers(self) -> None:
        attach_package_log(self.log, self.log_level)
        limits = RunLimits(
            max_concurrent_runs=self.max_concurrent_runs,
            replay_buffer_events=self.replay_buffer_events,
            finished_run_retention=self.finished_run_retention,
            max_retained_runs=self.max_retained_runs,
            run_time_limit=self.run_time_limit,
            max_reply_chars=self.max_reply_chars,
        )
        runs = RunManager(limits)
        # Before the service adds its own hook: the line is logged when the run ends, not after persistence.
        runs.add_finish_hook(self._log_run_end)
        serverapp = self._server
        journal = RunJournal(self._journal_file(), self.journal_reserve_bytes)
        notebooks = NotebookRecorder(
            serverapp,
            HandoffHub(),
            NotebookFollower(serverapp),
            self.record_retry_timeout,
            self.record_guard_period,
        )
        self.service = ChatService(
            registry=ProviderRegistry(self.provider_config()),
            runs=runs,
            body_limits=BodyLimits(
                max_body_bytes=self.max_body_bytes,
                max_messages=self.max_messages,
                max_message_chars=self.max_message_chars,
                max_image_bytes=self.max_image_bytes,
                max_context_chars=self.max_context_chars,
            ),
            root_dir=serverapp.root_dir,
            keepalive_interval=self.keepalive_interval,
            journal=journal,
            notebooks=notebooks,
            prices=parse_prices(self.prices),
        )
        journal.open()
        notebooks.follower.start()
        self._kernel_access = KernelAccess() if self.kernel_access else None
        self.handlers.extend(route_table(self.service, self._kernel_access))
        self._stopping: asyncio.Future[None] | None = None
        self._activity: PeriodicCallback | None = None
        self._sigint = SigintStop(lambda: serverapp.stop(from_signal=True), self.log)
        IOLoop.current().add_callback(self._start_background_work)

    async def _start_background_work(self) -> None:
        if self._kernel_access is not None:
            # Here, not in initialize_handlers: the port is only known once the server is bound.
            self._kernel_access.publish(self._server)
        service = self.service
        assert service.journal is not None
        service.journal.start(service.runs.list)
        if service.notebooks is not None:
            service.notebooks.listen()
        service.start_maintenance(self.journal_maintenance_interval)
        if service.prices:
            await self._check_prices()
        if self.activity_interval > 0:
            self._activity = PeriodicCallback(self._mark_activity, self.activity_interval * 1000)
            self._activity.start()

    async def _check_prices(self) -> None:
        """Warn once about price keys that can match no reply (a typo'd model id shows no cost, silently)."""
        try:
            listed: dict[str, list[str]] = {}
            for model in await self.service.registry.list_models():
                listed.setdefault(model["provider"], []).append(model["id"].partition(":")[2])
            for provider in await self.service.registry.configured():
                listed.setdefault(provider, [])
        except Exception:
            self.log.warning("streamchat: the price table was not checked (the model lists could not be read)")
            return
        for line in unknown_price_keys(self.service.prices, listed):
            self.log.warning("streamchat: %s; its replies will show no cost", line)

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        # Called once the server's event loop runs, on the main thread, and only by ``ServerApp.start``: an
        # in-process test server (pytest-jupyter) never gets here, so a test runner keeps its Ctrl-C.
        if self._sigint.install():
            self.log.info("streamchat: stdin is not a terminal; SIGINT will stop the server cleanly")

    def _mark_activity(self) -> None:
        """While runs stream, the server is active (see ``_lifecycle``), each run for a bounded time."""
        cap = self.run_time_limit if self.run_time_limit > 0 else UNLIMITED_RUN_ACTIVITY
        moment = runs_activity((run.created for run in self.service.runs.running()), utcnow(), cap)
        if moment is not None:
            mark_activity(self._server.web_app.settings, moment)

    async def stop_extension(self) -> None:
        # ``jupyter server stop`` can get here twice (``api/shutdown``, then SIGTERM when that took over 5 s):
        # the second call waits for the first instead of starting a second shutdown.
        if getattr(self, "_stopping", None) is None:
            self._stopping = asyncio.ensure_future(self._stop())
        assert self._stopping is not None
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        activity, sigint = getattr(self, "_activity", None), getattr(self, "_sigint", None)
        if activity is not None:
            activity.stop()
        if sigint is not None:
            sigint.uninstall()
        kernel_access = getattr(self, "_kernel_access", None)
        if kernel_access is not None:
            kernel_access.withdraw()
        service = getattr(self, "service", None)
        if service is None:
            return
        try:
            await asyncio.wait_for(service.aclose(self.shutdown_timeout), self.shutdown_timeout + 1)
        except TimeoutError:
            self.log.warning("streamchat: shutdown did not finish within %.1fs", self.shutdown_timeout)
        finally:
            detach_package_log(self.log)


StreamChatApp = StreamChat


# ``python -m jupyter_streamchat``: a Jupyter server with this extension, started the way ``jupyter lab`` starts
# one; ``--help-all`` prints the server's options and these traits. (``jupyter server --help-all`` cannot list
# them: jupyter_server prints its help while parsing the command line, before any extension is loaded.)
def main(argv: list[str] | None = None) -> None:
    StreamChat.launch_instance(argv)


launch_new_instance = main
