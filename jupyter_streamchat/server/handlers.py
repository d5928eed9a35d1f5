"""Thin Tornado handlers: authenticate, validate, call the service, write JSON or SSE."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth import Authorizer, IdentityProvider, User
from jupyter_server.auth.decorator import authorized
from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from ..engine import contract
from ..engine._conversations import ConversationsAnswer
from ..engine._errors import BadRequest, Forbidden, NotFound, StreamChatError
from ..engine._kernel_contract import TOKEN_HEADER
from ..engine._paths import confine, refuse_hidden
from ..engine._relay import queued_events, run_events
from ..engine._sse import encode_event
from ..engine._validation import ChatBody, parse_chat_body, validate_conversation
from ..engine.runs import DISCONNECT, Run, Subscription
from ..engine.service import ChatService
from ..persistence import HandoffHub, NotebookRecorder
from ..persistence._handoff import DocumentSubscriber
from ._kernel_access import KERNEL_USERNAME, KernelAccess

AUTH_RESOURCE = "streamchat"
# Paths one documents/events stream may name: more notebooks than a page plausibly has open, and a URL that
# stays well under the server's header size limit.
MAX_DOCUMENT_PATHS = 64
# Longest ``GET runs/{id}?wait=recorded`` long-poll: under the usual proxy idle timeouts; a client asks again.
MAX_RECORDED_WAIT = 30.0


# jupyter_server's own identity providers: whoever holds the server's token or password gets a made-up
# anonymous identity (a new one per browser, and per request without cookies). They are all the server's
# owner, so their runs are not split between them (that would hide a script's runs from its own author).
_ANONYMOUS_IDENTITIES = (IdentityProvider, PasswordIdentityProvider)


def server_owner() -> str:
    """The user this server belongs to: named by JupyterHub, else the account the server runs as."""
    hub_user = os.environ.get("JUPYTERHUB_USER")
    if hub_user:
        return hub_user
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        return str(os.getuid())


class _KernelAuthorizer(Authorizer):
    """What a kernel's credential may do in these handlers: use streamchat, and record into notebooks.

    Contents is allowed because a run naming a notebook asks for it: the kernel runs code as the server's
    own account and can write any notebook itself. The credential still opens no contents API: only
    streamchat's handlers accept it at all.
    """

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        return resource in (AUTH_RESOURCE, "contents")


_KERNEL_AUTHORIZER = _KernelAuthorizer()


class BaseHandler(APIHandler):
    auth_resource = AUTH_RESOURCE
    _kernel_authenticated = False

    def initialize(self, service: ChatService, kernel_access: KernelAccess | None = None) -> None:
        self.service = service
        self.kernel_access = kernel_access

    async def prepare(self) -> None:  # type: ignore[override]
        presented = self.request.headers.get(TOKEN_HEADER)
        if presented is None:
            await super().prepare()
            return
        # A kernel's scoped credential: checked here because Jupyter's identity provider does not know it.
        if not self.check_host() or self.kernel_access is None or not self.kernel_access.accepts(presented):
            self.current_user = self._jupyter_current_user = None
            raise web.HTTPError(403, "invalid streamchat kernel credential")
        self._kernel_authenticated = True
        self.current_user = self._jupyter_current_user = User(username=KERNEL_USERNAME, name="Kernel")

    @property
    def authorizer(self) -> Authorizer:
        if self._kernel_authenticated:
            return _KERNEL_AUTHORIZER
        return super().authorizer

    @property
    def run_owner(self) -> str:
        """Who a run started by this request belongs to: the Jupyter user; a kernel acts as the server's owner."""
        if self._kernel_authenticated:
            return server_owner()
        return str(self.current_user.username)

    @property
    def viewer(self) -> str | None:
        """Whose runs this request may see and stop: its own user's, or None for all of them (one owner)."""
        if type(self.identity_provider) in _ANONYMOUS_IDENTITIES:
            return None
        return self.run_owner

    async def require_contents_write(self) -> None:
        """For a request naming a notebook, which a run writes into: Jupyter's permission to write contents."""
        allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "write", "contents"))
        if not allowed:
            raise Forbidden("this needs permission to write contents (a notebook named here is written to)")

    async def require_visible_notebook(self, path: str) -> None:
        """A notebook the contents API hides (``allow_hidden`` off) is not there for streamchat either."""
        await refuse_hidden(self.contents_manager, confine(self.service.root_dir, path))

    def check_xsrf_cookie(self) -> None:
        # A header the browser never sends on its own cannot be forged cross-site.
        if not self._kernel_authenticated:
            super().check_xsrf_cookie()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Only our own message goes out: never a traceback, never upstream secrets.
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, StreamChatError):
            message = exc.message
        elif isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        else:
            message = self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, StreamChatError):
            # Client errors are expected: log one line, not a traceback.
            self.log.info("streamchat %s %s -> %s: %s", self.request.method, self.request.path, e.status, e.message)
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    def start_sse(self) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache, no-transform")
        self.set_header("X-Accel-Buffering", "no")

    def get_run(self, run_id: str) -> Run:
        """The run, if it is this request's user's to see: another user's run does not exist for them."""
        return contract.find_run(self.service.runs.get, run_id, self.viewer)

    def chat_body(self) -> ChatBody:
        limits = self.service.body_limits
        return parse_chat_body(self.request.body, limits)

    def events_url(self, run: Run) -> str:
        return url_path_join(self.base_url, "streamchat", "runs", run.id, "events")


class SSEHandler(BaseHandler):
    """Writes an SSE response from an engine iterator of encoded events (``engine/_relay.py``); subclasses
    decide what a client going away means."""

    _subscription: Subscription | None = None

    def run_events(self, subscription: Subscription, batch: float = 0.0) -> AsyncGenerator[bytes]:
        """A run's events; a hang-up closes ``subscription`` at once, which ends them."""
        self._subscription = subscription
        return run_events(subscription, self.service.keepalive_interval, batch)

    async def relay(self, chunks: AsyncGenerator[bytes]) -> bool:
        """Write and flush each chunk until the iterator ends; False if the client went away first."""
        try:
            async with aclosing(chunks):
                await self.flush()
                async for chunk in chunks:
                    self.write(chunk)
                    await self.flush()
        except StreamClosedError:
            return False
        finally:
            # Also when the iterator never started (the first flush failed): closing it then runs nothing.
            if self._subscription is not None:
                self._subscription.close()
        return not self.client_gone()

    def client_gone(self) -> bool:
        connection = self.request.connection
        return isinstance(connection, HTTP1Connection) and connection.stream.closed()

    def batch_interval(self) -> float:
        return contract.batch_interval(self.get_query_argument("batch", ""))

    def on_connection_close(self) -> None:
        if self._subscription is not None:
            self._subscription.close()

    def end_sse(self, client_present: bool) -> None:
        if client_present and not self._finished:
            self.finish(set_content_type="text/event-stream; charset=utf-8")


class ModelsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(await contract.models_answer(self.service.registry))


class RunsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        filters = contract.listing_filters(lambda key: self.get_query_argument(key, ""))
        self.finish(contract.run_list(self.service.runs.list(filters), self.viewer))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.chat_body()
        if body.notebook is not None:
            await self.require_contents_write()
            await self.require_visible_notebook(body.notebook)
        run = await self.service.start_run(body, mode=contract.DETACHED, owner=self.run_owner)
        self.set_status(201)
        self.set_header("Location", url_path_join(self.base_url, "streamchat", "runs", run.id))
        self.finish(contract.start_result(run, self.events_url(run)))


class RunHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        """``?wait=recorded``: answer once the run ended and is in its notebook or never will be (bounded)."""
        run = self.get_run(run_id)
        wait = self.get_query_argument("wait", "")
        if wait not in ("", "recorded"):
            raise BadRequest(f"'wait' can only be 'recorded', got {wait!r}")
        if wait:
            await self.service.wait_notebook_settled(run, MAX_RECORDED_WAIT)
        self.finish(contract.public_record(run))


class RunStopHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        self.finish(await contract.stop(self.get_run(run_id)))


class RunEventsHandler(SSEHandler):
    """Detached runs: a client leaving only ends its subscription, never the run."""

    @web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        run = self.get_run(run_id)
        raw = self.request.headers.get("Last-Event-ID") or self.get_query_argument("after", "0")
        after = contract.resume_point(raw, run)
        batch = self.batch_interval()  # a bad value is a 400 before the stream starts
        self.start_sse()
        self.end_sse(await self.relay(self.run_events(run.subscribe(after), batch)))


class DirectStreamHandler(SSEHandler):
    """Compare panes: the response is the generation; the client leaving stops it at once."""

    _run: Run | None = None

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.chat_body()
        batch = self.batch_interval()  # a bad value is a 400 before any run starts
        if body.notebook is not None:
            await self.require_contents_write()
            await self.require_visible_notebook(body.notebook)
        self._run = run = await self.service.start_run(body, mode=contract.DIRECT, owner=self.run_owner)
        if self.client_gone():
            run.request_end(DISCONNECT)
        self.start_sse()
        client_present = await self.relay(self.run_events(run.subscribe(0), batch))
        if not client_present:
            run.request_end(DISCONNECT)
            await run.wait_recorded()
        self.end_sse(client_present)

    def on_connection_close(self) -> None:
        if self._run is not None:
            self._run.request_end(DISCONNECT)
        super().on_connection_close()


class ConversationsHandler(BaseHandler):
    """``GET conversations?notebook=&conversation=``: the conversations' trees (a kernel's ``history``, ``replay``)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(dict(await self.read_conversations(self.get_query_argument("conversation", "") or None)))

    async def read_conversations(self, conversation: str | None) -> ConversationsAnswer:
        """The answer for ``?notebook=`` (checked: contents read, confined, visible) and ``conversation``."""
        notebook = self.get_query_argument("notebook", "") or None
        if notebook is not None:
            allowed = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", "contents"))
            if not allowed:
                raise Forbidden("this needs permission to read contents (the notebook's turns are read)")
            await self.require_visible_notebook(notebook)
            notebook = confine(self.service.root_dir, notebook)
        conversation = validate_conversation(conversation)
        viewer = self.viewer
        return await self.service.conversations(notebook, conversation, lambda r: contract.visible(r, viewer))


class DocumentEventsHandler(SSEHandler):
    """The open-document side of the hand-off: finished turns for the notebooks a page has open (see persistence).

    ``?path=a.ipynb&path=b/c.ipynb``: one stream for all of them, because a browser has only 6 connections per
    host for all its tabs together, and one stream per notebook would soon hold them all.
    """

    _subscriber: DocumentSubscriber | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        handoff = self._handoff()
        # A page merges the turns it is told of into its open document, to be saved with it: only for someone
        # who may write contents.
        await self.require_contents_write()
        requested = self.get_query_arguments("path")
        if not 1 <= len(requested) <= MAX_DOCUMENT_PATHS:
            raise BadRequest(f"send 1 to {MAX_DOCUMENT_PATHS} 'path' arguments, got {len(requested)}")
        paths: list[str] = []
        for path in requested:
            try:
                relative = confine(self.service.root_dir, path)
                await refuse_hidden(self.contents_manager, relative)
            except StreamChatError as error:
                # Name the refused path: the page then subscribes its other notebooks at once, without it.
                self.log.info("streamchat GET %s -> %s: %s", self.request.path, error.status, error.message)
                self.set_status(error.status)
                self.finish({"message": error.message, "path": path})
                return
            paths.append(relative)
        self._subscriber = subscriber = handoff.subscribe(paths)
        self._recorder().tell_recent(subscriber)
        try:
            self.start_sse()
            self.write(encode_event(0, "ready", {"paths": paths}))
            self.end_sse(await self.relay(queued_events(subscriber.queue, self.service.keepalive_interval)))
        finally:
            handoff.unsubscribe(subscriber)

    def on_connection_close(self) -> None:
        if self._subscriber is not None:
            # Stop offering turns to a client that is gone, and end its events now.
            self._handoff().unsubscribe(self._subscriber)
            self._subscriber.queue.put_nowait(b"")
        super().on_connection_close()

    def _handoff(self) -> HandoffHub:
        return self._recorder().handoff

    def _recorder(self) -> NotebookRecorder:
        if self.service.notebooks is None:
            raise NotFound("notebook persistence is off")
        return self.service.notebooks


def route_table(
    service: ChatService, kernel_access: KernelAccess | None = None
) -> list[tuple[str, type[web.RequestHandler], dict[str, Any]]]:
    from ._export import ExportHandler  # it builds on ConversationsHandler, defined above

    kwargs = {"service": service, "kernel_access": kernel_access}
    run_id = rf"(?P<run_id>{contract.RUN_ID_CHARS}+)"
    return [
        (r"/streamchat/models", ModelsHandler, kwargs),
        (r"/streamchat/runs", RunsHandler, kwargs),
        (rf"/streamchat/runs/{run_id}", RunHandler, kwargs),
        (rf"/streamchat/runs/{run_id}/events", RunEventsHandler, kwargs),
        (rf"/streamchat/runs/{run_id}/stop", RunStopHandler, kwargs),
        (r"/streamchat/stream", DirectStreamHandler, kwargs),
        (r"/streamchat/conversations", ConversationsHandler, kwargs),
        (r"/streamchat/export", ExportHandler, kwargs),
        (r"/streamchat/documents/events", DocumentEventsHandler, kwargs),
    ]
